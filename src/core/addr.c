/* Socket address helpers shared by config (resolving) and net (listeners, peers). */
#include "core/addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TG_CIDR_MIN(a, b) ((a) < (b) ? (a) : (b))

void tg_addr_format(const struct sockaddr_storage *ss, char *buf, size_t len)
{
    char host[INET6_ADDRSTRLEN] = "?";
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        snprintf(buf, len, "%s:%u", host, ntohs(in->sin_port));
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        snprintf(buf, len, "[%s]:%u", host, ntohs(in6->sin6_port));
    } else {
        snprintf(buf, len, "unknown");
    }
}

void tg_addr_pack(const struct sockaddr_storage *ss, struct tg_addr_packed *out)
{
    memset(out, 0, sizeof(*out));
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
        out->family = AF_INET;
        out->port = ntohs(in->sin_port);
        memcpy(out->addr, &in->sin_addr, 4);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
        out->family = AF_INET6;
        out->port = ntohs(in6->sin6_port);
        memcpy(out->addr, &in6->sin6_addr, 16);
    }
}

void tg_addr_unpack(const struct tg_addr_packed *p, struct sockaddr_storage *out)
{
    memset(out, 0, sizeof(*out));
    if (p->family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)out;
        in->sin_family = AF_INET;
        in->sin_port = htons(p->port);
        memcpy(&in->sin_addr, p->addr, 4);
    } else if (p->family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)out;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(p->port);
        memcpy(&in6->sin6_addr, p->addr, 16);
    }
}

/* Decimal digits of v at *at (no leading zeros); the position after them. */
static char *put_uint(char *at, unsigned v)
{
    char tmp[10];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    while (n > 0)
        *at++ = tmp[--n];
    return at;
}

/* One IPv4 byte in decimal (no leading zeros). */
static char *put_octet(char *at, unsigned v)
{
    if (v >= 100) {
        unsigned h = v / 100;
        *at++ = (char)('0' + h);
        v -= h * 100;
        *at++ = (char)('0' + v / 10);
    } else if (v >= 10) {
        *at++ = (char)('0' + v / 10);
    }
    *at++ = (char)('0' + v % 10);
    return at;
}

/* IPv4 by hand, as inet_ntop writes it (glibc's goes through sprintf, on every request's
 * X-Forwarded-For); IPv6 by inet_ntop. */
size_t tg_addr_packed_ip(const struct tg_addr_packed *p, char *buf)
{
    if (p->family == AF_INET) {
        char *at = buf;
        for (int i = 0; i < 4; i++) {
            if (i > 0)
                *at++ = '.';
            at = put_octet(at, p->addr[i]);
        }
        *at = '\0';
        return (size_t)(at - buf);
    }
    if (p->family == AF_INET6 && inet_ntop(AF_INET6, p->addr, buf, TG_ADDR_STRLEN) != NULL)
        return strlen(buf);
    memcpy(buf, p->family == AF_INET6 ? "?" : "unknown", p->family == AF_INET6 ? 2 : 8);
    return strlen(buf);
}

const char *tg_addr_packed_str(const struct tg_addr_packed *p, char *buf)
{
    if (p->family != AF_INET && p->family != AF_INET6) {
        memcpy(buf, "unknown", 8);
        return buf;
    }
    char *at = buf;
    if (p->family == AF_INET6)
        *at++ = '[';
    at += tg_addr_packed_ip(p, at);
    if (p->family == AF_INET6)
        *at++ = ']';
    *at++ = ':';
    at = put_uint(at, p->port);
    *at = '\0';
    return buf;
}

int tg_addr_parse_numeric(const char *s, struct sockaddr_storage *out)
{
    char host[INET6_ADDRSTRLEN];
    const char *colon = strrchr(s, ':'), *hs = s;
    size_t hl;
    if (colon == NULL)
        return -EINVAL;
    if (s[0] == '[') {
        if (colon == s || colon[-1] != ']')
            return -EINVAL;
        hs = s + 1;
        hl = (size_t)(colon - 1 - hs);
    } else {
        hl = (size_t)(colon - s);
    }
    char *end = NULL;
    errno = 0;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (hl == 0 || hl >= sizeof(host) || colon[1] < '0' || colon[1] > '9' || *end != '\0' ||
        errno != 0 || port > 65535)
        return -EINVAL;
    memcpy(host, hs, hl);
    host[hl] = '\0';
    memset(out, 0, sizeof(*out));
    struct sockaddr_in *in = (struct sockaddr_in *)out;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)out;
    if (s[0] != '[' && inet_pton(AF_INET, host, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)port);
        return 0;
    }
    if (s[0] == '[' && inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        return 0;
    }
    return -EINVAL;
}

bool tg_addr_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return false;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
        return x->sin6_port == y->sin6_port &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
    }
    return false;
}

int tg_cidr_parse(const char *s, struct tg_cidr *out, const char **why)
{
    char host[INET6_ADDRSTRLEN + 1];
    const char *slash = strchr(s, '/');
    size_t hl = slash ? (size_t)(slash - s) : strlen(s);
    memset(out, 0, sizeof(*out));
    if (hl == 0 || hl >= sizeof(host)) {
        *why = "not an IP address";
        return -1;
    }
    memcpy(host, s, hl);
    host[hl] = '\0';
    unsigned max;
    if (inet_pton(AF_INET, host, out->addr) == 1) {
        out->family = AF_INET;
        max = 32;
    } else if (inet_pton(AF_INET6, host, out->addr) == 1) {
        out->family = AF_INET6;
        max = 128;
    } else {
        *why = "not an IP address";
        return -1;
    }
    unsigned bits = max;
    if (slash != NULL) {
        const char *b = slash + 1;
        size_t n = strlen(b);
        bits = 0;
        if (n == 0 || n > 3 || (n > 1 && b[0] == '0')) {
            *why = "the prefix length is not a number";
            return -1;
        }
        for (size_t i = 0; i < n; i++) {
            if (b[i] < '0' || b[i] > '9') {
                *why = "the prefix length is not a number";
                return -1;
            }
            bits = bits * 10 + (unsigned)(b[i] - '0');
        }
        if (bits > max) {
            *why = max == 32 ? "the prefix length is over 32" : "the prefix length is over 128";
            return -1;
        }
    }
    for (unsigned i = 0; i < 16; i++) {
        unsigned keep = bits > i * 8 ? TG_CIDR_MIN(bits - i * 8, 8u) : 0;
        uint8_t mask = (uint8_t)(keep == 0 ? 0 : 0xff << (8 - keep));
        if ((out->addr[i] & (uint8_t)~mask) != 0) {
            *why = "address bits are set past the prefix length";
            return -1;
        }
    }
    out->bits = (uint8_t)bits;
    return 0;
}

bool tg_cidr_match(const struct tg_cidr *c, const struct sockaddr_storage *ss)
{
    const uint8_t *a;
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (ss->ss_family == AF_INET) {
        if (c->family != AF_INET)
            return false;
        a = (const uint8_t *)&((const struct sockaddr_in *)ss)->sin_addr;
    } else if (ss->ss_family == AF_INET6) {
        a = ((const struct sockaddr_in6 *)ss)->sin6_addr.s6_addr;
        if (c->family == AF_INET) {
            if (memcmp(a, mapped, 12) != 0)
                return false;
            a += 12;
        }
    } else {
        return false;
    }
    unsigned full = c->bits / 8, rest = c->bits % 8;
    if (memcmp(a, c->addr, full) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (a[full] & mask) == c->addr[full];
}
