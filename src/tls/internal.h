/* Symbols shared only inside the tls module: keystore loading, client-hello records, names. */
#ifndef TG_TLS_INTERNAL_H
#define TG_TLS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include <jansson.h>
#include <openssl/ocsp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "config/config.h"
#include "core/err.h"
#include "tls/tls.h"

/* What a client offered in its ClientHello, kept so a failed handshake can be explained. Attached
 * lazily by the client-hello callback to the connection's tg_tls_link (or, for an SSL without
 * one, as ex_data) and freed once the handshake has finished or with the connection. Kept tiny
 * because every connection in handshake may carry one. */
#define TG_TLS__ACME_ALPN    "acme-tls/1" /* RFC 8737 */
#define TG_TLS__HELLO_GROUPS 6
struct tg_tls__hello {
    uint16_t min_version; /* lowest TLS version offered (TLS1_VERSION style); 0 = unknown */
    uint16_t max_version; /* highest TLS version offered; 0 = nothing recorded */
    uint16_t n_suites;    /* cipher suites offered (without SCSVs and GREASE) */
    uint16_t groups[TG_TLS__HELLO_GROUPS]; /* first groups offered (IANA ids) */
    uint8_t n_groups;                      /* groups offered in total (capped at 255) */
    bool suite_match;                      /* one of its suites is enabled here */
    bool groups_sent;                      /* it sent supported_groups */
    bool group_match;                      /* one of its groups is enabled here */
    bool alpn_sent;                        /* it offered ALPN */
    bool acme;                             /* answered as a TLS-ALPN-01 validation */
    uint8_t early; /* enum tg_tls_early: the anti-replay register's verdict, if asked */
};

/* A ClientHello's raw fields, each in its wire format, as OpenSSL's client-hello accessors give
 * them (buffers borrowed). */
struct tg_tls__hello_fields {
    unsigned legacy_version;
    bool has_versions; /* supported_versions was sent; its body: */
    const unsigned char *versions;
    size_t versions_len;
    const unsigned char *suites; /* cipher suites, 2 bytes each (3 in an SSLv2-format hello) */
    size_t suites_len;
    bool isv2;
    bool has_groups; /* supported_groups was sent; its body: */
    const unsigned char *groups;
    size_t groups_len;
    bool has_alpn;
};

/* What the listener enables, to tell whether the client's offer matches. */
struct tg_tls__hello_ours {
    int min_version, max_version;
    bool (*suite_enabled)(void *arg, unsigned id); /* the suite with IANA id is enabled */
    void *arg;
    const uint16_t *groups; /* IANA ids */
    size_t n_groups;
};

/* Fills h from a ClientHello's fields (untrusted bytes: every length is checked against its
 * buffer). */
void tg_tls__hello_record(struct tg_tls__hello *h, const struct tg_tls__hello_fields *in,
                          const struct tg_tls__hello_ours *ours);
/* The record for ssl, or NULL if the client-hello callback has not run on it. */
const struct tg_tls__hello *tg_tls__hello_get(SSL *ssl);
/* The record for ssl, allocated on first use; NULL only if ex_data could not be set. */
struct tg_tls__hello *tg_tls__hello_get_or_new(SSL *ssl);

/* "TLS1.2" for TLS1_2_VERSION and friends, "?" otherwise. */
const char *tg_tls__version_name(int version);

/* Groups: IANA id, OpenSSL NID and the name operators know ("P-256", "X25519"). */
struct tg_tls__group {
    uint16_t id;
    int nid;
    const char *name;
};
/* By IANA id or by any usual spelling ("P-256", "prime256v1", "secp256r1"); NULL if unknown. */
const struct tg_tls__group *tg_tls__group_by_id(uint16_t id);
const struct tg_tls__group *tg_tls__group_by_name(const char *name);
/* Groups enabled for a ':'-separated list, or OpenSSL 3.0's default when list is NULL. Fills up
 * to max ids and returns how many were found. */
size_t tg_tls__groups_parse(const char *list, uint16_t *ids, size_t max);

/* Loaded and checked key material of one keystore. */
struct tg_tls__keystore {
    X509 *cert;
    STACK_OF(X509) * chain; /* intermediates following the leaf in the PEM file; may be empty */
    EVP_PKEY *key;
    char *alias; /* pkcs12/jks/jceks: the entry used (NULL if the file names none) */
};

