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
/* What a server loaded, for the admin API (tls/inventory.c): each certificate it serves with the
 * keystore it came from, and each CRL file of its client_auth. */
void tg_tls_server_each_cert(const struct tg_tls_server *ts,
                             void (*fn)(const char *keystore, X509 *cert, void *arg), void *arg);
void tg_tls_server_each_crl(const struct tg_tls_server *ts,
                            void (*fn)(const char *file, X509_CRL *crl, void *arg), void *arg);

/* ---- Session ticket keys (tls/tickets.c) ---- */

#define TG_TLS_TICKET_KEY_LEN  80 /* bytes per key in a key file */
#define TG_TLS_TICKET_KEYS_MAX 16 /* keys per file or ring */

/* One ticket key, as stored in a key file: a name the ticket carries, then the HMAC-SHA256 key
 * and the AES-256-CBC key (nginx's 80-byte ssl_session_ticket_key layout). */
struct tg_tls_ticket_key {
    unsigned char name[16];
    unsigned char hmac[32];
    unsigned char aes[32];
};

/* An immutable, refcounted ring of ticket keys: [0], the newest, encrypts; all decrypt. */
struct tg_tls_tickets;

/* Reads a key file (1 to TG_TLS_TICKET_KEYS_MAX records of 80 bytes, newest first). 0 with a
 * new ring in *out, or -EINVAL with a reason (never key bytes) in why. */
int tg_tls_tickets_load(const char *file, struct tg_tls_tickets **out, char *why, size_t why_len);
/* A new ring: a fresh random key first, then up to keep - 1 of prev's newest keys (prev may be
 * NULL). */
struct tg_tls_tickets *tg_tls_tickets_rotate(const struct tg_tls_tickets *prev, size_t keep);
/* A ring of n keys (1 to TG_TLS_TICKET_KEYS_MAX) of TG_TLS_TICKET_KEY_LEN bytes each, newest
 * first, as a shared store holds them; NULL when n is out of range. */
struct tg_tls_tickets *tg_tls_tickets_from_keys(const unsigned char *keys, size_t n);
struct tg_tls_tickets *tg_tls_tickets_ref(struct tg_tls_tickets *t);
/* Drops a reference (any thread); the last one wipes and frees the ring. Accepts NULL. */
void tg_tls_tickets_unref(struct tg_tls_tickets *t);
size_t tg_tls_tickets_count(const struct tg_tls_tickets *t);
/* Key i (0 = newest), or NULL. */
const struct tg_tls_ticket_key *tg_tls_tickets_key(const struct tg_tls_tickets *t, size_t i);
/* Makes t the ring this thread's handshakes use (takes a reference, drops the previous one).
 * Until a thread has one, its handshakes issue no tickets and resume none. */
void tg_tls_tickets_use(struct tg_tls_tickets *t);

/* The process-wide cache of client-certificate sessions (session_tickets.client_auth
 * "stateful"): at most max sessions (session_tickets.client_auth_sessions), the oldest dropped
 * first; applied at start and on every reload. Any thread. */
void tg_tls_sessions_bound(size_t max);
/* Sessions cached now, and the bytes their entries take (no lock taken). */
size_t tg_tls_sessions_count(void);
size_t tg_tls_sessions_bytes(void);

/* ---- TLS 1.3 early data (tls/early.c) ---- */

#define TG_TLS_EARLY_MAX      16384 /* early data a listener with tls.early_data accepts */
#define TG_TLS_EARLY_WINDOW_S 30    /* seconds a ticket stays in the anti-replay register */

/* What became of a client's early data. */
enum tg_tls_early {
    TG_TLS_EARLY_NONE = 0, /* none offered */
    TG_TLS_EARLY_ACCEPTED,
    TG_TLS_EARLY_REJECTED, /* not allowed here, or the ticket is stale (OpenSSL's checks) */
    TG_TLS_EARLY_REPLAY,   /* the ticket already carried early data within the window */
    TG_TLS_EARLY_FULL,     /* the anti-replay register had no free slot for it */
    TG_TLS_EARLY__COUNT
};

