/* A strict TOML 1.0 parser into jansson trees (for `tlsgate import` of micro-gw.conf and
 * deployment.toml): refuses what it does not read rather than guessing. */
#include "config/toml.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/internal.h"
#include "core/core.h"

#define MAX_DEPTH  64   /* nesting of arrays and inline tables */
#define MAX_TABLES 4096 /* tables and arrays of tables tracked for redefinition rules */
#define MAX_KEYS   32   /* segments of one dotted key */

/* How a table came to be; decides whether a later header or dotted key may define it. */
enum {
    T_IMPLICIT = 1, /* an intermediate of a [a.b] header: [a] may still define it once */
    T_HEADER = 2,   /* defined by a [header] or as an element of [[header]] */
    T_DOTTED = 4,   /* made by a dotted key in the current table section */
    T_INLINE = 8,   /* an inline table or static array: closed */
    T_AOT = 16,     /* an array made by [[header]] */
};

struct meta {
    json_t *v;
    unsigned flags;
};

struct seg {
    char *s;
    size_t n;
};

struct p {
    const char *s;
    size_t len, i;
    int line;
    size_t line_start;
    struct tg_toml_error *err;
    bool failed;
    struct tg_doc_lines *lines;
    struct meta *meta;
    size_t n_meta;
    int depth;
};

__attribute__((format(printf, 2, 3))) static void fail(struct p *p, const char *fmt, ...)
{
    if (p->failed)
        return;
    p->failed = true;
    p->err->line = p->line;
    p->err->col = (int)(p->i - p->line_start) + 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err->msg, sizeof(p->err->msg), fmt, ap);
    va_end(ap);
}

/* A character for a message: itself if printable ASCII, else its byte value. */
static const char *shown(int c, char *b, size_t n)
{
    if (c > 0x20 && c < 0x7f)
        snprintf(b, n, "'%c'", c);
    else
        snprintf(b, n, "byte 0x%02x", c & 0xff);
    return b;
}

static int peek(const struct p *p, size_t off)
{
    return p->i + off < p->len ? (unsigned char)p->s[p->i + off] : -1;
}

static unsigned *flags_of(struct p *p, json_t *v)
{
    for (size_t k = 0; k < p->n_meta; k++)
        if (p->meta[k].v == v)
            return &p->meta[k].flags;
    return NULL;
}

static bool track(struct p *p, json_t *v, unsigned flags)
{
    if (p->n_meta == MAX_TABLES) {
        fail(p, "more than %d tables", MAX_TABLES);
        return false;
    }
    p->meta[p->n_meta].v = v;
    p->meta[p->n_meta].flags = flags;
    p->n_meta++;
    return true;
}

/* ---- positions ---- */

static void doc_add(struct tg_doc_lines *dl, char *ptr, int line, int col)
{
    if (dl->n == dl->cap) {
        dl->cap = dl->cap ? dl->cap * 2 : 64;
        dl->v = tg_xrealloc(dl->v, dl->cap * sizeof(*dl->v));
    }
    dl->v[dl->n].ptr = ptr;
    dl->v[dl->n].line = line;
    dl->v[dl->n].col = col;
    dl->n++;
}

static char *ptr_join(const char *base, const char *tok, size_t n)
{
    size_t bl = strlen(base), extra = 0;
    for (size_t k = 0; k < n; k++)
        extra += tok[k] == '~' || tok[k] == '/';
    char *r = tg_xmalloc(bl + 1 + n + extra + 1), *w = r + bl;
    memcpy(r, base, bl);
    *w++ = '/';
    for (size_t k = 0; k < n; k++) {
        if (tok[k] == '~' || tok[k] == '/') {
            *w++ = '~';
            *w++ = tok[k] == '~' ? '0' : '1';
        } else {
            *w++ = tok[k];
        }
    }
    *w = '\0';
    return r;
}

static char *ptr_index(const char *base, size_t idx)
{
    char num[24];
    int n = snprintf(num, sizeof(num), "%zu", idx);
    return ptr_join(base, num, (size_t)n);
}

static void record(struct p *p, const char *ptr, int line, int col)
{
    if (p->lines != NULL)
        doc_add(p->lines, tg_xstrdup(ptr), line, col);
}

/* ---- lexical helpers ---- */

