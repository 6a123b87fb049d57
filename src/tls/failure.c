/* Handshake failures in words: the reason table, OpenSSL error classification, per-connection
 * detail from the recorded ClientHello, and sniffing of non-TLS first bytes. */
#include "tls/tls.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>

#include <openssl/err.h>

#include "core/core.h"
#include "tls/internal.h"

static const struct tg_tls_fail_info fail_table[TG_TLS_FAIL__COUNT] = {
    [TG_TLS_FAIL_NONE] = {"none", "the handshake did not fail", NULL, true},
    [TG_TLS_FAIL_VERSION] = {"unsupported_version",
                             "the client offered only TLS versions this listener does not allow",
                             "tls.min_version", true},
    [TG_TLS_FAIL_CIPHER] = {"no_shared_cipher",
                            "the client offered no cipher suite this listener enables",
                            "tls.cipher_suites", true},
    [TG_TLS_FAIL_GROUP] = {"no_shared_group",
                           "the client supports no key-exchange group this listener enables",
                           "tls.curves", true},
    [TG_TLS_FAIL_SIGALG] = {"no_shared_sigalg",
                            "the client accepts no signature algorithm usable with this "
                            "listener's certificates",
                            "tls.certificates", true},
    [TG_TLS_FAIL_ALPN] = {"no_shared_alpn",
                          "the client offered no application protocol (ALPN) this listener "
                          "speaks",
                          "tls.alpn", true},
    [TG_TLS_FAIL_SSLV2] = {"sslv2_hello",
                           "the client sent an SSLv2 hello, a protocol no longer supported", NULL,
                           true},
    [TG_TLS_FAIL_PLAIN_HTTP] = {"plain_http",
                                "the client sent plain HTTP to a TLS port (use https://)",
                                "tls.disabled", true},
    [TG_TLS_FAIL_NOT_TLS] = {"not_tls", "the client sent bytes that are not TLS", NULL, true},
    [TG_TLS_FAIL_HANGUP] = {"client_hangup",
                            "the client closed or reset the connection during the handshake", NULL,
                            true},
    [TG_TLS_FAIL_TIMEOUT] = {"handshake_timeout", "the handshake did not finish in time",
                             "timeouts.handshake", true},
    [TG_TLS_FAIL_PEER_ALERT] = {"client_alert",
                                "the client aborted the handshake with an alert (often: it does "
                                "not trust our certificate)",
                                "tls.certificates", true},
    [TG_TLS_FAIL_PROTOCOL] = {"protocol_error",
                              "the client sent malformed or unexpected handshake messages", NULL,
                              true},
    [TG_TLS_FAIL_INTERNAL] = {"internal_error",
                              "the handshake failed on our side (allocation, provider or key "
                              "problem)",
                              NULL, false},
};

const struct tg_tls_fail_info *tg_tls_fail_info(enum tg_tls_fail f)
{
    if ((unsigned)f >= TG_TLS_FAIL__COUNT)
        f = TG_TLS_FAIL_INTERNAL;
    return &fail_table[f];
}

static enum tg_tls_fail map_alert(int alert)
{
    switch (alert) {
    case SSL_AD_PROTOCOL_VERSION:
        return TG_TLS_FAIL_VERSION;
    case SSL_AD_NO_APPLICATION_PROTOCOL:
        return TG_TLS_FAIL_ALPN;
    default:
        return TG_TLS_FAIL_PEER_ALERT;
    }
}