/* Once the handshake has finished (and its early data was counted): frees what the ClientHello
 * callbacks recorded to explain a failure; the connection no longer needs it (issue 16 d). */
void tg_tls_hello_release(SSL *ssl);

/* A connection's per-SSL records kept without OpenSSL's ex_data: the first SSL_set_ex_data (or
 * SSL_set_app_data) allocates a stack that stays as long as the SSL lives (~96 bytes per idle
 * connection, issue 16 d). The owner embeds the link and ties it to the SSL after SSL_set_fd; it
 * is found again through the socket BIO's callback argument (no BIO callback is ever set on it;
 * SSL_get_wbio gives the socket BIO even while the handshake buffers its writes or a filter
 * stands in front of the read side). The owner reaches itself from the link by its offset. */
struct tg_tls__hello;
struct tg_tls_link {
    struct tg_tls__hello *hello; /* the ClientHello record, until released */
};
/* Ties l (zeroed by the caller) to ssl, whose socket BIO is set; false if it has none. */
bool tg_tls_link_set(SSL *ssl, struct tg_tls_link *l);
/* The link tied to ssl, or NULL (an SSL without one keeps its records in ex_data). */
struct tg_tls_link *tg_tls_link_of(SSL *ssl);
/* Frees what the link holds (before SSL_free). */
void tg_tls_link_clear(struct tg_tls_link *l);

/* After the ClientHello was processed: what became of its early data. */
enum tg_tls_early tg_tls_early_status(SSL *ssl);
/* "accepted", "rejected", "replay", "register_full" (for logs and counters). */
const char *tg_tls_early_token(enum tg_tls_early e);

/* ---- OCSP staples (tls/staple.c) ---- */

/* Whether a staple needs work: an OCSP file changed, or a fetched response is
 * due for renewal (half its validity passed) or a failed fetch for a retry. Cheap; any thread. */
bool tg_tls_staples_due(void);
/* Re-reads changed OCSP files and fetches due responses (force: also fetches every response not
 * fetched yet). Blocks on the network (up to 5 s per responder): call it off the event loop. */
void tg_tls_staples_refresh(bool force);

/* An immutable, refcounted set of every staple's current response (each with its own validity,
 * checked again when stapling). Handshakes read only their thread's set, so they take no lock. */
struct tg_tls_staples;
/* The set of the responses now (a new reference): what workers start with. */
struct tg_tls_staples *tg_tls_staples_current(void);
/* Called with a new set (borrowed: take a reference to keep it) whenever a response changes —
 * a file re-read, a fetch, a reload — before the change is logged; from the thread making the
 * change (the main thread or libuv's thread pool), one call at a time, in order. */
typedef void (*tg_tls_staples_publish_cb)(struct tg_tls_staples *set, void *arg);
/* Sets (or with NULL clears) the publisher; publishes at once if a response changed since
 * tg_tls_staples_current(). */
void tg_tls_staples_on_change(tg_tls_staples_publish_cb cb, void *arg);
struct tg_tls_staples *tg_tls_staples_ref(struct tg_tls_staples *set);
/* Drops a reference (any thread). Accepts NULL. */
void tg_tls_staples_unref(struct tg_tls_staples *set);
/* Makes set the one this thread's handshakes staple from (takes a reference, drops the previous
 * one). Until a thread has one, its handshakes staple nothing. */
