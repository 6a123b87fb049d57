/* Escaping of untrusted bytes for log lines (text and JSON) and the small JSON object writer. */
#include "core/esc.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core/core.h"

static const char hex[] = "0123456789abcdef";

/* Length (2..4) of the well-formed UTF-8 sequence starting p[0] (>= 0x80) within n bytes, or 0.
 * Bounds follow Unicode's table of well-formed sequences, which rules out overlongs (C0, C1,
 * E0 80..9F, F0 80..8F), surrogates (ED A0..BF) and code points above U+10FFFF (F4 90.., F5..). */
static size_t utf8_seq(const unsigned char *p, size_t n, uint32_t *cp)
{
    unsigned char c = p[0], lo = 0x80, hi = 0xbf;
    size_t len;
    uint32_t v;
    if (c < 0xc2 || c > 0xf4)
        return 0;
    if (c < 0xe0) {
        len = 2;
        v = c & 0x1fu;
    } else if (c < 0xf0) {
        len = 3;
        v = c & 0x0fu;
        lo = c == 0xe0 ? 0xa0 : 0x80;
        hi = c == 0xed ? 0x9f : 0xbf;
    } else {
        len = 4;
        v = c & 0x07u;
        lo = c == 0xf0 ? 0x90 : 0x80;
        hi = c == 0xf4 ? 0x8f : 0xbf;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if (p[i] < lo || p[i] > hi)
            return 0;
        lo = 0x80;
        hi = 0xbf;
        v = (v << 6) | (p[i] & 0x3fu);
    }
    *cp = v;
    return len;
}

static size_t put_hex_byte(char *u, unsigned char b)
{
    u[0] = '\\';
    u[1] = 'x';
    u[2] = hex[b >> 4];
    u[3] = hex[b & 0xf];
    return 4;
}

static size_t put_u16(char *u, uint32_t cp)
{
    u[0] = '\\';
    u[1] = 'u';
    u[2] = hex[(cp >> 12) & 0xf];
    u[3] = hex[(cp >> 8) & 0xf];
    u[4] = hex[(cp >> 4) & 0xf];
    u[5] = hex[cp & 0xf];
    return 6;
}

/* The escaped form of the character at p (one unit: never split). Sets *adv to the input bytes
 * it stands for and returns its length (at most 12). */
static size_t unit(char *u, const unsigned char *p, size_t n, bool json, unsigned flags,
                   size_t *adv)
{
    unsigned char c = p[0];
    *adv = 1;
    if (c < 0x80) {
        if (c == '\\' && (flags & TG_ESC_KEEP_PAIRS) && n >= 2 && (p[1] == '\\' || p[1] == '"')) {
            u[0] = '\\';
            u[1] = (char)p[1];
            *adv = 2;
            return 2;
        }
        if (c == '\\' || (c == '"' && (json || (flags & TG_ESC_QUOTES)))) {
            u[0] = '\\';
            u[1] = (char)c;
            return 2;
        }
        if (c == ' ' && !json && (flags & TG_ESC_SPACES))
            return put_hex_byte(u, c);
        if (c >= 0x20 && c != 0x7f) {
            u[0] = (char)c;
            return 1;
        }
        if (!json)
            return put_hex_byte(u, c);
        u[0] = '\\';
        switch (c) {
        case '\b':
            u[1] = 'b';
            return 2;
        case '\f':
            u[1] = 'f';
            return 2;
        case '\n':
            u[1] = 'n';
            return 2;
        case '\r':
            u[1] = 'r';
            return 2;
        case '\t':
            u[1] = 't';
            return 2;
        default:
            return put_u16(u, c);
        }
    }
    uint32_t cp = 0;
    size_t len = utf8_seq(p, n, &cp);
    if (len == 0) {
        if (!json)
            return put_hex_byte(u, c);
        u[0] = '\\';
        return 1 + put_hex_byte(u + 1, c);
    }
    *adv = len;
    /* C1 controls (NEL among them) and U+2028/2029: valid, but line breaks to some readers. */
    if (cp < 0xa0 || cp == 0x2028 || cp == 0x2029) {
        if (json)
            return put_u16(u, cp);
        size_t k = 0;
        for (size_t i = 0; i < len; i++)
            k += put_hex_byte(u + k, p[i]);
        return k;
    }
    memcpy(u, p, len);
    return len;
}

/* Escapes into dst[0..cap) whole units while they fit with the NUL; *used gets the input bytes
 * consumed (len when everything fit). */
static size_t esc(char *dst, size_t cap, const char *s, size_t len, bool json, unsigned flags,
                  size_t *used)
{
    size_t n = 0, i = 0;
    if (cap == 0) {
        *used = 0;
        return 0;
    }
    const unsigned char *p = (const unsigned char *)s;
    while (i < len) {
        char u[16];
        size_t adv;
        size_t ul = unit(u, p + i, len - i, json, flags, &adv);
        if (ul >= cap - n)
            break;
        memcpy(dst + n, u, ul);
        n += ul;
        i += adv;
    }
    dst[n] = '\0';
    *used = i;
    return n;
}

