/* PROXY protocol headers received from a balancer in front (haproxy's proxy-protocol.txt, v1
 * text and v2 binary): a strict (buf, len) parser that never reads past len. */
#include "net/net.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#define V1_MAX 107 /* "PROXY TCP6 " + two full IPv6 addresses + two ports + CRLF */

static const uint8_t v2_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                   0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
static const char v1_sig[6] = "PROXY ";

static const struct {
    const char *token;
    const char *sentence;
} fails[TG_PPIN_FAIL__COUNT] = {
    [TG_PPIN_FAIL_NOT_PROXY] = {"not_proxy", "the connection does not start with a PROXY header"},
    [TG_PPIN_FAIL_V1_SYNTAX] = {"v1_malformed", "malformed PROXY v1 line"},
    [TG_PPIN_FAIL_V1_ADDRESS] = {"v1_bad_address", "bad address or port in a PROXY v1 line"},
    [TG_PPIN_FAIL_V1_TOO_LONG] = {"v1_too_long", "PROXY v1 line longer than 107 bytes"},
    [TG_PPIN_FAIL_V2_VERSION] = {"v2_bad_version", "PROXY v2 header with an unknown version or "
                                                   "command"},
    [TG_PPIN_FAIL_V2_FAMILY] = {"v2_bad_family", "PROXY v2 header with an unsupported address "
                                                 "family or protocol"},
    [TG_PPIN_FAIL_V2_LENGTH] = {"v2_bad_length", "PROXY v2 header length too short for its "
                                                 "addresses, or over the limit"},
    [TG_PPIN_FAIL_V2_TLV] = {"v2_bad_tlv", "PROXY v2 TLVs overrun the header"},
    [TG_PPIN_FAIL_TIMEOUT] = {"timeout", "no complete PROXY header within timeouts.handshake"},
    [TG_PPIN_FAIL_HANGUP] = {"hangup", "the peer closed the connection inside the PROXY header"},
};

const char *tg_ppin_fail_token(enum tg_ppin_fail f)
{
    return f < TG_PPIN_FAIL__COUNT && fails[f].token ? fails[f].token : "unknown";
}

const char *tg_ppin_fail_sentence(enum tg_ppin_fail f)
{
    return f < TG_PPIN_FAIL__COUNT && fails[f].sentence ? fails[f].sentence : "unknown";
}

/* A decimal port: 1 to 5 digits, no leading zero (but "0"), at most 65535. */
static bool parse_port(const char *s, size_t n, uint16_t *out)
{
    if (n == 0 || n > 5 || (n > 1 && s[0] == '0'))
        return false;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v > 65535)
        return false;
    *out = (uint16_t)v;
    return true;
}

static bool parse_ip(int family, const char *s, size_t n, void *dst)
{
    char tmp[INET6_ADDRSTRLEN];
    if (n == 0 || n >= sizeof(tmp))
        return false;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    return inet_pton(family, tmp, dst) == 1;
}

static void set_addr(struct sockaddr_storage *ss, socklen_t *len, int family, const void *ip,
                     uint16_t port_host)
{
    memset(ss, 0, sizeof(*ss));
    if (family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)ss;
        in->sin_family = AF_INET;
        memcpy(&in->sin_addr, ip, 4);
        in->sin_port = htons(port_host);
        *len = sizeof(*in);
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
        in6->sin6_family = AF_INET6;
        memcpy(&in6->sin6_addr, ip, 16);
        in6->sin6_port = htons(port_host);
        *len = sizeof(*in6);
    }
}

/* Characters a v1 line may hold before its CR. */
static bool v1_char(uint8_t ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'f') ||
           ch == ' ' || ch == '.' || ch == ':';
}

/* "PROXY TCP4 a b p q" between the signature and the CR (line excludes CRLF). */
static int parse_v1_line(const char *line, size_t n, struct tg_ppin *out)
{
    if (n >= 13 && memcmp(line + 6, "UNKNOWN", 7) == 0 && (n == 13 || line[13] == ' ')) {
        out->local = true; /* the rest of the line is to be ignored */
        return 0;
    }
    const char *f[6];
    size_t fl[6], nf = 0;
    size_t i = 0;
    while (i <= n && nf < 6) {
        size_t j = i;
        while (j < n && line[j] != ' ')
            j++;
        f[nf] = line + i;
        fl[nf] = j - i;
        nf++;
        i = j + 1;
    }
    if (i <= n) /* more than six fields */
        return -TG_PPIN_FAIL_V1_SYNTAX;
    /* f[0] is "PROXY"; every separator is exactly one space, so no field is empty. */
    for (size_t k = 0; k < nf; k++)
        if (fl[k] == 0)
            return -TG_PPIN_FAIL_V1_SYNTAX;
    if (nf != 6 || fl[1] != 4 || (memcmp(f[1], "TCP4", 4) != 0 && memcmp(f[1], "TCP6", 4) != 0))
        return -TG_PPIN_FAIL_V1_SYNTAX;
    int family = f[1][3] == '4' ? AF_INET : AF_INET6;
    uint8_t src[16], dst[16];
    uint16_t sp, dp;
    if (!parse_ip(family, f[2], fl[2], src) || !parse_ip(family, f[3], fl[3], dst) ||
        !parse_port(f[4], fl[4], &sp) || !parse_port(f[5], fl[5], &dp))
        return -TG_PPIN_FAIL_V1_ADDRESS;
    set_addr(&out->src, &out->src_len, family, src, sp);
    set_addr(&out->dst, &out->dst_len, family, dst, dp);
    return 0;
}