void tg_tls_staples_use(struct tg_tls_staples *set);

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
    TG_TLS_FAIL_MESSAGE_TOO_LARGE, /* a handshake message over OpenSSL's limit (a huge chain) */
    TG_TLS_FAIL_INTERNAL,          /* our side failed (allocation, provider, ...) */
    /* Client certificates (tls.client_auth): */
    TG_TLS_FAIL_CERT_MISSING,        /* required, none sent */
    TG_TLS_FAIL_CERT_EXPIRED,        /* a certificate of the chain has expired */
    TG_TLS_FAIL_CERT_NOT_YET_VALID,  /* ... is not valid yet */
    TG_TLS_FAIL_CERT_UNKNOWN_CA,     /* the chain leads to a CA the truststore does not hold */
    TG_TLS_FAIL_CERT_NO_ISSUER,      /* the chain ends at an issuer neither sent nor trusted */
    TG_TLS_FAIL_CERT_BAD_SIGNATURE,  /* a signature of the chain does not verify */
    TG_TLS_FAIL_CERT_REVOKED,        /* revoked (CRL file, CRL URL or OCSP) */
    TG_TLS_FAIL_CERT_STATUS_UNKNOWN, /* revocation status unknown under hard_fail */
    TG_TLS_FAIL_CERT_NOT_ALLOWED,    /* not on allowed_subjects */
    TG_TLS_FAIL_CERT_USAGE,          /* key usage / extended key usage not for TLS clients */
    TG_TLS_FAIL_CERT_BAD,            /* other verification failures (depth, policy, ...) */
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

/* ---- Client certificates (tls/clientauth.c, allow.c, ident.c) ---- */

/* Whether listener ts asks clients for certificates (tls.client_auth.mode is not none). */
bool tg_tls_server_client_auth(const struct tg_tls_server *ts);
/* The decision ts would make now for a client presenting leaf (and the intermediates in chain,
 * may be NULL; the leaf in it is skipped): chain, depth, usage, allow list and revocation (with
 * may_block, missing revocation data is fetched here; without, only cached data is used).
 * TG_TLS_FAIL_NONE when admitted; detail (n may be 0) gets one sentence either way. Any thread. */
enum tg_tls_fail tg_tls_server_client_check(const struct tg_tls_server *ts, X509 *leaf,
                                            STACK_OF(X509) * chain, bool may_block, char *detail,
                                            size_t n);

/* One revocation fetch (a CRL from a CDP URL, or an OCSP response), shared by every handshake
 * that waits for it; refcounted. */
struct tg_tls_fetch;
/* Called on the thread driving ssl's server handshake when client-certificate verification needs
 * f (the callee owns that reference). Returning true promises: tg_tls_fetch_run(f) runs off the
 * event loop, then the handshake is driven again (SSL_do_handshake) on this thread; the handshake
 * meanwhile reports SSL_ERROR_WANT_ASYNC. Returning false lets verification go on without it
 * (status unknown). Without a hook (e.g. `tlsgate check`), fetches run where verification does. */
typedef bool (*tg_tls_fetch_cb)(SSL *ssl, struct tg_tls_fetch *f);
/* Sets the hook (NULL: none); call before workers start. */
void tg_tls_set_fetch_hook(tg_tls_fetch_cb cb);
/* Fetches f unless it is fresh, or waits for the thread already fetching it; blocks at most a few
 * seconds. Any thread. A failure is logged once per URL per interval. */
void tg_tls_fetch_run(struct tg_tls_fetch *f);
void tg_tls_fetch_unref(struct tg_tls_fetch *f);
const char *tg_tls_fetch_url(const struct tg_tls_fetch *f);
/* "OCSP response" or "CRL": what f fetches, for log lines. */
const char *tg_tls_fetch_what(const struct tg_tls_fetch *f);
/* The handshake paused for a fetch on ssl stops waiting (its time is running out): driven again,
 * verification goes on without that data and waits for no other fetch (status unknown; under
 * hard_fail the refusal names the fetch). */
void tg_tls_server_stop_waiting(SSL *ssl);
/* Ends a handshake paused for a fetch on a connection being closed (so OpenSSL's paused job
 * finishes); the handshake fails without being logged as a refusal. */
void tg_tls_server_abandon(SSL *ssl);

/* The chain the client's certificate was verified with on listener ts (leaf first, trust anchor
 * last; a new reference): SSL_get0_verified_chain(), or for a resumed session the chain verified
 * again from what the session kept. NULL when there is none. Any thread. */
STACK_OF(X509) * tg_tls_server_verified_chain(const struct tg_tls_server *ts, SSL *ssl);
/* For a resumed session (verified when it was made, under the same policy: a new policy means a
 * new session id context): whether leaf has been revoked since, from data at hand only (the
 * chain is not kept in session tickets). TG_TLS_FAIL_CERT_REVOKED or TG_TLS_FAIL_NONE; detail
 * (n > 0) says why. Any thread. */