static enum tg_tls_fail map_error(unsigned long e)
{
    if (ERR_GET_LIB(e) != ERR_LIB_SSL)
        return TG_TLS_FAIL_NONE; /* decided by the SSL reasons, else internal */
    int r = ERR_GET_REASON(e);
    if (r >= SSL_AD_REASON_OFFSET && r < SSL_AD_REASON_OFFSET + 256)
        return map_alert(r - SSL_AD_REASON_OFFSET);
    switch (r) {
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_VERSION_TOO_LOW:
    case SSL_R_VERSION_TOO_HIGH:
    case SSL_R_NO_PROTOCOLS_AVAILABLE:
    case SSL_R_WRONG_SSL_VERSION:
        return TG_TLS_FAIL_VERSION;
    case SSL_R_NO_SHARED_CIPHER:
    case SSL_R_NO_CIPHERS_AVAILABLE:
    case SSL_R_NO_CIPHERS_SPECIFIED:
        return TG_TLS_FAIL_CIPHER;
    case SSL_R_NO_SHARED_GROUPS:
    case SSL_R_NO_SUITABLE_KEY_SHARE:
        return TG_TLS_FAIL_GROUP;
    case SSL_R_NO_SHARED_SIGNATURE_ALGORITHMS:
    case SSL_R_NO_SUITABLE_SIGNATURE_ALGORITHM:
        return TG_TLS_FAIL_SIGALG;
    case SSL_R_NO_APPLICATION_PROTOCOL:
        return TG_TLS_FAIL_ALPN;
    case SSL_R_HTTP_REQUEST:
    case SSL_R_HTTPS_PROXY_REQUEST:
        return TG_TLS_FAIL_PLAIN_HTTP;
    case SSL_R_WRONG_VERSION_NUMBER:
    case SSL_R_UNKNOWN_PROTOCOL:
    case SSL_R_PACKET_LENGTH_TOO_LONG:
    case SSL_R_RECORD_LENGTH_MISMATCH:
        return TG_TLS_FAIL_NOT_TLS;
    case SSL_R_UNEXPECTED_EOF_WHILE_READING:
        return TG_TLS_FAIL_HANGUP;
    case ERR_R_MALLOC_FAILURE:
    case ERR_R_INTERNAL_ERROR:
        return TG_TLS_FAIL_INTERNAL;
    default:
        return TG_TLS_FAIL_PROTOCOL;
    }
}

enum tg_tls_fail tg_tls_classify(SSL *ssl, int ssl_error, int sys_errno)
{
    enum tg_tls_fail f = TG_TLS_FAIL_NONE;
    bool other_lib = false;
    unsigned long e;
    /* The earliest SSL-library error names the cause; later ones are consequences. */
    while ((e = ERR_get_error()) != 0) {
        if (f != TG_TLS_FAIL_NONE)
            continue;
        f = map_error(e);
        if (ERR_GET_LIB(e) != ERR_LIB_SSL)
            other_lib = true;
    }
    if (f != TG_TLS_FAIL_NONE)
        return f;
    switch (ssl_error) {
    case SSL_ERROR_ZERO_RETURN:
        return TG_TLS_FAIL_HANGUP;
    case SSL_ERROR_SYSCALL:
        if (sys_errno == 0 || sys_errno == ECONNRESET || sys_errno == EPIPE ||
            sys_errno == ECONNABORTED || sys_errno == ETIMEDOUT)
            return TG_TLS_FAIL_HANGUP;
        return TG_TLS_FAIL_INTERNAL;
    case SSL_ERROR_SSL:
        return other_lib ? TG_TLS_FAIL_INTERNAL : TG_TLS_FAIL_PROTOCOL;
    default:
        return TG_TLS_FAIL_INTERNAL;
    }
}

/* "TLS1.2 to TLS1.3", or "TLS1.3" when both ends are the same. */
static void range_str(int lo, int hi, char *buf, size_t len)
{
    if (lo == 0)
        snprintf(buf, len, "up to %s", tg_tls__version_name(hi));
    else if (lo == hi)
        snprintf(buf, len, "only %s", tg_tls__version_name(hi));
    else
        snprintf(buf, len, "%s to %s", tg_tls__version_name(lo), tg_tls__version_name(hi));
}

static size_t put(char *buf, size_t len, size_t off, const char *fmt, ...) TG_PRINTF(4, 5);
static size_t put(char *buf, size_t len, size_t off, const char *fmt, ...)
{
    if (off >= len)
        return off;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + off, len - off, fmt, ap);
    va_end(ap);
    return n < 0 ? off : TG_MIN(off + (size_t)n, len - 1);
}

static size_t put_groups(char *buf, size_t len, size_t off, const uint16_t *ids, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct tg_tls__group *g = tg_tls__group_by_id(ids[i]);
        if (g != NULL)
            off = put(buf, len, off, "%s%s", i ? ", " : "", g->name);
        else
            off = put(buf, len, off, "%s0x%04x", i ? ", " : "", ids[i]);
    }
    return off;
}