/* Loads kc's certificate chain and key (a pem pair, or one entry of a pkcs12/jks/jceks store),
 * checks they match, that the key suits TLS (no DSA, key usage) and that the certificate is valid
 * now (warning if it expires within 30 days). The keystore named "internal" is refused: it is
 * never used for TLS. Problems go to err at kc's location; 0 or -EINVAL. */
int tg_tls__keystore_load(const struct tg_keystore_conf *kc, struct tg_tls__keystore *out,
                          struct tg_err *err);
/* As tg_tls__keystore_load without the TLS checks (usage, validity) and without refusing
 * "internal": the key material that encrypts secrets. */
int tg_tls__keystore_load_any(const struct tg_keystore_conf *kc, struct tg_tls__keystore *out,
                              struct tg_err *err);
void tg_tls__keystore_close(struct tg_tls__keystore *ks);

/* ---- Java keystores (jks.c) ---- */

enum { TG_TLS__JKS = 1, TG_TLS__JCEKS = 2 };
enum { TG_TLS__JKS_KEY = 1, TG_TLS__JKS_TRUSTED = 2, TG_TLS__JKS_SECRET = 3 };

struct tg_tls__jks_cert {
    const uint8_t *der; /* borrowed from the parsed buffer */
    size_t len;
};

struct tg_tls__jks_entry {
    int tag;            /* TG_TLS__JKS_KEY or TG_TLS__JKS_TRUSTED */
    char *alias;        /* as stored (keytool writes it lower-cased) */
    uint64_t date_ms;   /* creation date, Java milliseconds */
    const uint8_t *key; /* key entries: the EncryptedPrivateKeyInfo DER, borrowed */
    size_t key_len;
    struct tg_tls__jks_cert *certs; /* key entries: the chain, leaf first; trusted: one */
    size_t n_certs;
};

struct tg_tls__jks {
    int kind;         /* TG_TLS__JKS or TG_TLS__JCEKS */
    uint32_t version; /* 1 or 2 */
    struct tg_tls__jks_entry *entries;
    size_t n;
};

/* Parses a JKS or JCEKS file held in buf (which must outlive *out: entries borrow from it).
 * With password non-NULL the store's integrity digest is checked too. Returns 0 and fills *out,
 * -EBADMSG when the digest does not match (wrong password or altered file), or -EINVAL for
 * anything else, with a sentence in why (truncation and damage name the byte offset). */
int tg_tls__jks_parse(const uint8_t *buf, size_t len, const char *password, struct tg_tls__jks *out,
                      char *why, size_t why_len);
void tg_tls__jks_free(struct tg_tls__jks *ks);
/* Decrypts key entry e (JKS key protector or JCEKS PBEWithMD5AndTripleDES) into a new key.
 * 0, -EACCES (wrong key password) or -EINVAL (damaged, unknown algorithm), with why. */
int tg_tls__jks_key(const struct tg_tls__jks_entry *e, const char *password, EVP_PKEY **out,
                    char *why, size_t why_len);

/* ---- keystore files of every type (stores.c) ---- */

/* One entry of a pkcs12, jks or jceks file, in the form every type shares. */
struct tg_tls__store_entry {
    char *alias;            /* NULL when the file names none (openssl pkcs12 without -name) */
    bool is_key;            /* a private-key entry; else a trusted certificate */
    X509 *cert;             /* the leaf of a key entry, or the trusted certificate */
    STACK_OF(X509) * chain; /* key entries: the issuers after the leaf (no self-signed root) */
    const void *priv;       /* the type's own reference to the encrypted key */
};

struct tg_tls__store {
    struct tg_tls__store_entry *v;
    size_t n;
    int kind; /* 0 pkcs12, else TG_TLS__JKS / TG_TLS__JCEKS */
    struct tg_tls__jks jks;
    char *data; /* the file, which jks entries borrow from */
    size_t len;
    void *bags; /* pkcs12: STACK_OF(PKCS12_SAFEBAG) of every bag */
};

/* A PKCS#12 file asking for more key-derivation iterations than tg_tls__pbe_max_iter (MAC, or
 * certificate or key encryption) is refused before OpenSSL runs them. The fuzz harness lowers
 * it; nothing else changes it. */
#define TG_TLS__PBE_MAX_ITER 5000000L
extern long tg_tls__pbe_max_iter;