enum tg_tls_fail tg_tls_server_client_recheck(const struct tg_tls_server *ts, X509 *leaf,
                                              char *detail, size_t n);

/* The client certificate a TLS-terminating balancer passed in a header field value (v, len
 * bytes; tls.client_auth.from_header): URL-encoded PEM (WSO2's X-WSO2-CLIENT-CERTIFICATE,
 * nginx's $ssl_client_escaped_cert), PEM with its line breaks turned into spaces or tabs,
 * base64 DER (HAProxy's ssl_c_der,base64) or RFC 9440's ":base64:". A PEM value may carry
 * intermediates after the leaf. Returns the leaf (new) and *chain (new, possibly empty), or NULL
 * with a sentence in why. Any bytes are safe. */
X509 *tg_tls_cert_from_header(const char *v, size_t len, STACK_OF(X509) * *chain, char *why,
                              size_t n);

/* A set of allow-list entries, looked up by hash. */
struct tg_tls_allow;
/* Route route_idx's own allow list (routes[].allowed_subjects) on ts's listener, or NULL when the
 * route has none. Borrowed for ts's lifetime; any thread. */
const struct tg_tls_allow *tg_tls_server_route_allow(const struct tg_tls_server *ts,
                                                     size_t route_idx);
struct tg_tls_allow *tg_tls_allow_new(void);
void tg_tls_allow_free(struct tg_tls_allow *a);
/* Parses one entry ("CN=a,O=b", "dns:NAME", "uri:URI", "email:ADDR", "ip:ADDR",
 * "spki:BASE64-SHA256") into its canonical key (*key_out, new); 0, or -EINVAL with a sentence in
 * why. */
int tg_tls_allow_parse(const char *entry, char **key_out, char *why, size_t n);
/* Adds an entry (as tg_tls_allow_parse; duplicates are kept once); 0 or -EINVAL. */
int tg_tls_allow_add(struct tg_tls_allow *a, const char *entry, char *why, size_t n);
size_t tg_tls_allow_count(const struct tg_tls_allow *a);
/* Whether cert's subject, one of its SANs, or its key matches an entry; matched (may be NULL)
 * gets the kind that matched ("subject", "dns", "uri", "email", "ip", "spki"). */
bool tg_tls_allow_match(const struct tg_tls_allow *a, X509 *cert, char *matched, size_t n);

/* Envoy's X-Forwarded-Client-Cert value for leaf: Hash=<sha256 hex>;Subject="...";URI="...";
 * DNS="..." (quoted values escaped, one line); new string, NULL for no leaf. */
char *tg_tls_xfcc(X509 *leaf);
/* RFC 9440 Client-Cert: ":<base64 DER>:"; new string, NULL for no certificate. */
char *tg_tls_rfc9440_cert(X509 *cert);
/* RFC 9440 Client-Cert-Chain from a verified chain (leaf first, trust anchor last): the
 * certificates after the leaf, without the trust anchor unless with_anchor, as byte sequences
 * joined by ", "; new string, NULL when there are none. */
char *tg_tls_rfc9440_chain(STACK_OF(X509) * verified, bool with_anchor);

/* ---- Client contexts towards backends (tls/client.c) ---- */

/* One TLS backend's client SSL_CTX: trust store, verification, client certificate, versions,
 * suites, groups, ALPN and a client session cache that keeps nothing itself. Immutable once
 * shared (see tg_tls_client_set_session_hook), used by every worker. */
struct tg_tls_client;

/* Receives a resumable session the backend gave ssl: at the end of a TLS 1.2 handshake, or
 * later (TLS 1.3 tickets arrive after it, during SSL_read; a server may send several). Runs on
 * the thread driving ssl and owns one reference to sess (SSL_SESSION_free it when replaced).
 * Find the connection with SSL_get_app_data(ssl). Keep at most one session per (worker,
 * backend, target) and drop them when the snapshot changes: a resumed handshake skips
 * verification and pins, so a session must not outlive the policy that checked it. */
