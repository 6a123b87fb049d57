/* Handshake failures in words: the client and backend reason tables, OpenSSL error
 * classification, per-connection detail (from the recorded ClientHello, or what verification of a
 * backend recorded), and sniffing of non-TLS first bytes. */
#include "tls/tls.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
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
    [TG_TLS_FAIL_MESSAGE_TOO_LARGE] = {"handshake_message_too_large",
                                       "the client sent a handshake message over the size limit "
                                       "(a Certificate message is at most 100 KB: too long a "
                                       "chain)",
                                       NULL, true},
    [TG_TLS_FAIL_INTERNAL] = {"internal_error",
                              "the handshake failed on our side (allocation, provider or key "
                              "problem)",
                              NULL, false},
    [TG_TLS_FAIL_CERT_MISSING] = {"client_cert_missing",
                                  "the client sent no certificate and this listener requires one",
                                  "tls.client_auth.mode", true},
    [TG_TLS_FAIL_CERT_EXPIRED] = {"client_cert_expired", "the client's certificate has expired",
                                  NULL, true},
    [TG_TLS_FAIL_CERT_NOT_YET_VALID] = {"client_cert_not_yet_valid",
                                        "the client's certificate is not valid yet (check the "
                                        "clocks)",
                                        NULL, true},
    [TG_TLS_FAIL_CERT_UNKNOWN_CA] = {"client_cert_unknown_ca",
                                     "the client's certificate is not issued by a CA this "
                                     "listener trusts",
                                     "tls.client_auth.truststore", true},
    [TG_TLS_FAIL_CERT_NO_ISSUER] = {"client_cert_missing_intermediate",
                                    "the client's chain ends at an issuer it did not send and "
                                    "the truststore does not hold (an intermediate is missing)",
                                    "tls.client_auth.truststore", true},
    [TG_TLS_FAIL_CERT_BAD_SIGNATURE] = {"client_cert_bad_signature",
                                        "a signature in the client's chain does not verify", NULL,
                                        true},
    [TG_TLS_FAIL_CERT_REVOKED] = {"client_cert_revoked", "the client's certificate is revoked",
                                  "tls.client_auth.revocation", true},
    [TG_TLS_FAIL_CERT_STATUS_UNKNOWN] = {"client_cert_status_unknown",
                                         "the revocation status of the client's certificate is "
                                         "unknown and revocation.mode is hard_fail",
                                         "tls.client_auth.revocation.mode", true},
    [TG_TLS_FAIL_CERT_NOT_ALLOWED] = {"client_cert_not_allowed",
                                      "the client's certificate is not on the allow list",
                                      "tls.client_auth.allowed_subjects", true},
    [TG_TLS_FAIL_CERT_USAGE] = {"client_cert_wrong_usage",
                                "the client's certificate is not for TLS clients (key usage or "
                                "extended key usage)",
                                NULL, true},
    [TG_TLS_FAIL_CERT_BAD] = {"client_cert_invalid", "the client's certificate failed verification",
                              "tls.client_auth", true},
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
    case SSL_R_EXCESSIVE_MESSAGE_SIZE:
        return TG_TLS_FAIL_MESSAGE_TOO_LARGE;
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
        return TG_TLS_FAIL_CERT_MISSING;
    case ERR_R_MALLOC_FAILURE:
    case ERR_R_INTERNAL_ERROR:
        return TG_TLS_FAIL_INTERNAL;
    default:
        return TG_TLS_FAIL_PROTOCOL;
    }
}