/* Opens file, written as type ("pkcs12", "jks" or "jceks"), in whichever of the three formats it
 * really is (as Java's keystore.type.compat does; st->kind says which), with the store password
 * (NULL: no integrity check for JKS/JCEKS). Loads OpenSSL's legacy provider when a PKCS#12 file
 * needs it (RC2, RC4, DES). 0 or -errno with a sentence in why (never the password). */
int tg_tls__store_open(const char *type, const char *file, const char *password,
                       struct tg_tls__store *out, char *why, size_t why_len);
/* As tg_tls__store_open, for a file already in memory (buf is copied; the caller keeps it). */
int tg_tls__store_parse(const char *type, const void *buf, size_t len, const char *password,
                        struct tg_tls__store *out, char *why, size_t why_len);
/* "PKCS#12", "JKS" or "JCEKS" for a store's kind. */
const char *tg_tls__store_format(int kind);
/* Whether the format found differs from type; if so writes "type jks, file is PKCS#12: loaded as
 * PKCS#12" into buf, for a warning. */
bool tg_tls__store_differs(const char *type, const struct tg_tls__store *st, char *buf, size_t len);
/* Decrypts the key of key entry i with password (the key password, or the store password). */
int tg_tls__store_key(const struct tg_tls__store *st, size_t i, const char *password,
                      EVP_PKEY **out, char *why, size_t why_len);
void tg_tls__store_close(struct tg_tls__store *st);
/* Appends the store's aliases ("a (key), b (trusted certificate)") to buf, for messages. */
void tg_tls__store_aliases(const struct tg_tls__store *st, char *buf, size_t len);
/* The certificates a pkcs12/jks/jceks truststore trusts: every trusted-certificate entry, or
 * the entries named in ts->aliases (a key entry then gives its certificate). *out is a new
 * stack. 0, or -errno with the problem in err at the truststore's location. */
int tg_tls__store_trusted(const struct tg_truststore_conf *ts, STACK_OF(X509) * *out,
                          struct tg_err *err);

/* Opens an "enc:" value with the internal key (tg_tls_secret_decrypt once the key is loaded):
 * 0 and a new NUL-terminated *plain, or -EINVAL with why (never the secret). */
int tg_tls__secret_open(EVP_PKEY *key, const char *value, char **plain, size_t *plain_len,
                        char *why, size_t why_len);

/* The parse step of fetched revocation data (revoke.c), on the answer's body: a DER CRL, or an
 * OCSP response that must be successful, signed by issuer (or a responder it delegated to) and
 * hold a current status for cert. 0 with a new *out and *expires (nextUpdate, else now + an
 * hour), or -EINVAL with a sentence in why. */
int tg_tls__crl_parse(const uint8_t *buf, size_t len, time_t now, X509_CRL **out, time_t *expires,
                      char *why, size_t why_len);
int tg_tls__ocsp_parse(const uint8_t *buf, size_t len, X509 *cert, X509 *issuer, time_t now,
                       OCSP_BASICRESP **out, time_t *expires, char *why, size_t why_len);

/* "RSA", "ECDSA", "Ed25519", ... for a key. */
const char *tg_tls__key_type(const EVP_PKEY *key);
/* Writes "ECDSA P-256" / "RSA 2048" into buf. */
void tg_tls__key_desc(const EVP_PKEY *key, char *buf, size_t len);

/* The certificate's names: SAN DNS names (lower-cased) and IP addresses (as text), or its CN when
 * it has no SAN of those kinds; sorted, without duplicates. Newly allocated array of new strings.
 */
char **tg_tls__cert_names(X509 *cert, size_t *n);
void tg_tls__names_free(char **names, size_t n);
/* Whether a certificate name ("a.example.com" or "*.example.com") matches a requested host:
 * exact and case-insensitive, or a wildcard standing for exactly one label. */
bool tg_tls__name_match(const char *pattern, const char *host, bool allow_wildcard);

/* Formats an ASN1_TIME as "2027-01-31 12:00:00Z" into buf; days left until it from now. */
void tg_tls__time_str(const ASN1_TIME *t, char *buf, size_t len);
int tg_tls__days_left(const ASN1_TIME *t);

/* ---- policy shared by server and client contexts (server.c) ---- */

/* Versions, suites, groups and security level of one "tls" object (a listener's or a backend's),
 * borrowed from the config. */