typedef void (*tg_tls_session_cb)(SSL *ssl, SSL_SESSION *sess);

/* Builds the client context of TLS backend bc (bc->tls.enabled; bc one of cfg->backends): loads
 * its truststore (a PEM bundle or directory, or OpenSSL's default paths) and client certificate
 * (as listeners load keystores), applies verification, pins, versions, suites, groups and ALPN.
 * Problems go to err at the truststore's, keystore's or backend's location; 0 or -EINVAL. */
int tg_tls_client_new(const struct tg_config *cfg, const struct tg_backend_conf *bc,
                      struct tg_tls_client **out, struct tg_err *err);
/* Frees a client context (accepts NULL); every SSL made from it must have been freed first (as
 * they are with the snapshot that holds it). */
void tg_tls_client_free(struct tg_tls_client *tc);
/* Sets the function given every new resumable session (NULL = none, the default: sessions are
 * then dropped). Call before tc is shared with workers, e.g. right after tg_snapshot_new. */
void tg_tls_client_set_session_hook(struct tg_tls_client *tc, tg_tls_session_cb cb);
/* A new SSL in connect state for target t of the backend: SNI and the name verified are
 * tls.server_name, else t->host (an IP address gets no SNI and is checked against IP SANs);
 * pins are checked as part of verification; partial writes, moving write buffers and read-ahead
 * are on. The caller attaches the socket (SSL_set_fd), may SSL_set_session, and frees it with
 * SSL_free. NULL if OpenSSL cannot allocate. */
SSL *tg_tls_client_ssl_new(struct tg_tls_client *tc, const struct tg_target_conf *t);
/* Whether the backend sent a CertificateRequest on ssl (so far), whether or not we have a
 * certificate to send: false after a handshake means it never asked for ours. */
bool tg_tls_client_cert_requested(const SSL *ssl);
/* Prints the backend's effective TLS policy for `tlsgate check`: versions, suites in offered order
 * (IANA and OpenSSL names), groups, SNI and the name verified (per target when defaulted), trust
 * (truststore and its CA count, or system), client certificate (subject, key, not-after, days
 * left), pins, ALPN, and a WARNING line when verification is off. */
void tg_tls_client_print_policy(const struct tg_tls_client *tc, FILE *out);

/* ---- Backend handshake failures (tls/failure.c) ---- */

enum tg_tls_bfail {
    TG_TLS_BFAIL_NONE = 0,
    TG_TLS_BFAIL_UNKNOWN_CA,    /* the chain does not lead to a CA we trust */
    TG_TLS_BFAIL_NAME_MISMATCH, /* the certificate is not for the name (or IP) we verify */
    TG_TLS_BFAIL_EXPIRED,       /* a certificate of the chain has expired */
    TG_TLS_BFAIL_NOT_YET_VALID, /* a certificate of the chain is not valid yet */
    TG_TLS_BFAIL_BAD_CERT,      /* other verification failures (signature, purpose, ...) */
    TG_TLS_BFAIL_PIN_MISMATCH,  /* no certificate of the chain has a pinned key */
    TG_TLS_BFAIL_VERSION,       /* no TLS version in common */
    TG_TLS_BFAIL_CIPHER,        /* no cipher suite or key-exchange group in common */
    TG_TLS_BFAIL_ALPN,          /* no ALPN protocol in common */
    TG_TLS_BFAIL_CERT_REQUIRED, /* the backend demands a client certificate we do not have */
    TG_TLS_BFAIL_CERT_REFUSED,  /* the backend rejected the client certificate we sent */
    TG_TLS_BFAIL_NOT_TLS,       /* the backend answered with something that is not TLS */
    TG_TLS_BFAIL_HANGUP,        /* the backend closed or reset the connection mid-handshake */
    TG_TLS_BFAIL_TIMEOUT,       /* never returned by the classifier: the engine's timer */
    TG_TLS_BFAIL_PROTOCOL,      /* other alerts, malformed or unexpected messages */
    TG_TLS_BFAIL_INTERNAL,      /* our side failed (allocation, provider, key) */
    TG_TLS_BFAIL__COUNT
};

