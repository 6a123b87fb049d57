/* JSON positions: maps each value's and key's JSON pointer to its line:col, since jansson keeps
 * none. */
#include "config/internal.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

/* jansson refuses deeper nesting than this (JSON_PARSER_MAX_DEPTH), so following it as far keeps
 * every value of an accepted text indexed while bounding our recursion on arbitrary input. */
#define MAX_DEPTH 2048
/* Pointers are stored whole; this bounds memory on adversarial input (configs are tiny). */
#define MAX_PTR_BYTES (16u << 20)

struct walker {
    const unsigned char *p;
    size_t len, i;
    int line;
    size_t line_start;
    struct tg_config__jsonloc *jl;
    char *path; /* current JSON pointer, NUL-terminated */
    size_t plen, pcap;
    size_t stored; /* bytes of pointers stored so far */
    int depth;
};

static void path_reserve(struct walker *w, size_t extra)
{
    if (w->plen + extra + 1 <= w->pcap)
        return;
    while (w->plen + extra + 1 > w->pcap)
        w->pcap = w->pcap ? w->pcap * 2 : 256;
    w->path = tg_xrealloc(w->path, w->pcap);
}

/* Appends "/" + token (escaped per RFC 6901) to the current path. */
static void path_push(struct walker *w, const char *tok, size_t n)
{
    path_reserve(w, 1 + 2 * n);
    w->path[w->plen++] = '/';
    for (size_t i = 0; i < n; i++) {
        if (tok[i] == '~') {
            w->path[w->plen++] = '~';
            w->path[w->plen++] = '0';
        } else if (tok[i] == '/') {
            w->path[w->plen++] = '~';
            w->path[w->plen++] = '1';
        } else {
            w->path[w->plen++] = tok[i];
        }
    }
    w->path[w->plen] = '\0';
}

static void path_pop(struct walker *w, size_t to)
{
    w->plen = to;
    w->path[to] = '\0';
}

static int record(struct walker *w, size_t at_line_start, int line, size_t at, bool is_key)
{
    if (w->stored + w->plen + 1 > MAX_PTR_BYTES)
        return -E2BIG;
    struct tg_config__jsonloc *jl = w->jl;
    if (jl->n == jl->cap) {
        jl->cap = jl->cap ? jl->cap * 2 : 64;
        jl->v = tg_xrealloc(jl->v, jl->cap * sizeof(*jl->v));
    }
    struct tg_config__loc_entry *e = &jl->v[jl->n++];
    e->ptr = tg_xstrndup(w->path, w->plen);
    e->line = line;
    e->col = (int)TG_MIN(at - at_line_start + 1, (size_t)INT32_MAX);
    e->is_key = is_key;
    w->stored += w->plen + 1;
    return 0;
}

static void skip_ws(struct walker *w)
{
    while (w->i < w->len) {
        unsigned char ch = w->p[w->i];
        if (ch == '\n') {
            w->line++;
            w->line_start = w->i + 1;
        } else if (ch != ' ' && ch != '\t' && ch != '\r') {
            return;
        }
        w->i++;
    }
}

static int hexval(unsigned char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

static int read_hex4(struct walker *w, unsigned *out)
{
    if (w->len - w->i < 4)
        return -EINVAL;
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        int h = hexval(w->p[w->i + k]);
        if (h < 0)
            return -EINVAL;
        v = v * 16 + (unsigned)h;
    }
    w->i += 4;
    *out = v;
    return 0;
}

