/* Stateful resumption for listeners that ask for client certificates
 * (session_tickets.client_auth "stateful"): OpenSSL sends a session id as the TLS 1.3 ticket
 * (SSL_OP_NO_TICKET) and hands the session to this process-wide cache, which keeps its encoding.
 * A stateless ticket costs a full handshake a serialisation of the session and a parse back
 * (OpenSSL 3.0's construct_stateless_ticket), decoding the client's certificate a second time;
 * here a full handshake only encodes it (the certificate's DER is cached in its X509), and the
 * parse happens when the session is resumed, as a stateless ticket's decryption does.
 *
 * The cache outlives the SSL_CTX of any snapshot, so sessions survive reloads; an entry resumes
 * only on a listener with the same session id context and the same client-certificate policy
 * fingerprint as the one that verified it (as ticket_dec_cb does for tickets). It holds at most
 * session_tickets.client_auth_sessions entries (the oldest goes first), each until its
 * lifetime (the ticket lifetime) ends; a TLS 1.3 entry resumes once (dropped when the
 * resumption makes its successor; OpenSSL 3.0's own cache would keep it), a TLS 1.2 session id
 * may be reused until it expires. One mutex guards it, taken only in
 * OpenSSL's session callbacks during a handshake (as OpenSSL's own per-context cache does),
 * never on the request path. */
#include "tls/tls.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/ssl.h>

#include "core/core.h"
#include "tls/internal.h"

struct entry {
    struct entry *hnext;         /* hash chain */
    struct entry *older, *newer; /* age list */
    time_t expires;
    bool tls13;
    unsigned id_len;
    unsigned char id[SSL_MAX_SSL_SESSION_ID_LENGTH];
    unsigned char scope[32]; /* tg_tls_server.sess_scope of the listener that made it */
    size_t der_len;
    unsigned char der[]; /* the session, i2d_SSL_SESSION */
};

static struct {
    pthread_mutex_t mu;
    struct entry **buckets; /* power of two */
    size_t n_buckets;
    size_t count, max;
    struct entry *oldest, *newest;
} cache = {.mu = PTHREAD_MUTEX_INITIALIZER, .max = 20480};

static atomic_size_t cached;       /* cache.count, for readers that take no lock */
static atomic_size_t cached_bytes; /* the entries' allocations, likewise */

static size_t entry_size(const struct entry *e)
{
    return sizeof(*e) + e->der_len;
}

/* The id of the TLS 1.3 session a handshake resumes (SSL ex_data, only on such handshakes): the
 * entry goes once the handshake has made its successor, not at the look-up, since a
 * HelloRetryRequest makes the client send the same ticket again in its second ClientHello. */
struct used {
    unsigned len;
    unsigned char id[SSL_MAX_SSL_SESSION_ID_LENGTH];
};
static int used_idx = -1;
static pthread_once_t used_once = PTHREAD_ONCE_INIT;

static void used_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
    free(ptr);
}

static void used_init(void)
{
    used_idx = SSL_get_ex_new_index(0, "tlsgate resumed session id", NULL, NULL, used_free);
}

static size_t bucket_of(const unsigned char *id, unsigned len)
{
    uint64_t h = 1469598103934665603ull; /* ids are random: FNV-1a spreads them enough */
    for (unsigned i = 0; i < len; i++)
        h = (h ^ id[i]) * 1099511628211ull;
    return (size_t)h & (cache.n_buckets - 1);
}

/* A session's encoding is about 1 KiB with an ECDSA client certificate; a client may send
 * certificates up to OpenSSL's Certificate message limit, and a session over this is not kept. */
#define MAX_DER 16384

/* Unlinks e (locked); the caller frees it. */
static void unlink_entry(struct entry *e)
{
    struct entry **pp = &cache.buckets[bucket_of(e->id, e->id_len)];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    if (e->older != NULL)
        e->older->newer = e->newer;
    else
        cache.oldest = e->newer;
    if (e->newer != NULL)
        e->newer->older = e->older;
    else
        cache.newest = e->older;
    e->hnext = NULL;
    cache.count--;
    atomic_store_explicit(&cached, cache.count, memory_order_relaxed);
    atomic_fetch_sub_explicit(&cached_bytes, entry_size(e), memory_order_relaxed);
}

static struct entry *find(const unsigned char *id, unsigned len)
{
    if (cache.buckets == NULL)
        return NULL;
    for (struct entry *e = cache.buckets[bucket_of(id, len)]; e != NULL; e = e->hnext)
        if (e->id_len == len && memcmp(e->id, id, len) == 0)
            return e;
    return NULL;
}

/* Unlinks the oldest entries until at most max remain or the oldest is still valid and there
 * is room (locked); returns them as a list through hnext for freeing outside the lock. */
static struct entry *trim(size_t max, time_t now)
{
    struct entry *out = NULL;
    while (cache.oldest != NULL && (cache.count > max || cache.oldest->expires <= now)) {
        struct entry *e = cache.oldest;
        unlink_entry(e);
        e->hnext = out;
        out = e;
    }
    return out;
}

static void free_list(struct entry *e)
{
    while (e != NULL) {
        struct entry *next = e->hnext;
        OPENSSL_cleanse(e->der, e->der_len); /* it holds the session's secret */
        free(e);
        e = next;
    }
}

void tg_tls_sessions_bound(size_t max)
{
    if (max == 0)
        max = 1;
    pthread_mutex_lock(&cache.mu);
    cache.max = max;
    struct entry *gone = trim(max, time(NULL));
    pthread_mutex_unlock(&cache.mu);
    free_list(gone);
}

size_t tg_tls_sessions_count(void)
{
    return atomic_load_explicit(&cached, memory_order_relaxed);
}