/* The row of a backend failure (config keys are relative to backends.NAME). */
const struct tg_tls_fail_info *tg_tls_bfail_info(enum tg_tls_bfail f);

/* Classifies a failed handshake with a backend from SSL_get_error()'s result and the errno seen
 * for SSL_ERROR_SYSCALL (0 = EOF), using what verification recorded on ssl and OpenSSL's error
 * queue, which it clears. Also call it for the first failed SSL_read/SSL_write of a TLS 1.3
 * connection: a backend refusing our certificate says so only after our side has finished.
 * Writes one sentence of detail into detail (NUL-terminated; n may be 0), e.g. the names the
 * certificate has for a name mismatch. */
enum tg_tls_bfail tg_tls_client_classify(SSL *ssl, int ssl_error, int sys_errno, char *detail,
                                         size_t n);

/* ---- Distinguished names (tls/dn.c) ---- */

/* Parses "CN=alice,O=Org,C=GB" (RFC 4514 escapes, '+' multi-valued RDNs, spaces around separators
 * ignored, attribute types case-insensitive, OIDs allowed) into a new X509_NAME; NULL and a
 * message in err (with path as its JSON path, may be NULL) if malformed. */
X509_NAME *tg_dn_parse(const char *s, struct tg_err *err, const char *path);
/* Canonical form for comparison: types upper-cased short names, values with surrounding spaces
 * removed and inner runs of spaces folded to one (RFC 4518), compared case-sensitively, RDNs
 * sorted; newly allocated. */
char *tg_dn_canonical(const X509_NAME *name);
/* One-line RFC 2253-style rendering for logs and headers; newly allocated. */
char *tg_dn_string(const X509_NAME *name);
/* tg_dn_string escaped for a value between quotes in a log line (tg_esc_quote): a subject
 * cannot end its quotes and add fields of its own; newly allocated. */
char *tg_dn_quoted(const X509_NAME *name);

/* ---- Dev certificates (tls/certgen.c) ---- */

enum tg_cert_kind { TG_CERT_CA, TG_CERT_SERVER, TG_CERT_CLIENT };