/* Length of the UTF-8 sequence at p->i if valid (no surrogates, no overlongs), else 0. */
static size_t utf8_len(const struct p *p)
{
    const unsigned char *u = (const unsigned char *)p->s + p->i;
    size_t left = p->len - p->i;
    uint32_t cp;
    size_t n;
    if (u[0] < 0x80)
        return 1;
    if (u[0] >= 0xc2 && u[0] <= 0xdf)
        n = 2, cp = u[0] & 0x1f;
    else if (u[0] >= 0xe0 && u[0] <= 0xef)
        n = 3, cp = u[0] & 0x0f;
    else if (u[0] >= 0xf0 && u[0] <= 0xf4)
        n = 4, cp = u[0] & 0x07;
    else
        return 0;
    if (left < n)
        return 0;
    for (size_t k = 1; k < n; k++) {
        if ((u[k] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (u[k] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

static void newline_at(struct p *p)
{
    p->line++;
    p->line_start = p->i;
}

/* Consumes a newline (LF or CRLF) if one is here. */
static bool eat_newline(struct p *p)
{
    if (peek(p, 0) == '\n') {
        p->i++;
        newline_at(p);
        return true;
    }
    if (peek(p, 0) == '\r' && peek(p, 1) == '\n') {
        p->i += 2;
        newline_at(p);
        return true;
    }
    return false;
}

static void skip_ws(struct p *p)
{
    while (peek(p, 0) == ' ' || peek(p, 0) == '\t')
        p->i++;
}

/* A comment up to (not including) its newline. */
static void skip_comment(struct p *p)
{
    if (peek(p, 0) != '#')
        return;
    p->i++;
    while (!p->failed && p->i < p->len && p->s[p->i] != '\n') {
        int c = peek(p, 0);
        if (c == '\r' && peek(p, 1) == '\n')
            return;
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            fail(p, "control character 0x%02x in a comment", c);
            return;
        }
        size_t n = utf8_len(p);
        if (n == 0) {
            fail(p, "invalid UTF-8 in a comment");
            return;
        }
        p->i += n;
    }
}

/* Whitespace, comments and newlines (inside arrays). */
static void skip_ws_nl(struct p *p)
{
    for (;;) {
        skip_ws(p);
        skip_comment(p);
        if (p->failed || !eat_newline(p))
            return;
    }
}

/* After a key/value pair or header: only whitespace, a comment, then a newline or the end. */
static void end_of_line(struct p *p)
{
    skip_ws(p);
    skip_comment(p);
    if (p->failed || p->i >= p->len || eat_newline(p))
        return;
    if (peek(p, 0) == '\r')
        fail(p, "a carriage return not followed by a newline");
    else {
        char cb[16];
        fail(p, "expected the end of the line, found %s", shown(peek(p, 0), cb, sizeof(cb)));
    }
}

/* ---- strings ---- */

struct sbuf {
    char *b;
    size_t n, cap;
};

static void sb_put(struct sbuf *sb, const char *s, size_t n)
{
    if (sb->n + n + 1 > sb->cap) {
        while (sb->n + n + 1 > sb->cap)
            sb->cap = sb->cap ? sb->cap * 2 : 64;
        sb->b = tg_xrealloc(sb->b, sb->cap);
    }
    memcpy(sb->b + sb->n, s, n);
    sb->n += n;
    sb->b[sb->n] = '\0';
}

static void sb_utf8(struct sbuf *sb, uint32_t cp)
{
    char o[4];
    size_t n;
    if (cp < 0x80)
        o[0] = (char)cp, n = 1;
    else if (cp < 0x800)
        o[0] = (char)(0xc0 | (cp >> 6)), o[1] = (char)(0x80 | (cp & 0x3f)), n = 2;
    else if (cp < 0x10000)
        o[0] = (char)(0xe0 | (cp >> 12)), o[1] = (char)(0x80 | ((cp >> 6) & 0x3f)),
        o[2] = (char)(0x80 | (cp & 0x3f)), n = 3;
    else
        o[0] = (char)(0xf0 | (cp >> 18)), o[1] = (char)(0x80 | ((cp >> 12) & 0x3f)),
        o[2] = (char)(0x80 | ((cp >> 6) & 0x3f)), o[3] = (char)(0x80 | (cp & 0x3f)), n = 4;
    sb_put(sb, o, n);
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* An escape after the backslash of a basic string. */
static void escape(struct p *p, struct sbuf *sb)
{
    int c = peek(p, 0);
    const char *simple = "b\bt\tn\nf\fr\r\"\"\\\\";
    for (const char *e = simple; *e; e += 2) {
        if (c == e[0]) {
            sb_put(sb, e + 1, 1);
            p->i++;
            return;
        }
    }
    if (c == 'u' || c == 'U') {
        int digits = c == 'u' ? 4 : 8;
        uint32_t cp = 0;
        p->i++;
        for (int k = 0; k < digits; k++) {
            int h = hexval(peek(p, 0));
            if (h < 0) {
                fail(p, "\\%c needs %d hex digits", c, digits);
                return;
            }
            cp = cp * 16 + (uint32_t)h;
            p->i++;
        }
        if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
            fail(p, "\\%c escape U+%04X is not a Unicode scalar value", c, cp);
            return;
        }
        sb_utf8(sb, cp);
        return;
    }
    if (c < 0)
        fail(p, "the text ends inside a string escape");
    else
        fail(p, "unknown escape '\\%c'", c >= 0x20 && c < 0x7f ? c : '?');
}

/* A string of any of the four kinds; p->i is at its opening quote. */
static bool parse_string(struct p *p, struct sbuf *sb, bool allow_multi)
{
    char q = p->s[p->i];
    bool basic = q == '"';
    bool multi = peek(p, 1) == q && peek(p, 2) == q;
    if (multi && !allow_multi) {
        fail(p, "a key cannot be a multi-line string");
        return false;
    }
    p->i += multi ? 3 : 1;
    sb_put(sb, "", 0);
    if (multi)
        eat_newline(p); /* a newline right after the opening delimiter is trimmed */
    for (;;) {
        if (p->failed)
            return false;
        int c = peek(p, 0);
        if (c < 0) {
            fail(p, "the text ends inside a string");
            return false;
        }
        if (c == q) {
            if (!multi) {
                p->i++;
                return true;
            }
            if (peek(p, 1) == q && peek(p, 2) == q) {
                /* up to two quotes may sit right before the closing delimiter */
                size_t run = 3;
                while (run < 5 && peek(p, run) == q)
                    run++;
                sb_put(sb, p->s + p->i, run - 3);
                p->i += run;
                return true;
            }
            sb_put(sb, p->s + p->i, 1);
            p->i++;
            continue;
        }
        if (c == '\n' || (c == '\r' && peek(p, 1) == '\n')) {
            if (!multi) {
                fail(p, "a newline inside a single-line string");
                return false;
            }
            sb_put(sb, "\n", 1);
            eat_newline(p);
            continue;
        }
        if (basic && c == '\\') {
            p->i++;
            if (multi) {
                /* a line-ending backslash trims the newline and the whitespace after it */
                size_t save = p->i;
                skip_ws(p);
                if (peek(p, 0) == '\n' || (peek(p, 0) == '\r' && peek(p, 1) == '\n')) {
                    while (eat_newline(p) || peek(p, 0) == ' ' || peek(p, 0) == '\t')
                        if (peek(p, 0) == ' ' || peek(p, 0) == '\t')
                            p->i++;
                    continue;
                }
                p->i = save;
            }
            escape(p, sb);
            continue;
        }
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            fail(p, "control character 0x%02x in a string (write it as an escape)", c);
            return false;
        }
        size_t n = utf8_len(p);
        if (n == 0) {
            fail(p, "invalid UTF-8 in a string");
            return false;
        }
        sb_put(sb, p->s + p->i, n);
        p->i += n;
    }
}

/* ---- keys ---- */

static bool is_bare(int c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

static void segs_free(struct seg *k, size_t n)
{
    for (size_t j = 0; j < n; j++)
        free(k[j].s);
}

/* A (dotted) key; returns the number of segments, 0 on failure. */
static size_t parse_key(struct p *p, struct seg *k)
{
    size_t n = 0;
    for (;;) {
        skip_ws(p);
        if (n == MAX_KEYS) {
            fail(p, "a key of more than %d parts", MAX_KEYS);
            break;
        }
        int c = peek(p, 0);
        if (c == '"' || c == '\'') {
            struct sbuf sb = {0};
            if (!parse_string(p, &sb, false)) {
                free(sb.b);
                break;
            }
            if (memchr(sb.b, '\0', sb.n) != NULL) {
                fail(p, "a key may not hold U+0000");
                free(sb.b);
                break;
            }
            k[n].s = sb.b;
            k[n].n = sb.n;
        } else if (is_bare(c)) {
            size_t st = p->i;
            while (is_bare(peek(p, 0)))
                p->i++;
            k[n].s = tg_xmalloc(p->i - st + 1);
            memcpy(k[n].s, p->s + st, p->i - st);
            k[n].s[p->i - st] = '\0';
            k[n].n = p->i - st;
        } else {
            if (c < 0 || c == '\n' || c == '\r')
                fail(p, "expected a key");
            else {
                char cb[16];
                fail(p, "expected a key, found %s", shown(c, cb, sizeof(cb)));
            }
            break;
        }
        n++;
        skip_ws(p);
        if (peek(p, 0) != '.')
            return n;
        p->i++;
    }
    segs_free(k, n);
    return 0;
}

/* ---- values ---- */

static json_t *parse_value(struct p *p, const char *ptr);
static void set_pair(struct p *p, json_t *tbl, const char *tbl_ptr, unsigned dotted_flags);

static bool is_numch(int c)
{
    return is_bare(c) || c == '+' || c == '.' || c == ':';
}

/* Integers (decimal, 0x, 0o, 0b, with single underscores between digits), floats, inf, nan. */
static json_t *parse_number(struct p *p)
{
    size_t st = p->i;
    while (is_numch(peek(p, 0)))
        p->i++;
    size_t n = p->i - st;
    const char *t = p->s + st;
    char buf[80];
    if (n == 0 || !(t[0] == '+' || t[0] == '-' || (t[0] >= '0' && t[0] <= '9') ||
                    (n == 3 && (memcmp(t, "inf", 3) == 0 || memcmp(t, "nan", 3) == 0)))) {
        p->i = st;
        if (n > 0)
            fail(p, "expected a value (a string must be quoted)");
        else if (peek(p, 0) < 0 || peek(p, 0) == '\n' || peek(p, 0) == '\r')
            fail(p, "expected a value");
        else {
            char cb[16];
            fail(p, "expected a value, found %s", shown(peek(p, 0), cb, sizeof(cb)));
        }
        return NULL;
    }
    p->i = st;
    if (n >= sizeof(buf)) {
        fail(p, "a number of more than %zu characters", sizeof(buf) - 1);
        return NULL;
    }
    if (memchr(t, ':', n) != NULL || (n >= 5 && t[4] == '-' && t[0] != '-' && t[0] != '+')) {
        fail(p, "dates and times are not supported here; quote the value");
        return NULL;
    }
    size_t k = 0;
    bool neg = false;
    if (t[0] == '+' || t[0] == '-')
        neg = t[0] == '-', k = 1;
    if (n - k == 3 && (memcmp(t + k, "inf", 3) == 0 || memcmp(t + k, "nan", 3) == 0)) {
        p->i += n;
        /* JSON has neither; a gateway setting never needs them */
        fail(p, "inf and nan are not supported");
        return NULL;
    }
    int base = 10;
    if (k == 0 && n > 2 && t[0] == '0' && (t[1] == 'x' || t[1] == 'o' || t[1] == 'b')) {
        base = t[1] == 'x' ? 16 : t[1] == 'o' ? 8 : 2;
        k = 2;
    }
    /* digits with single underscores between them; decimal allows '.', 'e', sign after 'e' */
    size_t w = 0;
    bool is_float = false, prev_digit = false, in_exp = false, frac_pending = false;
    for (size_t j = k; j < n; j++) {
        int c = (unsigned char)t[j];
        int d = hexval(c);
        bool digit = d >= 0 && d < base && !(base == 10 && (c == 'e' || c == 'E'));
        if (digit) {
            buf[w++] = (char)c;
            prev_digit = true;
            frac_pending = false;
            continue;
        }
        if (c == '_' && prev_digit && j + 1 < n && hexval((unsigned char)t[j + 1]) >= 0 &&
            hexval((unsigned char)t[j + 1]) < base) {
            prev_digit = false;
            continue;
        }
        if (base == 10 && c == '.' && prev_digit && !is_float && !in_exp) {
            buf[w++] = '.';
            is_float = true;
            prev_digit = false;
            frac_pending = true;
            continue;
        }
        if (base == 10 && (c == 'e' || c == 'E') && prev_digit && !in_exp) {
            buf[w++] = 'e';
            is_float = in_exp = true;
            prev_digit = false;
            if (j + 1 < n && (t[j + 1] == '+' || t[j + 1] == '-'))
                buf[w++] = t[++j];
            continue;
        }
        p->i = st + j;
        fail(p, "malformed number");
        return NULL;
    }
    if (!prev_digit || frac_pending || w == 0) {
        p->i = st + n;
        fail(p, "malformed number");
        return NULL;
    }
    buf[w] = '\0';
    size_t int_end = 0;
    while (int_end < w && buf[int_end] != '.' && buf[int_end] != 'e')
        int_end++;
    if (base == 10 && buf[0] == '0' && int_end > 1) {
        fail(p, "leading zeros are not allowed in a decimal number");
        return NULL;
    }
    p->i += n;
    if (is_float) {
        char fb[84];
        snprintf(fb, sizeof(fb), "%s%s", neg ? "-" : "", buf);
        return json_real(strtod(fb, NULL));
    }
    uint64_t v = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (size_t j = 0; j < w; j++) {
        uint64_t d = (uint64_t)hexval((unsigned char)buf[j]);
        if (v > (lim - d) / (uint64_t)base) {
            fail(p, "integer out of range (64 bits)");
            return NULL;
        }
        v = v * (uint64_t)base + d;
    }
    return json_integer(neg ? (json_int_t)(0 - v) : (json_int_t)v);
}

static json_t *parse_array(struct p *p, const char *ptr)
{
    json_t *arr = json_array();
    p->i++; /* '[' */
    for (;;) {
        skip_ws_nl(p);
        if (p->failed)
            break;
        if (peek(p, 0) == ']') {
            p->i++;
            return arr;
        }
        char *eptr = ptr_index(ptr, json_array_size(arr));
        record(p, eptr, p->line, (int)(p->i - p->line_start) + 1);
        json_t *v = parse_value(p, eptr);
        free(eptr);
        if (v == NULL)
            break;
        json_array_append_new(arr, v);
        skip_ws_nl(p);
        if (p->failed)
            break;
        if (peek(p, 0) == ',') {
            p->i++;
            continue;
        }
        if (peek(p, 0) == ']') {
            p->i++;
            return arr;
        }
        fail(p, "expected ',' or ']' in an array");
        break;
    }
    json_decref(arr);
    return NULL;
}

static json_t *parse_inline_table(struct p *p, const char *ptr)
{
    json_t *tbl = json_object();
    size_t first_meta = p->n_meta;
    if (!track(p, tbl, T_INLINE)) {
        json_decref(tbl);
        return NULL;
    }
    p->i++; /* '{' */
    skip_ws(p);
    if (peek(p, 0) == '}') {
        p->i++;
        return tbl;
    }
    for (;;) {
        set_pair(p, tbl, ptr, T_DOTTED | T_INLINE);
        if (p->failed)
            break;
        skip_ws(p);
        if (peek(p, 0) == ',') {
            p->i++;
            continue;
        }
        if (peek(p, 0) == '}') {
            p->i++;
            return tbl;
        }
        fail(p, "expected ',' or '}' in an inline table (which must fit on one line)");
        break;
    }
    p->n_meta = first_meta; /* forget tables that go away with this one */
    json_decref(tbl);
    return NULL;
}

static json_t *parse_value(struct p *p, const char *ptr)
{
    int c = peek(p, 0);
    json_t *v = NULL;
    if (p->depth >= MAX_DEPTH) {
        fail(p, "arrays and inline tables nested deeper than %d", MAX_DEPTH);
        return NULL;
    }
    p->depth++;
    if (c == '"' || c == '\'') {
        struct sbuf sb = {0};
        if (parse_string(p, &sb, true))
            v = json_stringn(sb.b, sb.n);
        free(sb.b);
    } else if (c == '[') {
        v = parse_array(p, ptr);
    } else if (c == '{') {
        v = parse_inline_table(p, ptr);
    } else if (p->len - p->i >= 4 && memcmp(p->s + p->i, "true", 4) == 0 && !is_numch(peek(p, 4))) {
        p->i += 4;
        v = json_true();
    } else if (p->len - p->i >= 5 && memcmp(p->s + p->i, "false", 5) == 0 &&
               !is_numch(peek(p, 5))) {
        p->i += 5;
        v = json_false();
    } else {
        v = parse_number(p);
    }
    p->depth--;
    if (v == NULL && !p->failed)
        fail(p, "out of memory");
    return v;
}

/* key = value into tbl; intermediate tables of a dotted key get dotted_flags. */
static void set_pair(struct p *p, json_t *tbl, const char *tbl_ptr, unsigned dotted_flags)
{
    struct seg k[MAX_KEYS];
    skip_ws(p);
    int line = p->line, col = (int)(p->i - p->line_start) + 1;
    size_t key_at = p->i; /* redefinitions are reported at the key */
    size_t n = parse_key(p, k);
    if (n == 0)
        return;
    char *ptr = tg_xstrdup(tbl_ptr);
    json_t *cur = tbl;
    for (size_t j = 0; j + 1 < n && !p->failed; j++) {
        char *np = ptr_join(ptr, k[j].s, k[j].n);
        free(ptr);
        ptr = np;
        json_t *next = json_object_getn(cur, k[j].s, k[j].n);
        if (next == NULL) {
            next = json_object();
            json_object_setn_new(cur, k[j].s, k[j].n, next);
            track(p, next, dotted_flags);
            record(p, ptr, line, col);
        } else {
            unsigned *f = flags_of(p, next);
            if (f == NULL || !(*f & T_DOTTED) || ((*f & T_INLINE) && !(dotted_flags & T_INLINE))) {
                p->i = key_at;
                fail(p, "key \"%s\" is already defined and cannot be extended here", k[j].s);
            }
        }
        cur = next;
    }
    if (!p->failed) {
        char *np = ptr_join(ptr, k[n - 1].s, k[n - 1].n);
        free(ptr);
        ptr = np;
        if (json_object_getn(cur, k[n - 1].s, k[n - 1].n) != NULL) {
            p->i = key_at;
            fail(p, "duplicate key \"%s\"", k[n - 1].s);
        } else {
            skip_ws(p);
            if (peek(p, 0) != '=') {
                fail(p, "expected '=' after the key");
            } else {
                p->i++;
                skip_ws(p);
                record(p, ptr, line, col);
                json_t *v = parse_value(p, ptr);
                if (v != NULL)
                    json_object_setn_new(cur, k[n - 1].s, k[n - 1].n, v);
            }
        }
    }
    free(ptr);
    segs_free(k, n);
}

/* [a.b] or [[a.b]]: returns the table later pairs go to, with its pointer in *ptr_out. */
static json_t *parse_header(struct p *p, json_t *root, char **ptr_out)
{
    struct seg k[MAX_KEYS];
    int line = p->line, col = (int)(p->i - p->line_start) + 1;
    size_t at = p->i;
    bool aot = peek(p, 1) == '[';
    p->i += aot ? 2 : 1;
    size_t n = parse_key(p, k);
    if (n == 0)
        return NULL;
    if (peek(p, 0) != ']' || (aot && peek(p, 1) != ']')) {
        fail(p, aot ? "expected ']]' after the table name" : "expected ']' after the table name");
        segs_free(k, n);
        return NULL;
    }
    p->i += aot ? 2 : 1;
    char *ptr = tg_xstrdup("");
    json_t *cur = root;
    for (size_t j = 0; j < n && !p->failed; j++) {
        bool last = j + 1 == n;
        char *np = ptr_join(ptr, k[j].s, k[j].n);
        free(ptr);
        ptr = np;
        json_t *next = json_object_getn(cur, k[j].s, k[j].n);
        if (next == NULL) {
            if (last && aot) {
                next = json_array();
                track(p, next, T_AOT);
            } else {
                next = json_object();
                track(p, next, last ? T_HEADER : T_IMPLICIT);
            }
            json_object_setn_new(cur, k[j].s, k[j].n, next);
            record(p, ptr, line, col);
        } else {
            unsigned *f = flags_of(p, next);
            if (f == NULL || (*f & T_INLINE)) {
                p->i = at;
                fail(p, "\"%s\" is already a value and cannot be a table", k[j].s);
                break;
            }
            if (last && !aot) {
                if (!json_is_object(next) || !(*f & T_IMPLICIT)) {
                    p->i = at;
                    fail(p, "table [%s] is defined twice", ptr + 1);
                    break;
                }
                *f = T_HEADER;
            } else if (last && aot && !json_is_array(next)) {
                p->i = at;
                fail(p, "\"%s\" is a table, not an array of tables", k[j].s);
                break;
            }
        }
        if (json_is_array(next)) {
            if (last) {
                json_t *el = json_object();
                json_array_append_new(next, el);
                track(p, el, T_HEADER);
                np = ptr_index(ptr, json_array_size(next) - 1);
                free(ptr);
                ptr = np;
                record(p, ptr, line, col);
                next = el;
            } else {
                next = json_array_get(next, json_array_size(next) - 1);
                np = ptr_index(ptr, json_array_size(json_object_getn(cur, k[j].s, k[j].n)) - 1);
                free(ptr);
                ptr = np;
            }
        }
        cur = next;
    }
    segs_free(k, n);
    if (p->failed) {
        free(ptr);
        return NULL;
    }
    /* dotted-key tables of earlier sections are closed to later sections */
    for (size_t m = 0; m < p->n_meta; m++)
        if (p->meta[m].flags & T_DOTTED && !(p->meta[m].flags & T_INLINE))
            p->meta[m].flags = (p->meta[m].flags & ~(unsigned)T_DOTTED) | T_HEADER;
    *ptr_out = ptr;
    return cur;
}

int tg_config_toml_parse(const char *buf, size_t len, json_t **out, struct tg_doc_lines *lines,
                         struct tg_toml_error *err)
{
    struct p p = {.s = buf, .len = len, .line = 1, .err = err, .lines = lines};
    json_t *root = json_object();
    json_t *cur = root;
    char *cur_ptr = tg_xstrdup("");
    memset(err, 0, sizeof(*err));
    *out = NULL;
    p.meta = tg_xmalloc(MAX_TABLES * sizeof(*p.meta));
    track(&p, root, T_HEADER);
    if (len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0)
        p.i = 3, p.line_start = 3;
    while (!p.failed && p.i < p.len) {
        skip_ws(&p);
        int c = peek(&p, 0);
        if (c == '#' || c == '\n' || c == '\r' || c < 0) {
            end_of_line(&p);
            continue;
        }
        if (c == '[') {
            char *np = NULL;
            json_t *t = parse_header(&p, root, &np);
            if (t != NULL) {
                cur = t;
                free(cur_ptr);
                cur_ptr = np;
            }
        } else {
            set_pair(&p, cur, cur_ptr, T_DOTTED);
        }
        if (!p.failed)
            end_of_line(&p);
    }
    free(cur_ptr);
    free(p.meta);
    if (p.failed) {
        json_decref(root);
        return -EINVAL;
    }
    *out = root;
    return 0;
}

/* ---- JSON documents and lookups ---- */

int tg_config_json_lines(const char *text, size_t len, struct tg_doc_lines *lines)
{
    struct tg_config__jsonloc jl;
    int rc = tg_config__jsonloc_build(&jl, text, len);
    for (size_t k = 0; k < jl.n; k++)
        doc_add(lines, tg_xstrdup(jl.v[k].ptr), jl.v[k].line, jl.v[k].col);
    tg_config__jsonloc_free(&jl);
    return rc;
}

int tg_config_doc_find(const struct tg_doc_lines *lines, const char *ptr, int *line, int *col)
{
    for (size_t k = 0; k < lines->n; k++) {
        if (strcmp(lines->v[k].ptr, ptr) == 0) {
            *line = lines->v[k].line;
            *col = lines->v[k].col;
            return 0;
        }
    }
    return -ENOENT;
}

void tg_config_doc_lines_free(struct tg_doc_lines *lines)
{
    for (size_t k = 0; k < lines->n; k++)
        free(lines->v[k].ptr);
    free(lines->v);
    lines->v = NULL;
    lines->n = lines->cap = 0;
}
