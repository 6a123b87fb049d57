/* TLS from config: per-listener server contexts (SNI, RSA+ECDSA), handshake-failure reasons, dev
 * certificates. */
#ifndef TG_TLS_TLS_H
#define TG_TLS_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "config/config.h"

/* ---- Server contexts (tls/server.c) ---- */

/* Immutable set of SSL_CTXs for one listener: one per distinct certificate name set, each holding
 * every key type (RSA, ECDSA) configured for those names. Shared read-only by all workers. */
struct tg_tls_server;

/* Builds the contexts for cfg->listeners[listener_idx]: loads and checks every keystore it names
 * (chain, key, key/cert match, expiry), applies versions, suites, groups, ALPN, resumption and the
 * security level. Problems go to err with the keystore's or tls object's location; returns 0 or
 * -EINVAL. A listener with tls.disabled yields -EINVAL (callers must not ask). */
int tg_tls_server_new(const struct tg_config *cfg, size_t listener_idx, struct tg_tls_server **out,
                      struct tg_err *err);
void tg_tls_server_free(struct tg_tls_server *ts);
/* The context to SSL_new() from; its SNI callback switches to the context whose certificate
 * names match the requested server name (exact, then wildcard), else keeps this default. */
SSL_CTX *tg_tls_server_ctx(const struct tg_tls_server *ts);
/* Prints the effective policy for `tlsgate check`: versions, TLS 1.3 and 1.2 suites in offered
 * order (IANA and OpenSSL names), groups, ALPN, resumption, security level, and per certificate:
 * subject, SANs, issuer chain, key type and size, not-after and days left, key usage. */
void tg_tls_server_print_policy(const struct tg_tls_server *ts, FILE *out);

/* ---- Handshake failures (tls/failure.c) ---- */

enum tg_tls_fail {
    TG_TLS_FAIL_NONE = 0,
    TG_TLS_FAIL_VERSION,    /* client offered only versions outside min..max */
    TG_TLS_FAIL_CIPHER,     /* no cipher suite in common */
    TG_TLS_FAIL_GROUP,      /* no key-exchange group in common */
    TG_TLS_FAIL_SIGALG,     /* no signature algorithm usable with our certificates */
    TG_TLS_FAIL_ALPN,       /* no ALPN protocol in common */
    TG_TLS_FAIL_SSLV2,      /* an SSLv2 client hello */
    TG_TLS_FAIL_PLAIN_HTTP, /* plain HTTP sent to the TLS port */
    TG_TLS_FAIL_NOT_TLS,    /* other bytes that are not TLS */
    TG_TLS_FAIL_HANGUP,     /* client closed or reset the connection mid-handshake */
    TG_TLS_FAIL_TIMEOUT,    /* handshake did not finish within timeouts.handshake */
    TG_TLS_FAIL_PEER_ALERT, /* client sent a fatal alert (e.g. it does not trust our certificate) */
    TG_TLS_FAIL_PROTOCOL,   /* malformed or unexpected handshake messages */
    TG_TLS_FAIL_INTERNAL,   /* our side failed (allocation, provider, ...) */
    TG_TLS_FAIL__COUNT
};

struct tg_tls_fail_info {
    const char *token;      /* metrics label, e.g. "unsupported_version" */
    const char *sentence;   /* plain words, e.g. "the client offered only TLS versions this listener
                               does not allow" */
    const char *config_key; /* key that would change the outcome, e.g. "tls.min_version", or NULL */
    bool client_caused;     /* log at info (client's doing) rather than error (ours) */
};

const struct tg_tls_fail_info *tg_tls_fail_info(enum tg_tls_fail f);

/* Classifies a failed SSL_do_handshake from SSL_get_error()'s result, the errno seen for
 * SSL_ERROR_SYSCALL (0 = EOF) and OpenSSL's error queue, which it clears. */
enum tg_tls_fail tg_tls_classify(SSL *ssl, int ssl_error, int sys_errno);

/* Writes one sentence of detail for a failure into buf (NUL-terminated), e.g.
 * "client offered TLS1.0-TLS1.1, listener allows TLS1.3-TLS1.3", using what the client-hello
 * callback recorded for ssl (may be less specific if nothing was recorded). */
void tg_tls_fail_detail(SSL *ssl, enum tg_tls_fail f, char *buf, size_t len);

enum tg_tls_sniff {
    TG_SNIFF_NEED_MORE = 0, /* fewer bytes than needed to tell */
    TG_SNIFF_TLS,           /* a TLS record (handshake content type 22, version 3.x) */
    TG_SNIFF_SSLV2,         /* an SSLv2-format client hello */
    TG_SNIFF_HTTP,          /* starts like an HTTP request line ("GET ", "POST ", ...) */
    TG_SNIFF_OTHER,
};
/* Looks at the first bytes a client sent (up to 8 are needed); pure function. */
enum tg_tls_sniff tg_tls_sniff(const uint8_t *p, size_t n);

/* ---- Distinguished names (tls/dn.c) ---- */

/* Parses "CN=alice,O=Org,C=GB" (RFC 4514 escapes, '+' multi-valued RDNs, spaces around separators
 * ignored, attribute types case-insensitive, OIDs allowed) into a new X509_NAME; NULL and a
 * message in err (with path as its JSON path, may be NULL) if malformed. */
X509_NAME *tg_dn_parse(const char *s, struct tg_err *err, const char *path);
/* Canonical form for comparison: types upper-cased short names, values with surrounding spaces
 * removed and compared case-sensitively, RDNs sorted; newly allocated. */
char *tg_dn_canonical(const X509_NAME *name);
/* One-line RFC 2253-style rendering for logs and headers; newly allocated. */
char *tg_dn_string(const X509_NAME *name);

/* ---- Dev certificates (tls/certgen.c) ---- */

enum tg_cert_kind { TG_CERT_CA, TG_CERT_SERVER, TG_CERT_CLIENT };

struct tg_cert_req {
    enum tg_cert_kind kind;
    const char *subject;      /* DN string; default "CN=tlsgate dev CA" / first name / required */
    const char *const *names; /* SANs for servers: DNS names or IP addresses */
    size_t n_names;
    int rsa_bits;         /* 0 = ECDSA P-256 (default); else RSA with this many bits */
    int days;             /* validity; 0 = default (CA 3650, others 825) */
    EVP_PKEY *issuer_key; /* NULL = self-signed */
    X509 *issuer_cert;
};

/* Makes a key and a certificate with proper extensions (basicConstraints, keyUsage,
 * extendedKeyUsage, SKI/AKI, SANs). Returns 0, or -EINVAL with a message in err. */
int tg_cert_make(const struct tg_cert_req *req, EVP_PKEY **key_out, X509 **cert_out,
                 struct tg_err *err);
/* Writes cert (then issuer, if given, as the chain) to cert_path and the key (mode 0600, PKCS#8,
 * unencrypted) to key_path, each atomically. Returns 0 or -errno with a message in err. */
int tg_cert_write_pem(const char *cert_path, X509 *cert, X509 *issuer, const char *key_path,
                      EVP_PKEY *key, struct tg_err *err);
/* Makes <state_dir>/default.crt and default.key (self-signed ECDSA P-256 for localhost,
 * 127.0.0.1 and ::1) unless both exist; creates state_dir (0700). 0 or -errno with err. */
int tg_cert_ensure_default(const char *state_dir, struct tg_err *err);

#endif
