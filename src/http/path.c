/* Request-target normalisation (RFC 3986 6.2.2): what routes match and what backends receive. */
#include "http/http.h"

#include <string.h>

static bool is_unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

/* Removes dot segments from the absolute path p[0..len) in place (RFC 3986 5.2.4: ".." never
 * climbs above the root). The output is a run of "/segment" pieces, never longer than what was
 * read, so writing in place is safe. Returns the new length. */
static size_t remove_dots(char *p, size_t len)
{
    size_t r = 0, w = 0;
    while (r < len) {
        size_t s = r + 1, e = s; /* p[r] == '/' */
        while (e < len && p[e] != '/')
            e++;
        size_t seg = e - s;
        bool last = e == len;
        if (seg == 1 && p[s] == '.') {
            if (last)
                p[w++] = '/';
        } else if (seg == 2 && p[s] == '.' && p[s + 1] == '.') {
            while (w > 0 && p[w - 1] != '/')
                w--;
            if (w > 0)
                w--;
            if (last)
                p[w++] = '/';
        } else {
            memmove(p + w, p + r, e - r);
            w += e - r;
        }
        r = e;
    }
    if (w == 0)
        p[w++] = '/';
    return w;
}

int tg_http_path_normalize(char *t, size_t len, size_t *out_len)
{
    if (len == 0 || t[0] != '/')
        return -1;
    size_t plen = len;
    const char *q = memchr(t, '?', len);
    if (q != NULL)
        plen = (size_t)(q - t);
    const char *frag = memchr(t, '#', len);
    if (frag != NULL)
        return -1; /* clients never send fragments (RFC 9112 3.2) */
    /* Pass 1: decode %XX of unreserved characters, upper-case the hex of the others. */
    size_t w = 0;
    for (size_t r = 0; r < plen; r++) {
        unsigned char c = (unsigned char)t[r];
        if (c != '%') {
            t[w++] = (char)c;
            continue;
        }
        if (r + 2 >= plen)
            return -1;
        int hi = tg_hexval((char)t[r + 1]), lo = tg_hexval((char)t[r + 2]);
        if (hi < 0 || lo < 0)
            return -1;
        unsigned char d = (unsigned char)(hi * 16 + lo);
        if (is_unreserved(d)) {
            t[w++] = (char)d;
        } else {
            static const char hex[] = "0123456789ABCDEF";
            t[w++] = '%';
            t[w++] = hex[d >> 4];
            t[w++] = hex[d & 15];
        }
        r += 2;
    }
    w = remove_dots(t, w);
    /* The query follows unchanged. */
    if (plen < len)
        memmove(t + w, t + plen, len - plen);
    *out_len = w + (len - plen);
    return 0;
}

bool tg_http_prefix_match(const char *prefix, size_t pl, const char *path, size_t len)
{
    if (len < pl || memcmp(path, prefix, pl) != 0)
        return false;
    if (pl == 0 || prefix[pl - 1] == '/' || len == pl)
        return true;
    return path[pl] == '/' || path[pl] == '?';
}
