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

struct tg_config__toml_meta {
    json_t *v;
    unsigned flags;
};

struct seg {
    char *s;
    size_t n;
};

static unsigned *flags_of(struct tg_config__toml *p, json_t *v)
{
    for (size_t k = 0; k < p->n_meta; k++)
        if (p->meta[k].v == v)
            return &p->meta[k].flags;
    return NULL;
}

static bool track(struct tg_config__toml *p, json_t *v, unsigned flags)
{
    if (p->n_meta == MAX_TABLES) {
        tg_config__toml_fail(p, "more than %d tables", MAX_TABLES);
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

static void record(struct tg_config__toml *p, const char *ptr, int line, int col)
{
    if (p->lines != NULL)
        doc_add(p->lines, tg_xstrdup(ptr), line, col);
}

/* ---- keys ---- */

static void segs_free(struct seg *k, size_t n)
{
    for (size_t j = 0; j < n; j++)
        free(k[j].s);
}

/* A (dotted) key; returns the number of segments, 0 on failure. */
static size_t parse_key(struct tg_config__toml *p, struct seg *k)
{
    size_t n = 0;
    for (;;) {
        tg_config__toml_skip_ws(p);
        if (n == MAX_KEYS) {
            tg_config__toml_fail(p, "a key of more than %d parts", MAX_KEYS);
            break;
        }
        int c = tg_config__toml_peek(p, 0);
        if (c == '"' || c == '\'') {
            struct tg_config__sbuf sb = {0};
            if (!tg_config__toml_string(p, &sb, false)) {
                free(sb.b);
                break;
            }
            if (memchr(sb.b, '\0', sb.n) != NULL) {
                tg_config__toml_fail(p, "a key may not hold U+0000");
                free(sb.b);
                break;
            }
            k[n].s = sb.b;
            k[n].n = sb.n;
        } else if (tg_config__toml_is_bare(c)) {
            size_t st = p->i;
            while (tg_config__toml_is_bare(tg_config__toml_peek(p, 0)))
                p->i++;
            k[n].s = tg_xmalloc(p->i - st + 1);
            memcpy(k[n].s, p->s + st, p->i - st);
            k[n].s[p->i - st] = '\0';
            k[n].n = p->i - st;
        } else {
            if (c < 0 || c == '\n' || c == '\r')
                tg_config__toml_fail(p, "expected a key");
            else {
                char cb[16];
                tg_config__toml_fail(p, "expected a key, found %s",
                                     tg_config__toml_shown(c, cb, sizeof(cb)));
            }
            break;
        }
        n++;
        tg_config__toml_skip_ws(p);
        if (tg_config__toml_peek(p, 0) != '.')
            return n;
        p->i++;
    }
    segs_free(k, n);
    return 0;
}

/* ---- values ---- */

static json_t *parse_value(struct tg_config__toml *p, const char *ptr);
static void set_pair(struct tg_config__toml *p, json_t *tbl, const char *tbl_ptr,
                     unsigned dotted_flags);

static json_t *parse_array(struct tg_config__toml *p, const char *ptr)
{
    json_t *arr = json_array();
    p->i++; /* '[' */
    for (;;) {
        tg_config__toml_skip_ws_nl(p);
        if (p->failed)
            break;
        if (tg_config__toml_peek(p, 0) == ']') {
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
        tg_config__toml_skip_ws_nl(p);
        if (p->failed)
            break;
        if (tg_config__toml_peek(p, 0) == ',') {
            p->i++;
            continue;
        }
        if (tg_config__toml_peek(p, 0) == ']') {
            p->i++;
            return arr;
        }
        tg_config__toml_fail(p, "expected ',' or ']' in an array");
        break;
    }
    json_decref(arr);
    return NULL;
}

static json_t *parse_inline_table(struct tg_config__toml *p, const char *ptr)
{
    json_t *tbl = json_object();
    size_t first_meta = p->n_meta;
    if (!track(p, tbl, T_INLINE)) {
        json_decref(tbl);
        return NULL;
    }
    p->i++; /* '{' */
    tg_config__toml_skip_ws(p);
    if (tg_config__toml_peek(p, 0) == '}') {
        p->i++;
        return tbl;
    }
    for (;;) {
        set_pair(p, tbl, ptr, T_DOTTED | T_INLINE);
        if (p->failed)
            break;
        tg_config__toml_skip_ws(p);
        if (tg_config__toml_peek(p, 0) == ',') {
            p->i++;
            continue;
        }
        if (tg_config__toml_peek(p, 0) == '}') {
            p->i++;
            return tbl;
        }
        tg_config__toml_fail(p,
                             "expected ',' or '}' in an inline table (which must fit on one line)");
        break;
    }
    p->n_meta = first_meta; /* forget tables that go away with this one */
    json_decref(tbl);
    return NULL;
}

static json_t *parse_value(struct tg_config__toml *p, const char *ptr)
{
    int c = tg_config__toml_peek(p, 0);
    json_t *v = NULL;
    if (p->depth >= MAX_DEPTH) {
        tg_config__toml_fail(p, "arrays and inline tables nested deeper than %d", MAX_DEPTH);
        return NULL;
    }
    p->depth++;
    if (c == '"' || c == '\'') {
        struct tg_config__sbuf sb = {0};
        if (tg_config__toml_string(p, &sb, true))
            v = json_stringn(sb.b, sb.n);
        free(sb.b);
    } else if (c == '[') {
        v = parse_array(p, ptr);
    } else if (c == '{') {
        v = parse_inline_table(p, ptr);
    } else if (p->len - p->i >= 4 && memcmp(p->s + p->i, "true", 4) == 0 &&
               !tg_config__toml_is_numch(tg_config__toml_peek(p, 4))) {
        p->i += 4;
        v = json_true();
    } else if (p->len - p->i >= 5 && memcmp(p->s + p->i, "false", 5) == 0 &&
               !tg_config__toml_is_numch(tg_config__toml_peek(p, 5))) {
        p->i += 5;
        v = json_false();
    } else {
        v = tg_config__toml_number(p);
    }
    p->depth--;
    if (v == NULL && !p->failed)
        tg_config__toml_fail(p, "out of memory");
    return v;
}

/* key = value into tbl; intermediate tables of a dotted key get dotted_flags. */
static void set_pair(struct tg_config__toml *p, json_t *tbl, const char *tbl_ptr,
                     unsigned dotted_flags)
{
    struct seg k[MAX_KEYS];
    tg_config__toml_skip_ws(p);
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
                tg_config__toml_fail(p, "key \"%s\" is already defined and cannot be extended here",
                                     k[j].s);
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
            tg_config__toml_fail(p, "duplicate key \"%s\"", k[n - 1].s);
        } else {
            tg_config__toml_skip_ws(p);
            if (tg_config__toml_peek(p, 0) != '=') {
                tg_config__toml_fail(p, "expected '=' after the key");
            } else {
                p->i++;
                tg_config__toml_skip_ws(p);
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
static json_t *parse_header(struct tg_config__toml *p, json_t *root, char **ptr_out)
{
    struct seg k[MAX_KEYS];
    int line = p->line, col = (int)(p->i - p->line_start) + 1;
    size_t at = p->i;
    bool aot = tg_config__toml_peek(p, 1) == '[';
    p->i += aot ? 2 : 1;
    size_t n = parse_key(p, k);
    if (n == 0)
        return NULL;
    if (tg_config__toml_peek(p, 0) != ']' || (aot && tg_config__toml_peek(p, 1) != ']')) {
        tg_config__toml_fail(p, aot ? "expected ']]' after the table name"
                                    : "expected ']' after the table name");
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
                tg_config__toml_fail(p, "\"%s\" is already a value and cannot be a table", k[j].s);
                break;
            }
            if (last && !aot) {
                if (!json_is_object(next) || !(*f & T_IMPLICIT)) {
                    p->i = at;
                    tg_config__toml_fail(p, "table [%s] is defined twice", ptr + 1);
                    break;
                }
                *f = T_HEADER;
            } else if (last && aot && !json_is_array(next)) {
                p->i = at;
                tg_config__toml_fail(p, "\"%s\" is a table, not an array of tables", k[j].s);
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
    struct tg_config__toml p = {.s = buf, .len = len, .line = 1, .err = err, .lines = lines};
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
        tg_config__toml_skip_ws(&p);
        int c = tg_config__toml_peek(&p, 0);
        if (c == '#' || c == '\n' || c == '\r' || c < 0) {
            tg_config__toml_end_of_line(&p);
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
            tg_config__toml_end_of_line(&p);
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