struct tg_tls__policy {
    const char *path;         /* JSON pointer of the tls object, for messages */
    const struct tg_loc *loc; /* its location */
    int min_version, max_version;
    const char *ciphersuites, *cipher_list, *curves;
    bool cipher_string, legacy;
};
/* Applies pol to ctx. With report, what OpenSSL refuses goes to err (and suites this build lacks
 * are warned about); without, it is only reflected in the result. 0 or -EINVAL. */
int tg_tls__apply_policy(SSL_CTX *ctx, const struct tg_tls__policy *pol, bool report,
                         struct tg_err *err);
/* The ALPN wire format (length-prefixed ids) of n protocol ids; newly allocated, NULL when n is
 * 0. *len gets its size. */
unsigned char *tg_tls__alpn_wire(char *const *ids, size_t n, size_t *len);
/* The reason of OpenSSL's last queued error in words (or "unknown reason"); clears the queue. */
void tg_tls__openssl_reason(char *buf, size_t len);

/* ---- server contexts (server.c, policy.c) ---- */

struct tg_tls__sctx { /* one SSL_CTX per distinct certificate name set */
    SSL_CTX *ctx;
    char **names; /* sorted, lower-cased (see tg_tls__cert_names) */
    size_t n_names;
};

struct tg_tls__scert { /* one loaded certificate, for `check` and the admin API */
    char *keystore;
    X509 *cert;
    STACK_OF(X509) * chain;
    size_t ctx_idx;
    struct tg_tls__staple *staple; /* tls.ocsp_stapling, or NULL */
};

#define TG_TLS__MAX_GROUPS 16
struct tg_tls_server {
    char *listener;
    char *address;
    enum tg_listener_mode mode;
    int min_version, max_version;
    bool legacy;
    bool resumption;
    char *curves;                        /* as configured, or NULL for OpenSSL's default */
    uint16_t groups[TG_TLS__MAX_GROUPS]; /* IANA ids of the enabled groups */
    size_t n_groups;
    unsigned char *alpn_wire; /* length-prefixed protocol ids, or NULL when ALPN is off */
    size_t alpn_len;
    struct tg_tls__sctx *ctxs; /* [0] is the default */
    size_t n_ctxs;
    struct tg_tls__scert *certs;
    size_t n_certs;
    struct tg_tls__cauth *cauth; /* client-certificate policy, or NULL for mode none */
    unsigned char cauth_fp[32];  /* SHA-256 of what the client-certificate policy admits */
    struct tg_tls_allow *
        *route_allow; /* per route of the listener: its allowed_subjects, or NULL */
    size_t n_route_allow;
    unsigned tickets_per_handshake; /* session_tickets.per_handshake */
    long session_timeout;           /* seconds a session (ticket) stays resumable */
    unsigned char sid[32];          /* session id context: SHA-256 of the listener's label */
    /* client certificates asked for and session_tickets.client_auth stateful: sessions.c */
    bool stateful;
    unsigned char sess_scope[32]; /* SHA-256 of sid and cauth_fp: where a cached session resumes */
};

/* ---- stateful sessions of client-certificate listeners (sessions.c) ---- */

/* Makes ctx send session ids as tickets and keep sessions in the process-wide cache. */
void tg_tls__sessions_apply(SSL_CTX *ctx);

/* ---- OCSP (revoke.c), shared by client-certificate revocation and stapling ---- */

struct tg_tls__ocsp_info {
    int status;         /* V_OCSP_CERTSTATUS_GOOD, _REVOKED or _UNKNOWN */
    time_t this_update; /* 0 if unreadable */
    time_t next_update; /* 0 if the response has none */
    time_t revoked_at;  /* REVOKED only */
    bool current;       /* valid now (5 minutes of clock skew allowed) */
};
/* The first http:// OCSP responder URL of cert's AIA into buf; false if none. */
bool tg_tls__ocsp_url(X509 *cert, char *buf, size_t n);
/* Asks the responder at url about cert (POST, no proxy, at most 5 s): a new response, or NULL
 * with a reason in why. Blocks: call off the event loop. */
OCSP_RESPONSE *tg_tls__ocsp_query(const char *url, X509 *cert, X509 *issuer, char *why,
                                  size_t why_len);
/* Checks r: successful, signed by issuer (or a responder it delegated to), and holding a status
 * for cert; fills *info (validity included, not required). 0, or -1 with a reason in why. With
 * basic_out, *basic_out gets the basic response. */
