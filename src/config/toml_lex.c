/* The lexical half of the TOML parser (config/toml.c): whitespace, comments, newlines, UTF-8,
 * strings of the four kinds and numbers. */
#include "config/toml.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/internal.h"
#include "core/core.h"

__attribute__((format(printf, 2, 3))) void tg_config__toml_fail(struct tg_config__toml *p,
                                                                const char *fmt, ...)
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
const char *tg_config__toml_shown(int c, char *b, size_t n)
{
    if (c > 0x20 && c < 0x7f)
        snprintf(b, n, "'%c'", c);
    else
        snprintf(b, n, "byte 0x%02x", c & 0xff);
    return b;
}

int tg_config__toml_peek(const struct tg_config__toml *p, size_t off)
{
    return p->i + off < p->len ? (unsigned char)p->s[p->i + off] : -1;
}

/* ---- lexical helpers ---- */

/* Length of the UTF-8 sequence at p->i if valid (no surrogates, no overlongs), else 0. */
static size_t utf8_len(const struct tg_config__toml *p)
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

static void newline_at(struct tg_config__toml *p)
{
    p->line++;
    p->line_start = p->i;
}

/* Consumes a newline (LF or CRLF) if one is here. */
bool tg_config__toml_eat_newline(struct tg_config__toml *p)
{
    if (tg_config__toml_peek(p, 0) == '\n') {
        p->i++;
        newline_at(p);
        return true;
    }
    if (tg_config__toml_peek(p, 0) == '\r' && tg_config__toml_peek(p, 1) == '\n') {
        p->i += 2;
        newline_at(p);
        return true;
    }
    return false;
}

void tg_config__toml_skip_ws(struct tg_config__toml *p)
{
    while (tg_config__toml_peek(p, 0) == ' ' || tg_config__toml_peek(p, 0) == '\t')
        p->i++;
}

/* A comment up to (not including) its newline. */
static void skip_comment(struct tg_config__toml *p)
{
    if (tg_config__toml_peek(p, 0) != '#')
        return;
    p->i++;
    while (!p->failed && p->i < p->len && p->s[p->i] != '\n') {
        int c = tg_config__toml_peek(p, 0);
        if (c == '\r' && tg_config__toml_peek(p, 1) == '\n')
            return;
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            tg_config__toml_fail(p, "control character 0x%02x in a comment", c);
            return;
        }
        size_t n = utf8_len(p);
        if (n == 0) {
            tg_config__toml_fail(p, "invalid UTF-8 in a comment");
            return;
        }
        p->i += n;
    }
}

/* Whitespace, comments and newlines (inside arrays). */
void tg_config__toml_skip_ws_nl(struct tg_config__toml *p)
{
    for (;;) {
        tg_config__toml_skip_ws(p);
        skip_comment(p);
        if (p->failed || !tg_config__toml_eat_newline(p))
            return;
    }
}

/* After a key/value pair or header: only whitespace, a comment, then a newline or the end. */
void tg_config__toml_end_of_line(struct tg_config__toml *p)
{
    tg_config__toml_skip_ws(p);
    skip_comment(p);
    if (p->failed || p->i >= p->len || tg_config__toml_eat_newline(p))
        return;
    if (tg_config__toml_peek(p, 0) == '\r')
        tg_config__toml_fail(p, "a carriage return not followed by a newline");
    else {
        char cb[16];
        tg_config__toml_fail(p, "expected the end of the line, found %s",
                             tg_config__toml_shown(tg_config__toml_peek(p, 0), cb, sizeof(cb)));
    }
}

/* ---- strings ---- */

static void sb_put(struct tg_config__sbuf *sb, const char *s, size_t n)
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

static void sb_utf8(struct tg_config__sbuf *sb, uint32_t cp)
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
static void escape(struct tg_config__toml *p, struct tg_config__sbuf *sb)
{
    int c = tg_config__toml_peek(p, 0);
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
            int h = hexval(tg_config__toml_peek(p, 0));
            if (h < 0) {
                tg_config__toml_fail(p, "\\%c needs %d hex digits", c, digits);
                return;
            }
            cp = cp * 16 + (uint32_t)h;
            p->i++;
        }
        if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
            tg_config__toml_fail(p, "\\%c escape U+%04X is not a Unicode scalar value", c, cp);
            return;
        }
        sb_utf8(sb, cp);
        return;
    }
    if (c < 0)
        tg_config__toml_fail(p, "the text ends inside a string escape");
    else
        tg_config__toml_fail(p, "unknown escape '\\%c'", c >= 0x20 && c < 0x7f ? c : '?');
}