static void group_detail(SSL *ssl, const struct tg_tls__hello *h, char *buf, size_t len)
{
    uint16_t ours[TG_TLS__MAX_GROUPS];
    size_t n_ours = 0;
    const struct tg_tls_server *ts = tg_tls__server_of(SSL_get_SSL_CTX(ssl));
    if (ts != NULL) {
        n_ours = ts->n_groups;
        memcpy(ours, ts->groups, n_ours * sizeof(*ours));
    }
    size_t off = 0;
    if (!h->groups_sent) {
        off = put(buf, len, off, "client sent no supported_groups");
    } else {
        off = put(buf, len, off, "client supports groups ");
        off = put_groups(buf, len, off, h->groups, TG_MIN(h->n_groups, TG_TLS__HELLO_GROUPS));
        if (h->n_groups > TG_TLS__HELLO_GROUPS)
            off = put(buf, len, off, " (and %u more)", h->n_groups - TG_TLS__HELLO_GROUPS);
    }
    off = put(buf, len, off, "; listener allows ");
    put_groups(buf, len, off, ours, n_ours);
}

void tg_tls_fail_detail(SSL *ssl, enum tg_tls_fail f, char *buf, size_t len)
{
    if (len == 0)
        return;
    buf[0] = '\0';
    const struct tg_tls__hello *h = ssl ? tg_tls__hello_get(ssl) : NULL;
    char a[48], b[48];
    int lo = ssl ? SSL_get_min_proto_version(ssl) : 0;
    int hi = ssl ? SSL_get_max_proto_version(ssl) : 0;
    range_str(lo ? lo : TLS1_VERSION, hi ? hi : TLS1_3_VERSION, b, sizeof(b));

    switch (f) {
    case TG_TLS_FAIL_VERSION:
        if (h != NULL && h->max_version != 0) {
            range_str(h->min_version, h->max_version, a, sizeof(a));
            snprintf(buf, len, "client offered %s; this listener allows %s", a, b);
        } else {
            snprintf(buf, len, "this listener allows %s", b);
        }
        return;
    case TG_TLS_FAIL_CIPHER:
        if (h != NULL)
            snprintf(
                buf, len, "none of the client's %u cipher suites is enabled here%s", h->n_suites,
                h->suite_match ? " for the negotiated version or our certificate's key type" : "");
        else
            snprintf(buf, len, "no cipher suite in common");
        return;
    case TG_TLS_FAIL_GROUP:
        if (h != NULL)
            group_detail(ssl, h, buf, len);
        else
            snprintf(buf, len, "no key-exchange group in common");
        return;
    case TG_TLS_FAIL_ALPN:
        snprintf(buf, len, "%s",
                 h != NULL && !h->alpn_sent ? "client required a protocol but sent no ALPN"
                                            : "client's ALPN protocols are not among tls.alpn");
        return;
    default:
        snprintf(buf, len, "%s", tg_tls_fail_info(f)->sentence);
        return;
    }
}

/* ---- sniffing ---- */

enum tg_tls_sniff tg_tls_sniff(const uint8_t *p, size_t n)
{
    static const char *const methods[] = {"GET ",     "POST ",  "PUT ",     "HEAD ",  "DELETE ",
                                          "OPTIONS ", "PATCH ", "CONNECT ", "TRACE ", "PRI "};
    if (n == 0)
        return TG_SNIFF_NEED_MORE;
    if (p[0] == 0x16) {
        if (n < 2)
            return TG_SNIFF_NEED_MORE;
        if (p[1] != 0x03)
            return TG_SNIFF_OTHER;
        if (n < 3)
            return TG_SNIFF_NEED_MORE;
        return p[2] <= 0x04 ? TG_SNIFF_TLS : TG_SNIFF_OTHER;
    }
    if (p[0] & 0x80) {
        /* SSLv2 record: 2-byte length with the high bit set, then CLIENT-HELLO (1) and a version
         * of 0x0002 (SSLv2) or 0x03xx (a v3-capable client using the old format). */
        if (n < 3)
            return TG_SNIFF_NEED_MORE;
        if (p[2] != 0x01)
            return TG_SNIFF_OTHER;
        if (n < 4)
            return TG_SNIFF_NEED_MORE;
        return p[3] == 0x00 || p[3] == 0x03 ? TG_SNIFF_SSLV2 : TG_SNIFF_OTHER;
    }
    bool maybe = false;
    for (size_t i = 0; i < TG_ARRAY_SIZE(methods); i++) {
        size_t ml = strlen(methods[i]);
        size_t k = TG_MIN(n, ml);
        if (memcmp(p, methods[i], k) != 0)
            continue;
        if (n >= ml)
            return TG_SNIFF_HTTP;
        maybe = true;
    }
    return maybe ? TG_SNIFF_NEED_MORE : TG_SNIFF_OTHER;
}