int tg_tls__ocsp_check(OCSP_RESPONSE *r, X509 *cert, X509 *issuer, struct tg_tls__ocsp_info *info,
                       OCSP_BASICRESP **basic_out, char *why, size_t why_len);

/* ---- OCSP stapling (staple.c) ---- */

struct tg_tls__staple;
/* The staple of cert (issuer looked up in chain) from oc's source, shared by every snapshot
 * serving it (a reference). A file is read now (and again at every call, i.e. every reload). */
struct tg_tls__staple *tg_tls__staple_get(const struct tg_ocsp_conf *oc, X509 *cert,
                                          STACK_OF(X509) * chain);
void tg_tls__staple_unref(struct tg_tls__staple *s);
/* Whether s has a response, or (fetch) a responder to ask; else the reason in why. */
bool tg_tls__staple_usable(const struct tg_tls__staple *s, char *why, size_t n);
/* A copy of the response to staple (for SSL_set_tlsext_status_ocsp_resp), or false when the
 * calling thread's set (tg_tls_staples_use) has none for s that is current now, good and for this
 * certificate. Takes no lock: for the handshake path. */
bool tg_tls__staple_copy(const struct tg_tls__staple *s, unsigned char **der, size_t *len);
/* One line for `tlsgate check`: source, status, this update and expiry, or why none. */
void tg_tls__staple_print(struct tg_tls__staple *s, FILE *out);

/* ---- session tickets (tickets.c) ---- */

/* Sets the ticket-key callback (the calling thread's ring) on a listener context. */
void tg_tls__tickets_apply(SSL_CTX *ctx);
/* early.c: accept TLS 1.3 early data on ctx (tls.early_data), checked against the register. */
void tg_tls__early_apply(SSL_CTX *ctx);
/* Records that early data came on the ticket with fingerprint fp at monotonic second now:
 * ACCEPTED the first time within TG_TLS_EARLY_WINDOW_S, else REPLAY (or FULL). */
enum tg_tls_early tg_tls__early_register(uint64_t fp, uint64_t now);

/* ---- client certificates (clientauth.c) ---- */

/* A listener's client-certificate policy, loaded (cauth_load.c) and applied (clientauth.c). */
#define CHAIN_CACHE_SLOTS 4096 /* verified chains remembered per listener (a power of two) */

struct crl_file {
    char *file;
    X509_CRL *crl;
    /* The CA whose key verified it: a truststore CA at load time, or (for a CRL an intermediate
     * issued) the first verified chain's issuer that matched its signature. NULL until then. */
    X509 *issuer;
};

struct chain_entry {
    uint64_t key;                 /* of the presented certificates' fingerprints */
    STACK_OF(X509) * presented;   /* leaf first, then what else the client sent, in order */
    time_t not_before, not_after; /* of the whole verified chain */
    STACK_OF(X509) * verified;    /* leaf first, trust anchor last */
};

struct tg_tls__cauth {
    enum tg_cauth_mode mode;
    enum tg_rev_mode rev_mode;
    bool scope_chain;
    bool fetch;
    bool send_ca_names;
    int depth; /* OpenSSL's: intermediates allowed */
    char *truststore;
    size_t n_cas;
    X509_STORE *store;
    STACK_OF(X509_NAME) * ca_names;
    struct tg_tls_allow *allow;
    struct crl_file *crls;
    size_t n_crls;
    pthread_mutex_t lock; /* the chain cache and CRL reloads */
    struct chain_entry *cache;
};
/* Reads a CRL file (PEM or DER); NULL with *rc a negative errno or 0 for "not a CRL". */
X509_CRL *tg_tls__cauth_read_crl(const char *file, int *rc);
/* Builds the client-certificate policy of listener lc (mode not none): truststore, allow list,
 * CRL files. Problems go to err at their JSON paths; 0 or -EINVAL. */
int tg_tls__cauth_new(const struct tg_config *cfg, const struct tg_listener_conf *lc,
                      struct tg_tls__cauth **out, struct tg_err *err);
void tg_tls__cauth_free(struct tg_tls__cauth *ca);
/* SHA-256 over what decides admission (mode, depth, revocation settings, trust anchors, allow
 * list): equal for equal policies, in any process, so a session ticket can carry it. */