struct tg_cert_req {
    enum tg_cert_kind kind;
    const char *subject;      /* DN string; default "CN=tlsgate dev CA" / first name / required */
    const char *const *names; /* SANs for servers: DNS names or IP addresses */
    size_t n_names;
    int rsa_bits;         /* 0 = ECDSA P-256 (default); else RSA with this many bits */
    int days;             /* validity; 0 = default (CA 3650, others 397) */
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
/* What tg_cert_ensure_default found in the state directory; anything but OK means it wrote a new
 * key and certificate. */
enum tg_cert_default_found {
    TG_CERT_DEFAULT_OK = 0,        /* kept: usable, at least 30 days left */
    TG_CERT_DEFAULT_MISSING,       /* default.crt or default.key did not exist (first start) */
    TG_CERT_DEFAULT_EXPIRING,      /* fewer than 30 days were left */
    TG_CERT_DEFAULT_EXPIRED,       /* past its notAfter */
    TG_CERT_DEFAULT_NOT_YET_VALID, /* notBefore in the future (the clock went back) */
    TG_CERT_DEFAULT_UNUSABLE,      /* certificate or key did not parse, or they did not match */
};

struct tg_cert_default_info {
    enum tg_cert_default_found found;
    int days_left;      /* of the certificate found, when it parsed */
    char not_after[32]; /* of the certificate now in place, "2027-01-31 12:00:00Z" */
};

/* Makes <state_dir>/default.crt and default.key (self-signed ECDSA P-256 for localhost,
 * 127.0.0.1 and ::1, valid 397 days) unless both exist, are usable and have 30 days or more
 * left; a replacement gets a new key too. Creates state_dir (0700). Fills info (may be NULL)
 * and never logs. 0 or -errno with err (also when an existing file cannot be read). */
int tg_cert_ensure_default(const char *state_dir, struct tg_cert_default_info *info,
                           struct tg_err *err);
/* As tg_cert_ensure_default for <state_dir>/<base>.crt and <base>.key (the admin listener's). */
int tg_cert_ensure_named(const char *state_dir, const char *base, struct tg_cert_default_info *info,
                         struct tg_err *err);

/* ---- Secrets and keystore reports (tls/secret.c, tls/keystores.c) ---- */

/* Seals a secret to the internal keystore's key as an "enc:" value (docs/secrets.md): a random
 * AES-256-GCM data key, wrapped with RSA-OAEP-SHA-256 for an RSA key or derived with ephemeral
 * ECDH and HKDF-SHA-256 for an EC (or X25519/X448) key. *out is new. 0, or -EINVAL with a
 * reason in why (never the secret). */
int tg_tls_secret_encrypt(const struct tg_keystore_conf *internal, const uint8_t *plain, size_t len,
                          char **out, char *why, size_t why_len);
/* Opens an "enc:" value with the internal keystore: *plain is new and NUL-terminated, *plain_len
 * its length; the caller cleanses and frees it. A damaged, altered or foreign value is -EINVAL
 * with a reason in why. */
int tg_tls_secret_decrypt(const struct tg_keystore_conf *internal, const char *value, char **plain,
                          size_t *plain_len, char *why, size_t why_len);
/* Lets config loading decrypt "enc:" passwords (tg_config_set_secret_opener). Call once at
 * start. */
void tg_tls_secrets_init(void);
/* An admin password hash, "$scrypt$ln=15,r=8,p=1$SALT$HASH" (PHC string, unpadded base64);
 * *out is new. 0 or -EINVAL. */
int tg_tls_password_hash(const char *pw, size_t len, char **out);
/* Checks pw against a hash made by tg_tls_password_hash (or "$pbkdf2-sha256$i=N$SALT$HASH"):
 * 0 when it matches, -EACCES when not, -EINVAL for a malformed hash. */
int tg_tls_password_verify(const char *stored, const char *pw, size_t len);

/* The subject (as tg_dn_string) of the certificate under alias (compared case-insensitively, as
 * Java does) in the keystore or truststore file of type ("pkcs12", "jks", "jceks"), opened with
 * password (may be NULL for JKS); *subject is new. 0, -ENOENT (no such alias) or the store's
 * error, with a sentence in why (never the password). */
int tg_tls_store_alias_subject(const char *type, const char *file, const char *password,
                               const char *alias, char **subject, char *why, size_t why_len);

/* Loads every keystore of cfg that no listener or backend names (including "internal"), so
 * their problems are reported too; problems go to err. */
void tg_tls_keystores_check(const struct tg_config *cfg, struct tg_err *err);
/* Prints, per keystore, what was loaded for `tlsgate check`: type and file, alias, subject,
 * SANs, key type and size, not-after. Never prints a password. */
void tg_tls_keystores_print(const struct tg_config *cfg, FILE *out);

/* ---- ACME (tls/acme.c) ---- */

/* Takes the acme section and keystores of cfg as what to obtain (main thread, at start and on
 * every reload; keeps each unchanged keystore's backoff). 0, or -EINVAL with the truststore's
 * problem in err. */
int tg_acme_configure(const struct tg_config *cfg, struct tg_err *err);
/* Whether a keystore's next look (issue, renew, or check its certificate) is due. */
bool tg_acme_due(void);
/* Does what is due, talking to the ACME server: blocking, on the libuv thread pool only. True if
 * a new certificate was written to the state directory (the caller reloads). */
bool tg_acme_run(void);
/* The HTTP-01 key authorization for token, or NULL: any thread, without a lock; the string stays
 * valid until tg_acme_shutdown. */
const char *tg_acme_http01(const char *token, size_t len);
/* ACME attempts that failed since start. */
unsigned long long tg_acme_failures(void);
/* One `tlsgate check` line for an acme keystore: its names, the stored certificate's validity
 * and renewal time (or that a placeholder is served), and the last attempt's error. */
void tg_acme_print(const struct tg_config *cfg, const struct tg_keystore_conf *kc, FILE *out);
/* At SIGTERM: a running job gives up at its next step (any thread). */
void tg_acme_stop(void);
void tg_acme_shutdown(void);

#endif