enum tg_tls_fail tg_tls_classify(SSL *ssl, int ssl_error, int sys_errno)
{
    /* A client certificate refused by our verification: its record says why. */
    enum tg_tls_fail f = ssl ? tg_tls__cauth_failure(ssl, NULL) : TG_TLS_FAIL_NONE;
    if (f != TG_TLS_FAIL_NONE) {
        ERR_clear_error();
        return f;
    }
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
    case TG_TLS_FAIL_CERT_MISSING:
        snprintf(buf, len, "tls.client_auth.mode is require");
        return;
    default:
        if (f >= TG_TLS_FAIL_CERT_EXPIRED && f <= TG_TLS_FAIL_CERT_BAD) {
            const char *d = NULL;
            tg_tls__cauth_failure(ssl, &d);
            snprintf(buf, len, "%s", d && d[0] ? d : tg_tls_fail_info(f)->sentence);
            return;
        }
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

/* ---- backend handshake failures ---- */

/* A failed backend handshake costs a client its request (502) or stream, so every row is logged
 * at error: client_caused is false throughout. Config keys are relative to backends.NAME. */
static const struct tg_tls_fail_info bfail_table[TG_TLS_BFAIL__COUNT] = {
    [TG_TLS_BFAIL_NONE] = {"none", "the handshake did not fail", NULL, false},
    [TG_TLS_BFAIL_UNKNOWN_CA] = {"unknown_ca",
                                 "the backend's certificate does not chain to a CA we trust",
                                 "tls.truststore", false},
    [TG_TLS_BFAIL_NAME_MISMATCH] = {"name_mismatch",
                                    "the backend's certificate is not valid for the name we "
                                    "verify",
                                    "tls.server_name", false},
    [TG_TLS_BFAIL_EXPIRED] = {"expired", "the backend's certificate has expired", NULL, false},
    [TG_TLS_BFAIL_NOT_YET_VALID] = {"not_yet_valid",
                                    "the backend's certificate is not valid yet (check the "
                                    "clocks)",
                                    NULL, false},
    [TG_TLS_BFAIL_BAD_CERT] = {"bad_certificate", "the backend's certificate failed verification",
                               "tls.truststore", false},
    [TG_TLS_BFAIL_PIN_MISMATCH] = {"pin_mismatch",
                                   "no certificate in the backend's chain has a pinned key",
                                   "tls.pin", false},
    [TG_TLS_BFAIL_VERSION] = {"no_shared_version",
                              "the backend supports none of the TLS versions we offer",
                              "tls.min_version", false},
    [TG_TLS_BFAIL_CIPHER] = {"no_shared_cipher",
                             "the backend accepts none of our cipher suites or key-exchange "
                             "groups",
                             "tls.cipher_suites", false},
    [TG_TLS_BFAIL_ALPN] = {"no_shared_alpn",
                           "the backend speaks none of the application protocols (ALPN) we offer",
                           "tls.alpn", false},
    [TG_TLS_BFAIL_CERT_REQUIRED] = {"client_cert_required",
                                    "the backend demands a client certificate and we have none",
                                    "tls.client_certificate", false},
    [TG_TLS_BFAIL_CERT_REFUSED] = {"client_cert_rejected",
                                   "the backend refused our client certificate",
                                   "tls.client_certificate", false},
    [TG_TLS_BFAIL_NOT_TLS] = {"not_tls",
                              "the backend answered with something that is not TLS (a plaintext "
                              "port?)",
                              "tls", false},
    [TG_TLS_BFAIL_HANGUP] = {"backend_hangup",
                             "the backend closed or reset the connection during the handshake",
                             NULL, false},
    [TG_TLS_BFAIL_TIMEOUT] = {"handshake_timeout",
                              "the handshake with the backend did not finish in time",
                              "timeouts.backend_connect", false},
    [TG_TLS_BFAIL_PROTOCOL] = {"protocol_error",
                               "the backend aborted the handshake or sent unexpected messages",
                               NULL, false},
    [TG_TLS_BFAIL_INTERNAL] = {"internal_error",
                               "the handshake failed on our side (allocation, provider or key "
                               "problem)",
                               NULL, false},
};

const struct tg_tls_fail_info *tg_tls_bfail_info(enum tg_tls_bfail f)
{
    if ((unsigned)f >= TG_TLS_BFAIL__COUNT)
        f = TG_TLS_BFAIL_INTERNAL;
    return &bfail_table[f];
}

static enum tg_tls_bfail map_verify_error(int v)
{
    switch (v) {
    case X509_V_OK:
        return TG_TLS_BFAIL_NONE;
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_CERT_UNTRUSTED:
    case X509_V_ERR_CERT_REJECTED:
        return TG_TLS_BFAIL_UNKNOWN_CA;
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
        return TG_TLS_BFAIL_NAME_MISMATCH;
    case X509_V_ERR_CERT_HAS_EXPIRED:
    case X509_V_ERR_ERROR_IN_CERT_NOT_AFTER_FIELD:
        return TG_TLS_BFAIL_EXPIRED;
    case X509_V_ERR_CERT_NOT_YET_VALID:
    case X509_V_ERR_ERROR_IN_CERT_NOT_BEFORE_FIELD:
        return TG_TLS_BFAIL_NOT_YET_VALID;
    default:
        return TG_TLS_BFAIL_BAD_CERT;
    }
}

/* Alerts the backend sent, read with what we know of the handshake so far. */
static enum tg_tls_bfail map_backend_alert(int alert, bool cert_requested, bool have_cert)
{
    switch (alert) {
    case SSL_AD_PROTOCOL_VERSION:
        return TG_TLS_BFAIL_VERSION;
    case SSL_AD_NO_APPLICATION_PROTOCOL:
        return TG_TLS_BFAIL_ALPN;
    case SSL_AD_CERTIFICATE_REQUIRED:
        return TG_TLS_BFAIL_CERT_REQUIRED;
    case SSL_AD_HANDSHAKE_FAILURE:
        /* TLS 1.2 servers say handshake_failure both for "no suite in common" (answering our
         * hello) and for "no client certificate" (after their CertificateRequest). */
        if (cert_requested)
            return have_cert ? TG_TLS_BFAIL_CERT_REFUSED : TG_TLS_BFAIL_CERT_REQUIRED;
        return TG_TLS_BFAIL_CIPHER;
    case SSL_AD_INSUFFICIENT_SECURITY:
        return TG_TLS_BFAIL_CIPHER;
    case SSL_AD_BAD_CERTIFICATE:
    case SSL_AD_UNSUPPORTED_CERTIFICATE:
    case SSL_AD_CERTIFICATE_REVOKED:
    case SSL_AD_CERTIFICATE_EXPIRED:
    case SSL_AD_CERTIFICATE_UNKNOWN:
    case SSL_AD_UNKNOWN_CA:
    case SSL_AD_ACCESS_DENIED:
    case SSL_AD_DECRYPT_ERROR:
        return cert_requested && have_cert ? TG_TLS_BFAIL_CERT_REFUSED : TG_TLS_BFAIL_PROTOCOL;
    default:
        return TG_TLS_BFAIL_PROTOCOL;
    }
}

static enum tg_tls_bfail map_client_reason(int r)
{
    switch (r) {
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_VERSION_TOO_LOW:
    case SSL_R_VERSION_TOO_HIGH:
    case SSL_R_NO_PROTOCOLS_AVAILABLE:
    case SSL_R_WRONG_SSL_VERSION:
    case SSL_R_UNSUPPORTED_SSL_VERSION:
        return TG_TLS_BFAIL_VERSION;
    case SSL_R_NO_CIPHERS_AVAILABLE:
    case SSL_R_WRONG_CIPHER_RETURNED:
    case SSL_R_WRONG_CURVE:
    case SSL_R_NO_SUITABLE_KEY_SHARE:
    case SSL_R_BAD_KEY_SHARE:
        return TG_TLS_BFAIL_CIPHER;
    case SSL_R_WRONG_VERSION_NUMBER:
    case SSL_R_UNKNOWN_PROTOCOL:
    case SSL_R_PACKET_LENGTH_TOO_LONG:
    case SSL_R_RECORD_LENGTH_MISMATCH:
        return TG_TLS_BFAIL_NOT_TLS;
    case SSL_R_UNEXPECTED_EOF_WHILE_READING:
        return TG_TLS_BFAIL_HANGUP;
    case ERR_R_MALLOC_FAILURE:
    case ERR_R_INTERNAL_ERROR:
        return TG_TLS_BFAIL_INTERNAL;
    default:
        return TG_TLS_BFAIL_PROTOCOL;
    }
}

/* "CN=x,O=y (issuer CN=ca)" of a certificate, or "?" */
static size_t put_cert(char *buf, size_t len, size_t off, X509 *cert)
{
    if (cert == NULL)
        return put(buf, len, off, "?");
    char *subj = tg_dn_string(X509_get_subject_name(cert));
    char *iss = tg_dn_string(X509_get_issuer_name(cert));
    off = put(buf, len, off, "%s (issuer %s)", subj, iss);
    free(subj);
    free(iss);
    return off;
}

/* The certificate verification complained about, else the backend's leaf. */
static X509 *failed_cert(SSL *ssl, const struct tg_tls__cconn *cc)
{
    if (cc != NULL && cc->verify_cert != NULL)
        return cc->verify_cert;
    /* Before verification succeeds OpenSSL keeps the chain but not the peer certificate. */
    STACK_OF(X509) *chain = SSL_get_peer_cert_chain(ssl);
    return sk_X509_num(chain) > 0 ? sk_X509_value(chain, 0) : SSL_get0_peer_certificate(ssl);
}

static size_t put_trust(char *buf, size_t len, size_t off, const struct tg_tls_client *tc)
{
    if (tc == NULL || tc->truststore == NULL || tc->truststore_file == NULL)
        return put(buf, len, off, "the system trust store");
    return put(buf, len, off, "truststore \"%s\" (%zu CA%s)", tc->truststore, tc->n_cas,
               tc->n_cas == 1 ? "" : "s");
}

/* OpenSSL 3.0 names no alert newer than TLS 1.2 but no_application_protocol. */
static const char *alert_name(int alert)
{
    switch (alert) {
    case 109:
        return "missing extension";
    case SSL_AD_CERTIFICATE_REQUIRED:
        return "certificate required";
    default:
        return SSL_alert_desc_string_long(alert);
    }
}

/* "3 TLS 1.3 and 6 TLS 1.2 suites, groups X25519, P-256" of what ssl offers. */
static size_t put_offer(SSL *ssl, const struct tg_tls_client *tc, char *buf, size_t len, size_t off)
{
    STACK_OF(SSL_CIPHER) *sk = SSL_get1_supported_ciphers(ssl);
    int n13 = 0, n12 = 0;
    for (int i = 0; i < sk_SSL_CIPHER_num(sk); i++) {
        if ((SSL_CIPHER_get_protocol_id(sk_SSL_CIPHER_value(sk, i)) >> 8) == 0x13)
            n13++;
        else
            n12++;
    }
    sk_SSL_CIPHER_free(sk);
    off = put(buf, len, off, "we offer %d TLS 1.3 and %d TLS 1.2 suites", n13, n12);
    if (tc != NULL) {
        off = put(buf, len, off, ", groups ");
        off = put_groups(buf, len, off, tc->groups, tc->n_groups);
    }
    return off;
}

static void bfail_detail(SSL *ssl, const struct tg_tls__cconn *cc, enum tg_tls_bfail f,
                         unsigned long e, int alert, int sys_errno, char *buf, size_t len)
{
    const struct tg_tls_client *tc = cc ? cc->tc : NULL;
    const char *reason = e ? ERR_reason_error_string(e) : NULL;
    char when[48];
    size_t off = 0;
    X509 *cert = failed_cert(ssl, cc);
    int verr = cc && cc->verify_error ? cc->verify_error : (int)SSL_get_verify_result(ssl);

    switch (f) {
    case TG_TLS_BFAIL_UNKNOWN_CA:
    case TG_TLS_BFAIL_BAD_CERT:
        off = put(buf, len, off, "%s: certificate ", X509_verify_cert_error_string(verr));
        off = put_cert(buf, len, off, cert);
        off = put(buf, len, off, "; we trust ");
        put_trust(buf, len, off, tc);
        return;
    case TG_TLS_BFAIL_NAME_MISMATCH: {
        size_t n = 0;
        char **names = cert ? tg_tls__cert_names(cert, &n) : NULL;
        off = put(buf, len, off, "we verify %s\"%s\" but the certificate is for ",
                  cc && cc->name_is_ip ? "IP " : "", cc ? cc->name : "?");
        for (size_t i = 0; i < n; i++)
            off = put(buf, len, off, "%s%s", i ? ", " : "", names[i]);
        if (n == 0)
            put(buf, len, off, "no name");
        tg_tls__names_free(names, n);
        return;
    }
    case TG_TLS_BFAIL_EXPIRED:
    case TG_TLS_BFAIL_NOT_YET_VALID:
        off = put(buf, len, off, "certificate ");
        off = put_cert(buf, len, off, cert);
        tg_tls__time_str(cert ? (f == TG_TLS_BFAIL_EXPIRED ? X509_get0_notAfter(cert)
                                                           : X509_get0_notBefore(cert))
                              : NULL,
                         when, sizeof(when));
        off = put(buf, len, off,
                  f == TG_TLS_BFAIL_EXPIRED ? " expired on %s" : " is not valid before %s", when);
        if (cc != NULL && cc->verify_depth > 0)
            put(buf, len, off, " (chain depth %d)", cc->verify_depth);
        return;
    case TG_TLS_BFAIL_PIN_MISMATCH: {
        char pin[64];
        tg_tls__spki_pin(cert, pin, sizeof(pin));
        off = put(buf, len, off, "no certificate of the chain matches tls.pin; certificate ");
        off = put_cert(buf, len, off, cert);
        put(buf, len, off, " has sha256/%s", pin);
        return;
    }
    case TG_TLS_BFAIL_VERSION:
        off = put(buf, len, off, "we offer %s to %s",
                  tg_tls__version_name(tc ? tc->min_version : SSL_get_min_proto_version(ssl)),
                  tg_tls__version_name(tc ? tc->max_version : SSL_get_max_proto_version(ssl)));
        break;
    case TG_TLS_BFAIL_CIPHER:
        off = put_offer(ssl, tc, buf, len, off);
        break;
    case TG_TLS_BFAIL_NOT_TLS:
        off = put(buf, len, off, "the backend's first bytes are not a TLS record");
        break;
    case TG_TLS_BFAIL_ALPN:
        off = put(buf, len, off, "we offer");
        for (size_t o = 0; tc != NULL && o < tc->alpn_len; o += 1 + tc->alpn_wire[o])
            off = put(buf, len, off, "%s %.*s", o ? "," : "", tc->alpn_wire[o],
                      (const char *)tc->alpn_wire + o + 1);
        break;
    case TG_TLS_BFAIL_CERT_REQUIRED:
        off = put(buf, len, off,
                  "the backend asked for a client certificate; we have none "
                  "(set tls.client_certificate)");
        break;
    case TG_TLS_BFAIL_CERT_REFUSED:
        off = put(buf, len, off, "our certificate ");
        off = put_cert(buf, len, off, SSL_get_certificate(ssl));
        off = put(buf, len, off, " was refused");
        break;
    case TG_TLS_BFAIL_HANGUP:
        if (sys_errno != 0)
            put(buf, len, off, "%s", strerror(sys_errno));
        else
            put(buf, len, off, "the backend closed the connection");
        return;
    case TG_TLS_BFAIL_INTERNAL:
        if (reason == NULL && sys_errno != 0)
            reason = strerror(sys_errno);
        break;
    default:
        break;
    }
    /* What the backend or OpenSSL said, after our side of the story. */
    if (alert >= 0)
        put(buf, len, off, "%sthe backend sent alert \"%s\"", off ? "; " : "", alert_name(alert));
    else if (reason != NULL)
        put(buf, len, off, "%sOpenSSL: %s", off ? "; " : "", reason);
    else if (off == 0)
        put(buf, len, off, "%s", tg_tls_bfail_info(f)->sentence);
}

enum tg_tls_bfail tg_tls_client_classify(SSL *ssl, int ssl_error, int sys_errno, char *detail,
                                         size_t n)
{
    const struct tg_tls__cconn *cc = tg_tls__cconn_get(ssl);
    unsigned long first = 0, e;
    bool other_lib = false;
    int alert = -1;
    enum tg_tls_bfail f;

    /* The earliest SSL-library error names the cause; later ones are consequences. */
    while ((e = ERR_get_error()) != 0) {
        if (ERR_GET_LIB(e) == ERR_LIB_SSL && first == 0)
            first = e;
        else if (first == 0)
            other_lib = true;
    }
    int r = first ? ERR_GET_REASON(first) : 0;
    bool cert_requested = cc != NULL && cc->cert_requested;
    bool have_cert = ssl != NULL && SSL_get_certificate(ssl) != NULL;
    if (cc != NULL && cc->pin_mismatch) {
        f = TG_TLS_BFAIL_PIN_MISMATCH;
    } else if (cc != NULL && cc->verify_error != 0) {
        f = map_verify_error(cc->verify_error);
    } else if (r == SSL_R_CERTIFICATE_VERIFY_FAILED) {
        f = map_verify_error((int)SSL_get_verify_result(ssl));
        if (f == TG_TLS_BFAIL_NONE)
            f = TG_TLS_BFAIL_BAD_CERT;
    } else if (r >= SSL_AD_REASON_OFFSET && r < SSL_AD_REASON_OFFSET + 256) {
        alert = r - SSL_AD_REASON_OFFSET;
        f = map_backend_alert(alert, cert_requested, have_cert);
    } else if (r != 0) {
        f = map_client_reason(r);
    } else if (ssl_error == SSL_ERROR_ZERO_RETURN) {
        f = TG_TLS_BFAIL_HANGUP;
    } else if (ssl_error == SSL_ERROR_SYSCALL) {
        f = sys_errno == 0 || sys_errno == ECONNRESET || sys_errno == EPIPE ||
                    sys_errno == ECONNABORTED || sys_errno == ETIMEDOUT
                ? TG_TLS_BFAIL_HANGUP
                : TG_TLS_BFAIL_INTERNAL;
    } else if (ssl_error == SSL_ERROR_SSL) {
        f = other_lib ? TG_TLS_BFAIL_INTERNAL : TG_TLS_BFAIL_PROTOCOL;
    } else {
        f = TG_TLS_BFAIL_INTERNAL;
    }
    if (n > 0) {
        detail[0] = '\0';
        bfail_detail(ssl, cc, f, first, alert, sys_errno, detail, n);
    }
    return f;
}