void tg_tls__cauth_fingerprint(const struct tg_tls__cauth *ca, const struct tg_client_auth_conf *cc,
                               unsigned char out[32]);
void tg_tls__cauth_each_crl(const struct tg_tls__cauth *ca,
                            void (*fn)(const char *file, X509_CRL *crl, void *arg), void *arg);
/* Prints the client-certificate policy for `tlsgate check` (nothing when ca is NULL). */
void tg_tls__cauth_print(const struct tg_tls__cauth *ca, FILE *out);
/* Sets verification mode, callback, depth and CA names on a listener context. */
void tg_tls__cauth_apply(struct tg_tls__cauth *ca, SSL_CTX *ctx);
/* Revocation status of x (issued by issuer) from fetched data (revoke.c): 1 revoked (detail
 * written), 0 good, -1 unknown; *need gets a reference to a fetch that would tell, or NULL. A
 * source whose last fetch failed is named in note (appended, "; "-separated) with its error. */
int tg_tls__fetched_status(X509 *x, X509 *issuer, char *detail, size_t n,
                           struct tg_tls_fetch **need, char *note, size_t note_n);
tg_tls_fetch_cb tg_tls__fetch_hook(void);
/* The clock of the revocation fetch cache and of OCSP stapling: time(), or for unit tests the
 * function given to tg_tls__set_clock (NULL: time() again). */
time_t tg_tls__now(void);
void tg_tls__set_clock(time_t (*fn)(time_t *));
/* For unit tests: how many URLs and OCSP certificate ids the fetch cache remembers (<= 1024). */
size_t tg_tls__fetch_entries(void);
/* The issuer of x among fresh fetched data (an OCSP request's issuer or a CRL's verified signer
 * whose key signed x), as a new reference, or NULL. */
X509 *tg_tls__fetched_issuer(X509 *x);
/* The failure verification recorded on ssl (TG_TLS_FAIL_NONE if none) and its detail. */
enum tg_tls_fail tg_tls__cauth_failure(SSL *ssl, const char **detail);

/* The server a context belongs to, or NULL for contexts not made by tg_tls_server_new. */
const struct tg_tls_server *tg_tls__server_of(const SSL_CTX *ctx);
/* Records each ClientHello of ctx's connections (hello.c; ts: the listener's server). */
void tg_tls__hello_attach(SSL_CTX *ctx, struct tg_tls_server *ts);

/* ---- truststores (trust.c) ---- */

/* Loads truststore truststore_idx of cfg (SIZE_MAX, or any index past the list, for OpenSSL's
 * default paths) into store. With ca_names_out, *ca_names_out gets a new stack of the distinct
 * subjects loaded (empty for the system trust), for a CertificateRequest; n_certs (may be NULL)
 * gets how many certificates were added. PEM truststores set X509_V_FLAG_PARTIAL_CHAIN on store.
 * Problems go to err at the truststore's location; 0 or -EINVAL (nothing handed over). */
int tg_tls__trust_load(const struct tg_config *cfg, size_t truststore_idx, X509_STORE *store,
                       STACK_OF(X509_NAME) * *ca_names_out, size_t *n_certs, struct tg_err *err);

/* ---- client contexts (client.c, policy.c, failure.c) ---- */

struct tg_tls_client {
    SSL_CTX *ctx;
    char *backend;                       /* the backend's name */
    char *server_name;                   /* tls.server_name, or NULL for each target's host */
    char **target_addrs, **target_hosts; /* of every target, for `check` */
    size_t n_targets;
    char *truststore;      /* name, or NULL for the system trust */
    char *truststore_file; /* resolved file or directory */
    size_t n_cas;          /* certificates loaded from a pem truststore */
    bool verify;           /* false with allow_insecure */
    uint8_t (*pins)[32];
    size_t n_pins;
    int min_version, max_version;
    bool legacy;
    char *curves;
    uint16_t groups[TG_TLS__MAX_GROUPS];
    size_t n_groups;
    unsigned char *alpn_wire;
    size_t alpn_len;
    char *client_keystore; /* keystore name of the client certificate, or NULL */
    X509 *client_cert;
    tg_tls_session_cb session_hook;
};