/* A string of any of the four kinds; p->i is at its opening quote. */
bool tg_config__toml_string(struct tg_config__toml *p, struct tg_config__sbuf *sb, bool allow_multi)
{
    char q = p->s[p->i];
    bool basic = q == '"';
    bool multi = tg_config__toml_peek(p, 1) == q && tg_config__toml_peek(p, 2) == q;
    if (multi && !allow_multi) {
        tg_config__toml_fail(p, "a key cannot be a multi-line string");
        return false;
    }
    p->i += multi ? 3 : 1;
    sb_put(sb, "", 0);
    if (multi)
        tg_config__toml_eat_newline(p); /* a newline right after the opening delimiter is trimmed */
    for (;;) {
        if (p->failed)
            return false;
        int c = tg_config__toml_peek(p, 0);
        if (c < 0) {
            tg_config__toml_fail(p, "the text ends inside a string");
            return false;
        }
        if (c == q) {
            if (!multi) {
                p->i++;
                return true;
            }
            if (tg_config__toml_peek(p, 1) == q && tg_config__toml_peek(p, 2) == q) {
                /* up to two quotes may sit right before the closing delimiter */
                size_t run = 3;
                while (run < 5 && tg_config__toml_peek(p, run) == q)
                    run++;
                sb_put(sb, p->s + p->i, run - 3);
                p->i += run;
                return true;
            }
            sb_put(sb, p->s + p->i, 1);
            p->i++;
            continue;
        }
        if (c == '\n' || (c == '\r' && tg_config__toml_peek(p, 1) == '\n')) {
            if (!multi) {
                tg_config__toml_fail(p, "a newline inside a single-line string");
                return false;
            }
            sb_put(sb, "\n", 1);
            tg_config__toml_eat_newline(p);
            continue;
        }
        if (basic && c == '\\') {
            p->i++;
            if (multi) {
                /* a line-ending backslash trims the newline and the whitespace after it */
                size_t save = p->i;
                tg_config__toml_skip_ws(p);
                if (tg_config__toml_peek(p, 0) == '\n' ||
                    (tg_config__toml_peek(p, 0) == '\r' && tg_config__toml_peek(p, 1) == '\n')) {
                    while (tg_config__toml_eat_newline(p) || tg_config__toml_peek(p, 0) == ' ' ||
                           tg_config__toml_peek(p, 0) == '\t')
                        if (tg_config__toml_peek(p, 0) == ' ' || tg_config__toml_peek(p, 0) == '\t')
                            p->i++;
                    continue;
                }
                p->i = save;
            }
            escape(p, sb);
            continue;
        }
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            tg_config__toml_fail(p, "control character 0x%02x in a string (write it as an escape)",
                                 c);
            return false;
        }
        size_t n = utf8_len(p);
        if (n == 0) {
            tg_config__toml_fail(p, "invalid UTF-8 in a string");
            return false;
        }
        sb_put(sb, p->s + p->i, n);
        p->i += n;
    }
}

bool tg_config__toml_is_bare(int c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

bool tg_config__toml_is_numch(int c)
{
    return tg_config__toml_is_bare(c) || c == '+' || c == '.' || c == ':';
}

/* Integers (decimal, 0x, 0o, 0b, with single underscores between digits), floats, inf, nan. */
json_t *tg_config__toml_number(struct tg_config__toml *p)
{
    size_t st = p->i;
    while (tg_config__toml_is_numch(tg_config__toml_peek(p, 0)))
        p->i++;
    size_t n = p->i - st;
    const char *t = p->s + st;
    char buf[80];
    if (n == 0 || !(t[0] == '+' || t[0] == '-' || (t[0] >= '0' && t[0] <= '9') ||
                    (n == 3 && (memcmp(t, "inf", 3) == 0 || memcmp(t, "nan", 3) == 0)))) {
        p->i = st;
        if (n > 0)
            tg_config__toml_fail(p, "expected a value (a string must be quoted)");
        else if (tg_config__toml_peek(p, 0) < 0 || tg_config__toml_peek(p, 0) == '\n' ||
                 tg_config__toml_peek(p, 0) == '\r')
            tg_config__toml_fail(p, "expected a value");
        else {
            char cb[16];
            tg_config__toml_fail(p, "expected a value, found %s",
                                 tg_config__toml_shown(tg_config__toml_peek(p, 0), cb, sizeof(cb)));
        }
        return NULL;
    }
    p->i = st;
    if (n >= sizeof(buf)) {
        tg_config__toml_fail(p, "a number of more than %zu characters", sizeof(buf) - 1);
        return NULL;
    }
    if (memchr(t, ':', n) != NULL || (n >= 5 && t[4] == '-' && t[0] != '-' && t[0] != '+')) {
        tg_config__toml_fail(p, "dates and times are not supported here; quote the value");
        return NULL;
    }
    size_t k = 0;
    bool neg = false;
    if (t[0] == '+' || t[0] == '-')
        neg = t[0] == '-', k = 1;
    if (n - k == 3 && (memcmp(t + k, "inf", 3) == 0 || memcmp(t + k, "nan", 3) == 0)) {
        p->i += n;
        /* JSON has neither; a gateway setting never needs them */
        tg_config__toml_fail(p, "inf and nan are not supported");
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
        tg_config__toml_fail(p, "malformed number");
        return NULL;
    }
    if (!prev_digit || frac_pending || w == 0) {
        p->i = st + n;
        tg_config__toml_fail(p, "malformed number");
        return NULL;
    }
    buf[w] = '\0';
    size_t int_end = 0;
    while (int_end < w && buf[int_end] != '.' && buf[int_end] != 'e')
        int_end++;
    if (base == 10 && buf[0] == '0' && int_end > 1) {
        tg_config__toml_fail(p, "leading zeros are not allowed in a decimal number");
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
            tg_config__toml_fail(p, "integer out of range (64 bits)");
            return NULL;
        }
        v = v * (uint64_t)base + d;
    }
    return json_integer(neg ? (json_int_t)(0 - v) : (json_int_t)v);
}