static void put_utf8(char **buf, size_t *n, size_t *cap, unsigned cp)
{
    if (*n + 5 > *cap) {
        *cap = *cap * 2 + 16;
        *buf = tg_xrealloc(*buf, *cap);
    }
    char *b = *buf;
    if (cp < 0x80) {
        b[(*n)++] = (char)cp;
    } else if (cp < 0x800) {
        b[(*n)++] = (char)(0xC0 | (cp >> 6));
        b[(*n)++] = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        b[(*n)++] = (char)(0xE0 | (cp >> 12));
        b[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[(*n)++] = (char)(0x80 | (cp & 0x3F));
    } else {
        b[(*n)++] = (char)(0xF0 | (cp >> 18));
        b[(*n)++] = (char)(0x80 | ((cp >> 12) & 0x3F));
        b[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[(*n)++] = (char)(0x80 | (cp & 0x3F));
    }
}

/* Reads a string starting at '"'; when out is non-NULL, stores its decoded bytes (NUL-terminated,
 * newly allocated) so object keys give the same pointer tokens as jansson's keys. */
static int read_string(struct walker *w, char **out, size_t *out_len)
{
    char *buf = NULL;
    size_t n = 0, cap = 0;
    int rc = -EINVAL;

    if (out != NULL) {
        cap = 32;
        buf = tg_xmalloc(cap);
    }
    w->i++; /* opening quote */
    for (;;) {
        if (w->i >= w->len)
            goto out;
        unsigned char ch = w->p[w->i];
        if (ch == '"') {
            w->i++;
            break;
        }
        if (ch < 0x20)
            goto out;
        unsigned cp = ch;
        w->i++;
        if (ch == '\\') {
            if (w->i >= w->len)
                goto out;
            unsigned char e = w->p[w->i++];
            switch (e) {
            case '"':
            case '\\':
            case '/':
                cp = e;
                break;
            case 'b':
                cp = '\b';
                break;
            case 'f':
                cp = '\f';
                break;
            case 'n':
                cp = '\n';
                break;
            case 'r':
                cp = '\r';
                break;
            case 't':
                cp = '\t';
                break;
            case 'u':
                if (read_hex4(w, &cp) != 0)
                    goto out;
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    unsigned lo;
                    if (w->len - w->i < 6 || w->p[w->i] != '\\' || w->p[w->i + 1] != 'u')
                        goto out;
                    w->i += 2;
                    if (read_hex4(w, &lo) != 0 || lo < 0xDC00 || lo > 0xDFFF)
                        goto out;
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                    goto out;
                }
                break;
            default:
                goto out;
            }
            if (buf != NULL)
                put_utf8(&buf, &n, &cap, cp);
            continue;
        }
        /* Raw bytes are copied as they are; jansson validates UTF-8 for the real parse. */
        if (buf != NULL) {
            if (n + 2 > cap) {
                cap *= 2;
                buf = tg_xrealloc(buf, cap);
            }
            buf[n++] = (char)ch;
        }
    }
    if (buf != NULL) {
        buf[n] = '\0';
        *out = buf;
        *out_len = n;
        buf = NULL;
    }
    rc = 0;
out:
    free(buf);
    return rc;
}

static bool is_digit(unsigned char ch)
{
    return ch >= '0' && ch <= '9';
}

static int read_number(struct walker *w)
{
    if (w->i < w->len && w->p[w->i] == '-')
        w->i++;
    if (w->i >= w->len || !is_digit(w->p[w->i]))
        return -EINVAL;
    if (w->p[w->i] == '0') {
        w->i++;
    } else {
        while (w->i < w->len && is_digit(w->p[w->i]))
            w->i++;
    }
    if (w->i < w->len && w->p[w->i] == '.') {
        w->i++;
        if (w->i >= w->len || !is_digit(w->p[w->i]))
            return -EINVAL;
        while (w->i < w->len && is_digit(w->p[w->i]))
            w->i++;
    }
    if (w->i < w->len && (w->p[w->i] == 'e' || w->p[w->i] == 'E')) {
        w->i++;
        if (w->i < w->len && (w->p[w->i] == '+' || w->p[w->i] == '-'))
            w->i++;
        if (w->i >= w->len || !is_digit(w->p[w->i]))
            return -EINVAL;
        while (w->i < w->len && is_digit(w->p[w->i]))
            w->i++;
    }
    return 0;
}

static int read_literal(struct walker *w, const char *lit)
{
    size_t n = strlen(lit);
    if (w->len - w->i < n || memcmp(w->p + w->i, lit, n) != 0)
        return -EINVAL;
    w->i += n;
    return 0;
}

static int read_value(struct walker *w);

/* After a member or element: consumes ',' (returns 0: another follows) or the closing bracket
 * (returns 1); -EINVAL for anything else. */
static int after_member(struct walker *w, char close)
{
    skip_ws(w);
    if (w->i >= w->len)
        return -EINVAL;
    char ch = w->p[w->i++];
    if (ch == close)
        return 1;
    return ch == ',' ? 0 : -EINVAL;
}

static int read_object(struct walker *w)
{
    w->i++; /* '{' */
    skip_ws(w);
    if (w->i < w->len && w->p[w->i] == '}') {
        w->i++;
        return 0;
    }
    for (;;) {
        skip_ws(w);
        if (w->i >= w->len || w->p[w->i] != '"')
            return -EINVAL;
        size_t at = w->i, ls = w->line_start, base = w->plen;
        int line = w->line;
        char *key = NULL;
        size_t klen = 0;
        if (read_string(w, &key, &klen) != 0)
            return -EINVAL;
        path_push(w, key, strnlen(key, klen));
        free(key);
        int rc = record(w, ls, line, at, true);
        if (rc != 0)
            return rc;
        skip_ws(w);
        if (w->i >= w->len || w->p[w->i] != ':')
            return -EINVAL;
        w->i++;
        skip_ws(w);
        rc = read_value(w);
        if (rc != 0)
            return rc;
        path_pop(w, base);
        int end = after_member(w, '}');
        if (end != 0)
            return end > 0 ? 0 : end;
    }
}

static int read_array(struct walker *w)
{
    w->i++; /* '[' */
    skip_ws(w);
    if (w->i < w->len && w->p[w->i] == ']') {
        w->i++;
        return 0;
    }
    for (size_t idx = 0;; idx++) {
        char tok[24];
        size_t base = w->plen;
        int tn = snprintf(tok, sizeof(tok), "%zu", idx);
        path_push(w, tok, (size_t)tn);
        skip_ws(w);
        int rc = read_value(w);
        if (rc != 0)
            return rc;
        path_pop(w, base);
        int end = after_member(w, ']');
        if (end != 0)
            return end > 0 ? 0 : end;
    }
}

/* Reads one value at the current position (whitespace already skipped) under the current path. */
static int read_value(struct walker *w)
{
    if (w->i >= w->len)
        return -EINVAL;
    int rc = record(w, w->line_start, w->line, w->i, false);
    if (rc != 0)
        return rc;
    switch (w->p[w->i]) {
    case '{':
    case '[':
        if (w->depth >= MAX_DEPTH)
            return -EINVAL;
        w->depth++;
        rc = w->p[w->i] == '{' ? read_object(w) : read_array(w);
        w->depth--;
        return rc;
    case '"':
        return read_string(w, NULL, NULL);
    case 't':
        return read_literal(w, "true");
    case 'f':
        return read_literal(w, "false");
    case 'n':
        return read_literal(w, "null");
    default:
        return read_number(w);
    }
}

static int entry_cmp(const void *a, const void *b)
{
    const struct tg_config__loc_entry *x = a, *y = b;
    int c = strcmp(x->ptr, y->ptr);
    if (c != 0)
        return c;
    return (int)x->is_key - (int)y->is_key;
}

int tg_config__jsonloc_build(struct tg_config__jsonloc *jl, const char *text, size_t len)
{
    struct walker w = {.p = (const unsigned char *)text, .len = len, .line = 1, .jl = jl};
    int rc;

    memset(jl, 0, sizeof(*jl));
    path_reserve(&w, 0);
    w.path[0] = '\0';
    skip_ws(&w);
    rc = read_value(&w);
    if (rc == 0) {
        skip_ws(&w);
        if (w.i != w.len)
            rc = -EINVAL;
    }
    free(w.path);
    if (jl->n > 1)
        qsort(jl->v, jl->n, sizeof(*jl->v), entry_cmp);
    return rc;
}

void tg_config__jsonloc_free(struct tg_config__jsonloc *jl)
{
    for (size_t i = 0; i < jl->n; i++)
        free(jl->v[i].ptr);
    free(jl->v);
    memset(jl, 0, sizeof(*jl));
}

int tg_config__jsonloc_find(const struct tg_config__jsonloc *jl, const char *ptr, bool key,
                            int *line, int *col)
{
    struct tg_config__loc_entry probe = {.ptr = (char *)ptr, .is_key = key};
    const struct tg_config__loc_entry *e;

    if (jl->n == 0)
        return -ENOENT;
    e = bsearch(&probe, jl->v, jl->n, sizeof(*jl->v), entry_cmp);
    if (e == NULL)
        return -ENOENT;
    *line = e->line;
    *col = e->col;
    return 0;
}

char *tg_config__ptr_join(const char *base, const char *token)
{
    size_t bl = strlen(base), tl = strlen(token);
    char *s = tg_xmalloc(bl + 1 + 2 * tl + 1);
    size_t n = bl;

    memcpy(s, base, bl);
    s[n++] = '/';
    for (size_t i = 0; i < tl; i++) {
        if (token[i] == '~' || token[i] == '/') {
            s[n++] = '~';
            s[n++] = token[i] == '~' ? '0' : '1';
        } else {
            s[n++] = token[i];
        }
    }
    s[n] = '\0';
    return s;
}

char *tg_config__ptr_index(const char *base, size_t i)
{
    return tg_xasprintf("%s/%zu", base, i);
}