/* What one connection to a backend learned during its handshake; SSL ex_data, freed with it. */
struct tg_tls__cconn {
    const struct tg_tls_client *tc;
    char *name; /* the name or IP verified (and sent as SNI unless an IP) */
    bool name_is_ip;
    bool cert_requested; /* the backend sent a CertificateRequest */
    bool pin_mismatch;   /* verification passed but no pin matched */
    int verify_error;    /* X509_V_* of a failed verification, or 0 */
    int verify_depth;    /* depth of the certificate it is about */
    X509 *verify_cert;   /* that certificate (a reference), or NULL */
};

/* The record of a backend connection made by tg_tls_client_ssl_new, or NULL. */
struct tg_tls__cconn *tg_tls__cconn_get(const SSL *ssl);
/* The base64 SPKI SHA-256 of cert ("sha256/..." without the prefix) into buf (at least 45). */
void tg_tls__spki_pin(X509 *cert, char *buf, size_t len);

/* ---- ACME transport and JWS (acme_http.c), responses (acme_json.c) ---- */

#define TG_ACME_MAX_RESP (256 * 1024) /* the largest ACME answer accepted */

struct tg_acme__resp {
    int status;
    char nonce[256], location[1024], ctype[128];
    int retry_after; /* seconds, 0 if absent */
    char *body;      /* NUL-terminated */
    size_t body_len;
};
/* One HTTPS exchange (POST when body is non-NULL, as application/jose+json). 0, or -1 with why. */
int tg_acme__http(SSL_CTX *ctx, const char *method, const char *url, const char *body,
                  struct tg_acme__resp *r, char *why, size_t why_len);
void tg_acme__resp_free(struct tg_acme__resp *r);
char *tg_acme__b64u(const unsigned char *p, size_t n);
char *tg_acme__jwk(EVP_PKEY *key);
char *tg_acme__thumbprint(EVP_PKEY *key);
/* The flattened JWS of payload ("" for POST-as-GET) signed ES256 by key, with kid or (NULL) the
 * key's jwk in the protected header; NULL if signing failed. */
char *tg_acme__jws(EVP_PKEY *key, const char *kid, const char *nonce, const char *url,
                   const char *payload);

/* The externalAccountBinding member (RFC 8555 §7.3.4): the account key's JWK signed HS256 with
 * the base64url hmac_key; NULL if hmac_key is not base64url. */
json_t *tg_acme__eab(EVP_PKEY *key, const char *kid, const char *hmac_key, const char *url);

/* A parsed ACME answer: the fields the client uses, checked for type and size. */
struct tg_acme__doc {
    char *new_nonce, *new_account, *new_order; /* directory */
    char *status;                              /* order, authorization, challenge */
    char **authzs;                             /* order: authorization URLs */
    size_t n_authzs;
    char *finalize, *certificate; /* order */
    char *identifier;             /* authorization: the dns name */
    struct {
        char *type, *url, *token, *status;
    } chals[8]; /* authorization: its challenges */
    size_t n_chals;
    char *problem_type, *problem_detail; /* problem document, or an error inside an object */
};
/* Publishes a new answer set (acme_chal.c): the current one without id (an HTTP-01 token, or with
 * tls a TLS-ALPN-01 name), plus the answer given (keyauth non-NULL; cert and key for tls, each
 * taking its own reference). The caller serialises calls. */
void tg_acme__answers_set(const char *id, bool tls, const char *keyauth, X509 *cert, EVP_PKEY *key);
/* The RFC 8737 validation certificate for name: self-signed, the name as its only SAN, and the
 * critical acmeIdentifier extension holding SHA-256 of keyauth. 0 or -1. */
int tg_acme__tlsalpn_cert(const char *name, const char *keyauth, X509 **cert_out,
                          EVP_PKEY **key_out);
void tg_acme__answers_free(void);
/* TLS-ALPN-01 (acme_chal.c): the validation certificate and key published for name, or false; any
 * thread, without a lock; both stay valid until tg_acme_shutdown. */
bool tg_acme__tlsalpn_find(const char *name, size_t len, X509 **cert, EVP_PKEY **key);

enum tg_acme__kind { TG_ACME_DIRECTORY, TG_ACME_ORDER, TG_ACME_AUTHZ, TG_ACME_PROBLEM };
/* Parses body as kind into doc; 0, or -1 with why (what is missing or malformed). */
int tg_acme__parse(enum tg_acme__kind kind, const char *body, size_t len, struct tg_acme__doc *doc,
                   char *why, size_t why_len);
void tg_acme__doc_free(struct tg_acme__doc *doc);

#endif
