/* PROXY protocol version 2 headers (haproxy's proxy-protocol.txt, section 2.2): binary, with the
 * client's address and TLS facts as TLVs. */
#include "net/net.h"

#include <netinet/in.h>
#include <string.h>

#define PP2_TYPE_AUTHORITY      0x02
#define PP2_TYPE_SSL            0x20
#define PP2_SUBTYPE_SSL_VERSION 0x21
#define PP2_SUBTYPE_SSL_CN      0x22
#define PP2_SUBTYPE_SSL_CIPHER  0x23
#define PP2_CLIENT_SSL          0x01
#define PP2_CLIENT_CERT_CONN    0x02

static const uint8_t sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

/* Appends a TLV; false if it does not fit. */
static bool tlv(uint8_t *buf, size_t cap, size_t *n, uint8_t type, const void *v, size_t len)
{
    if (len > 0xffff || *n + 3 + len > cap)
        return false;
    buf[*n] = type;
    buf[*n + 1] = (uint8_t)(len >> 8);
    buf[*n + 2] = (uint8_t)len;
    memcpy(buf + *n + 3, v, len);
    *n += 3 + len;
    return true;
}

size_t tg_pp2_build(uint8_t *buf, size_t cap, const struct sockaddr_storage *src,
                    const struct sockaddr_storage *dst, const struct tg_pp2_tls *tls)
{
    if (cap < 16 + 36)
        return 0;
    memcpy(buf, sig, sizeof(sig));
    buf[12] = 0x21; /* version 2, PROXY */
    size_t n = 16;
    if (src->ss_family == AF_INET && dst->ss_family == AF_INET) {
        const struct sockaddr_in *s = (const void *)src, *d = (const void *)dst;
        buf[13] = 0x11; /* TCP over IPv4 */
        memcpy(buf + n, &s->sin_addr, 4);
        memcpy(buf + n + 4, &d->sin_addr, 4);
        memcpy(buf + n + 8, &s->sin_port, 2);
        memcpy(buf + n + 10, &d->sin_port, 2);
        n += 12;
    } else if (src->ss_family == AF_INET6 && dst->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const void *)src, *d = (const void *)dst;
        buf[13] = 0x21; /* TCP over IPv6 */
        memcpy(buf + n, &s->sin6_addr, 16);
        memcpy(buf + n + 16, &d->sin6_addr, 16);
        memcpy(buf + n + 32, &s->sin6_port, 2);
        memcpy(buf + n + 34, &d->sin6_port, 2);
        n += 36;
    } else {
        buf[13] = 0x00; /* UNSPEC: the receiver uses the connection's own addresses */
    }
    if (tls != NULL) {
        if (tls->sni != NULL && !tlv(buf, cap, &n, PP2_TYPE_AUTHORITY, tls->sni, strlen(tls->sni)))
            return 0;
        /* PP2_TYPE_SSL: client flags, verify result (0 = verified), then sub-TLVs. */
        uint8_t ssl[512];
        size_t sn = 5;
        ssl[0] = PP2_CLIENT_SSL | (tls->cn != NULL ? PP2_CLIENT_CERT_CONN : 0);
        uint32_t verify = tls->verify_failed ? 1 : 0;
        ssl[1] = (uint8_t)(verify >> 24);
        ssl[2] = (uint8_t)(verify >> 16);
        ssl[3] = (uint8_t)(verify >> 8);
        ssl[4] = (uint8_t)verify;
        if ((tls->version != NULL && !tlv(ssl, sizeof(ssl), &sn, PP2_SUBTYPE_SSL_VERSION,
                                          tls->version, strlen(tls->version))) ||
            (tls->cipher != NULL && !tlv(ssl, sizeof(ssl), &sn, PP2_SUBTYPE_SSL_CIPHER, tls->cipher,
                                         strlen(tls->cipher))) ||
            (tls->cn != NULL &&
             !tlv(ssl, sizeof(ssl), &sn, PP2_SUBTYPE_SSL_CN, tls->cn, strlen(tls->cn))))
            return 0;
        if (!tlv(buf, cap, &n, PP2_TYPE_SSL, ssl, sn))
            return 0;
    }
    size_t len = n - 16;
    buf[14] = (uint8_t)(len >> 8);
    buf[15] = (uint8_t)len;
    return n;
}