size_t tg_tls_sessions_bytes(void)
{
    return atomic_load_explicit(&cached_bytes, memory_order_relaxed);
}

/* SSL_CTX_sess_set_new_cb: OpenSSL made a session (a TLS 1.3 ticket, or a TLS 1.2 session id).
 * Kept encoded: an SSL_SESSION object with the client's decoded certificates holds about 11 KiB,
 * its encoding about 1 KiB, and encoding it reuses the certificates' own DER (no decoding). */
static int new_cb(SSL *ssl, SSL_SESSION *sess)
{
    const struct tg_tls_server *ts = tg_tls__server_of(SSL_get_SSL_CTX(ssl));
    unsigned len = 0;
    const unsigned char *id = SSL_SESSION_get_id(sess, &len);
    int der_len = i2d_SSL_SESSION(sess, NULL);
    struct used *u =
        used_idx >= 0 && SSL_session_reused(ssl) ? SSL_get_ex_data(ssl, used_idx) : NULL;
    if (ts == NULL || len == 0 || len > SSL_MAX_SSL_SESSION_ID_LENGTH || der_len <= 0 ||
        der_len > MAX_DER)
        return 0;
    struct entry *e = tg_xcalloc(1, sizeof(*e) + (size_t)der_len);
    unsigned char *p = e->der;
    if (i2d_SSL_SESSION(sess, &p) != der_len) {
        free(e);
        return 0;
    }
    e->der_len = (size_t)der_len;
    e->expires = (time_t)SSL_SESSION_get_time(sess) + (time_t)SSL_SESSION_get_timeout(sess);
    e->tls13 = SSL_SESSION_get_protocol_version(sess) == TLS1_3_VERSION;
    e->id_len = len;
    memcpy(e->id, id, len);
    memcpy(e->scope, ts->sess_scope, sizeof(e->scope));

    pthread_mutex_lock(&cache.mu);
    if (cache.buckets == NULL) {
        cache.n_buckets = 4096;
        cache.buckets = tg_xcalloc(cache.n_buckets, sizeof(*cache.buckets));
    }
    struct entry *old = find(id, len);
    if (old != NULL)
        unlink_entry(old);
    struct entry *prev = u != NULL ? find(u->id, u->len) : NULL; /* TLS 1.3: used once */
    if (prev != NULL)
        unlink_entry(prev);
    size_t b = bucket_of(id, len);
    e->hnext = cache.buckets[b];
    cache.buckets[b] = e;
    e->older = cache.newest;
    if (cache.newest != NULL)
        cache.newest->newer = e;
    else
        cache.oldest = e;
    cache.newest = e;
    cache.count++;
    atomic_store_explicit(&cached, cache.count, memory_order_relaxed);
    atomic_fetch_add_explicit(&cached_bytes, entry_size(e), memory_order_relaxed);
    struct entry *gone = trim(cache.max, time(NULL));
    pthread_mutex_unlock(&cache.mu);
    free_list(old);
    free_list(prev);
    free_list(gone);
    return 0; /* OpenSSL keeps its reference */
}

/* SSL_CTX_sess_set_get_cb: the session a client names, if it is this listener's under the
 * current client-certificate policy and still valid. OpenSSL 3.0 checks neither the context
 * nor the lifetime of a TLS 1.3 stateful ticket itself. */
static SSL_SESSION *get_cb(SSL *ssl, const unsigned char *id, int len, int *copy)
{
    const struct tg_tls_server *ts = tg_tls__server_of(SSL_get_SSL_CTX(ssl));
    *copy = 0; /* the reference returned is OpenSSL's */
    if (ts == NULL || len <= 0 || len > SSL_MAX_SSL_SESSION_ID_LENGTH)
        return NULL;
    unsigned char der[MAX_DER];
    size_t der_len = 0;
    struct entry *gone = NULL;
    pthread_mutex_lock(&cache.mu);
    struct entry *e = find(id, (unsigned)len);
    if (e != NULL) {
        bool usable = e->expires > time(NULL) &&
                      CRYPTO_memcmp(e->scope, ts->sess_scope, sizeof(e->scope)) == 0;
        if (usable) {
            der_len = e->der_len;
            memcpy(der, e->der, der_len);
        } else {
            unlink_entry(e); /* an unusable entry cannot become usable */
            gone = e;
        }
    }
    pthread_mutex_unlock(&cache.mu);
    free_list(gone);
    bool tls13 = der_len > 0 && SSL_version(ssl) == TLS1_3_VERSION;
    if (tls13 && used_idx >= 0 && SSL_get_ex_data(ssl, used_idx) == NULL) {
        /* a TLS 1.3 session is used once: new_cb drops it when its successor is made (a TLS
         * 1.2 session id resumes until it expires) */
        struct used *u = tg_xcalloc(1, sizeof(*u));
        u->len = (unsigned)len;
        memcpy(u->id, id, (size_t)len);
        if (SSL_set_ex_data(ssl, used_idx, u) != 1)
            free(u);
    }
    const unsigned char *p = der;
    SSL_SESSION *sess = der_len > 0 ? d2i_SSL_SESSION(NULL, &p, (long)der_len) : NULL;
    OPENSSL_cleanse(der, der_len);
    return sess;
}

/* No SSL_CTX_sess_set_remove_cb: OpenSSL 3.0 removes the session of every connection freed
 * without our close_notify (ssl_clear_bad_session), which most clients that close first would
 * cause; a stateless ticket survives that, and so does an entry here. */
void tg_tls__sessions_apply(SSL_CTX *ctx)
{
    pthread_once(&used_once, used_init);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL |
                                            SSL_SESS_CACHE_NO_AUTO_CLEAR);
    SSL_CTX_sess_set_new_cb(ctx, new_cb);
    SSL_CTX_sess_set_get_cb(ctx, get_cb);
}