static long parse_v1(const uint8_t *buf, size_t len, struct tg_ppin *out)
{
    for (size_t i = sizeof(v1_sig); i < len && i < V1_MAX; i++) {
        if (buf[i] == '\r') {
            if (i + 1 == len)
                return 0;
            if (buf[i + 1] != '\n')
                return -TG_PPIN_FAIL_V1_SYNTAX;
            int rc = parse_v1_line((const char *)buf, i, out);
            return rc < 0 ? rc : (long)(i + 2);
        }
        if (!v1_char(buf[i]))
            return -TG_PPIN_FAIL_V1_SYNTAX;
    }
    return len >= V1_MAX ? -TG_PPIN_FAIL_V1_TOO_LONG : 0;
}

static long parse_v2(const uint8_t *buf, size_t len, struct tg_ppin *out)
{
    if (len < 16)
        return 0;
    uint8_t ver = buf[12] >> 4, cmd = buf[12] & 0x0f;
    if (ver != 2 || cmd > 1)
        return -TG_PPIN_FAIL_V2_VERSION;
    size_t body = (size_t)buf[14] << 8 | buf[15];
    if (16 + body > TG_PPIN_MAX)
        return -TG_PPIN_FAIL_V2_LENGTH;
    uint8_t fam = buf[13];
    size_t alen = 0;
    if (cmd == 1) {
        if (fam == 0x11)
            alen = 12;
        else if (fam == 0x21)
            alen = 36;
        else if (fam != 0x00)
            return -TG_PPIN_FAIL_V2_FAMILY; /* UDP and unix sockets are not what we accept */
        if (body < alen)
            return -TG_PPIN_FAIL_V2_LENGTH;
    }
    if (len < 16 + body)
        return 0;
    const uint8_t *p = buf + 16;
    if (cmd == 0 || fam == 0x00) {
        /* LOCAL (the balancer's own health check) or UNSPEC: the connection's own addresses
         * stand; whatever follows is skipped. */
        out->local = true;
        return (long)(16 + body);
    }
    if (fam == 0x11) {
        set_addr(&out->src, &out->src_len, AF_INET, p, (uint16_t)(p[8] << 8 | p[9]));
        set_addr(&out->dst, &out->dst_len, AF_INET, p + 4, (uint16_t)(p[10] << 8 | p[11]));
    } else {
        set_addr(&out->src, &out->src_len, AF_INET6, p, (uint16_t)(p[32] << 8 | p[33]));
        set_addr(&out->dst, &out->dst_len, AF_INET6, p + 16, (uint16_t)(p[34] << 8 | p[35]));
    }
    /* TLVs must tile the rest exactly; their values are not used. */
    for (size_t off = alen; off < body;) {
        if (body - off < 3)
            return -TG_PPIN_FAIL_V2_TLV;
        size_t l = (size_t)p[off + 1] << 8 | p[off + 2];
        if (body - off - 3 < l)
            return -TG_PPIN_FAIL_V2_TLV;
        off += 3 + l;
    }
    return (long)(16 + body);
}

long tg_ppin_parse(const uint8_t *buf, size_t len, struct tg_ppin *out)
{
    memset(out, 0, sizeof(*out));
    if (len == 0)
        return 0;
    /* Decide on the first byte that differs from both signatures, so a TLS ClientHello or an
     * HTTP request is refused at once rather than after the timeout. */
    size_t n1 = len < sizeof(v1_sig) ? len : sizeof(v1_sig);
    size_t n2 = len < sizeof(v2_sig) ? len : sizeof(v2_sig);
    if (memcmp(buf, v1_sig, n1) == 0)
        return n1 < sizeof(v1_sig) ? 0 : parse_v1(buf, len, out);
    if (memcmp(buf, v2_sig, n2) == 0)
        return n2 < sizeof(v2_sig) ? 0 : parse_v2(buf, len, out);
    return -TG_PPIN_FAIL_NOT_PROXY;
}