size_t tg_esc_json(char *dst, size_t cap, const char *s, size_t len)
{
    size_t used;
    return esc(dst, cap, s, len, true, 0, &used);
}

size_t tg_esc_text(char *dst, size_t cap, const char *s, size_t len, unsigned flags)
{
    size_t used;
    return esc(dst, cap, s, len, false, flags, &used);
}

size_t tg_esc_quote(char *dst, size_t cap, const char *s, size_t len)
{
    size_t n = 0;
    if (cap == 0)
        return 0;
    for (size_t i = 0; i < len; i++) {
        bool esc2 = s[i] == '\\' || s[i] == '"';
        if (n + 1 + esc2 >= cap)
            break;
        if (esc2)
            dst[n++] = '\\';
        dst[n++] = s[i];
    }
    dst[n] = '\0';
    return n;
}

/* ---- JSON object writer ---- */

/* Bytes that may still be written: the closing braces owed, the final '\n' and the NUL stay
 * free. */
static size_t room(const struct tg_jobj *o)
{
    size_t keep = o->depth + 2;
    return o->len + keep < o->cap ? o->cap - keep - o->len : 0;
}

static bool append(struct tg_jobj *o, const char *s, size_t n)
{
    if (n > room(o))
        return false;
    memcpy(o->buf + o->len, s, n);
    o->len += n;
    o->buf[o->len] = '\0';
    return true;
}

/* Writes `,"key":` followed by at least `need` more free bytes, or nothing (false). */
static bool key(struct tg_jobj *o, const char *k, size_t need)
{
    if (o->skip > 0 || o->depth == 0)
        return false; /* inside a left-out object, or a buffer too small for any */
    size_t start = o->len, klen = strlen(k), used;
    if ((o->more && !append(o, ",", 1)) || !append(o, "\"", 1))
        goto undo;
    size_t r = room(o);
    o->len += esc(o->buf + o->len, r + 1, k, klen, true, 0, &used);
    if (used < klen || !append(o, "\":", 2) || room(o) < need)
        goto undo;
    o->more = true;
    return true;
undo:
    o->len = start;
    o->buf[o->len] = '\0';
    return false;
}

void tg_jobj_init(struct tg_jobj *o, char *buf, size_t cap)
{
    o->buf = buf;
    o->cap = cap;
    o->len = 0;
    o->depth = 0;
    o->skip = 0;
    o->more = false;
    if (cap < 4) {
        o->cap = 0; /* too small for any object: finish writes what it can */
        if (cap > 0)
            buf[0] = '\0';
        return;
    }
    buf[o->len++] = '{';
    buf[o->len] = '\0';
    o->depth = 1;
}

void tg_jobj_strn(struct tg_jobj *o, const char *k, const char *s, size_t len, size_t max)
{
    if (!key(o, k, 2))
        return;
    o->buf[o->len++] = '"';
    size_t r = room(o) - 1; /* the closing quote */
    size_t used;
    o->len += esc(o->buf + o->len, TG_MIN(r, max) + 1, s, len, true, 0, &used);
    o->buf[o->len++] = '"';
    o->buf[o->len] = '\0';
}

void tg_jobj_str(struct tg_jobj *o, const char *k, const char *s)
{
    if (s == NULL) {
        if (key(o, k, 4))
            append(o, "null", 4);
        return;
    }
    tg_jobj_strn(o, k, s, strlen(s), SIZE_MAX);
}

static void number(struct tg_jobj *o, const char *k, const char *digits)
{
    size_t n = strlen(digits);
    if (key(o, k, n))
        append(o, digits, n);
}

void tg_jobj_int(struct tg_jobj *o, const char *k, int64_t v)
{
    char d[24];
    snprintf(d, sizeof(d), "%" PRId64, v);
    number(o, k, d);
}

void tg_jobj_uint(struct tg_jobj *o, const char *k, uint64_t v)
{
    char d[24];
    snprintf(d, sizeof(d), "%" PRIu64, v);
    number(o, k, d);
}

void tg_jobj_begin(struct tg_jobj *o, const char *k)
{
    /* The '{' and the '}' it will owe. */
    if (o->depth == 0 || !key(o, k, 2)) {
        o->skip++;
        return;
    }
    o->buf[o->len++] = '{';
    o->buf[o->len] = '\0';
    o->depth++;
    o->more = false;
}

void tg_jobj_end(struct tg_jobj *o)
{
    if (o->skip > 0) {
        o->skip--;
        return;
    }
    if (o->depth <= 1)
        return; /* the outermost object is closed by tg_jobj_finish */
    o->buf[o->len++] = '}';
    o->buf[o->len] = '\0';
    o->depth--;
    o->more = true;
}

size_t tg_jobj_finish(struct tg_jobj *o, bool newline)
{
    if (o->cap == 0)
        return 0;
    for (; o->depth > 0; o->depth--)
        o->buf[o->len++] = '}';
    if (newline)
        o->buf[o->len++] = '\n';
    o->buf[o->len] = '\0';
    o->skip = 0;
    return o->len;
}
