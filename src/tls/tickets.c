/* Session ticket keys: an immutable, refcounted ring (the newest key encrypts, every key
 * decrypts), read from session_tickets.key_file or made in memory and rotated, and the ticket
 * callback every listener context uses. Each worker thread holds the ring it was last handed
 * (thread-local), so the handshake path takes no lock and never sees a ring being freed. */
#include "tls/tls.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "core/core.h"
#include "tls/internal.h"

struct tg_tls_tickets {
    atomic_uint refs;
    size_t n;
    struct tg_tls_ticket_key keys[]; /* [0] is the newest */
};

static _Thread_local struct tg_tls_tickets *thread_ring;

static EVP_CIPHER *aes;
static pthread_once_t aes_once = PTHREAD_ONCE_INIT;

static void aes_init(void)
{
    aes = EVP_CIPHER_fetch(NULL, "AES-256-CBC", NULL);
}

static struct tg_tls_tickets *ring_new(size_t n)
{
    struct tg_tls_tickets *t = tg_xcalloc(1, sizeof(*t) + n * sizeof(t->keys[0]));
    atomic_init(&t->refs, 1);
    t->n = n;
    return t;
}

struct tg_tls_tickets *tg_tls_tickets_ref(struct tg_tls_tickets *t)
{
    if (t != NULL)
        atomic_fetch_add(&t->refs, 1);
    return t;
}

void tg_tls_tickets_unref(struct tg_tls_tickets *t)
{
    if (t == NULL || atomic_fetch_sub(&t->refs, 1) != 1)
        return;
    OPENSSL_cleanse(t->keys, t->n * sizeof(t->keys[0]));
    free(t);
}

size_t tg_tls_tickets_count(const struct tg_tls_tickets *t)
{
    return t == NULL ? 0 : t->n;
}

const struct tg_tls_ticket_key *tg_tls_tickets_key(const struct tg_tls_tickets *t, size_t i)
{
    return t == NULL || i >= t->n ? NULL : &t->keys[i];
}

int tg_tls_tickets_load(const char *file, struct tg_tls_tickets **out, char *why, size_t why_len)
{
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        snprintf(why, why_len, "cannot read \"%s\": %s", file, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -EINVAL;
    }
    size_t size = (size_t)st.st_size;
    if (!S_ISREG(st.st_mode) || size == 0 || size % TG_TLS_TICKET_KEY_LEN != 0 ||
        size / TG_TLS_TICKET_KEY_LEN > TG_TLS_TICKET_KEYS_MAX) {
        snprintf(why, why_len,
                 "\"%s\" holds %zu bytes: a key file is 1 to %d keys of %d bytes each (16-byte "
                 "name, 32-byte HMAC-SHA256 key, 32-byte AES-256 key; newest first)",
                 file, size, TG_TLS_TICKET_KEYS_MAX, TG_TLS_TICKET_KEY_LEN);
        close(fd);
        return -EINVAL;
    }
    struct tg_tls_tickets *t = ring_new(size / TG_TLS_TICKET_KEY_LEN);
    unsigned char buf[TG_TLS_TICKET_KEY_LEN];
    int rc = 0;
    for (size_t i = 0; i < t->n && rc == 0; i++) {
        size_t got = 0;
        while (got < sizeof(buf)) {
            ssize_t r = read(fd, buf + got, sizeof(buf) - got);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0) {
                snprintf(why, why_len, "cannot read \"%s\": %s", file,
                         r < 0 ? strerror(errno) : "it shrank while being read");
                rc = -EINVAL;
                break;
            }
            got += (size_t)r;
        }
        memcpy(t->keys[i].name, buf, 16);
        memcpy(t->keys[i].hmac, buf + 16, 32);
        memcpy(t->keys[i].aes, buf + 48, 32);
    }
    OPENSSL_cleanse(buf, sizeof(buf));
    close(fd);
    for (size_t i = 0; rc == 0 && i < t->n; i++)
        for (size_t j = 0; j < i; j++)
            if (memcmp(t->keys[i].name, t->keys[j].name, 16) == 0) {
                snprintf(why, why_len, "\"%s\": keys %zu and %zu have the same name", file, j + 1,
                         i + 1);
                rc = -EINVAL;
                break;
            }
    if (rc != 0) {
        tg_tls_tickets_unref(t);
        return rc;
    }
    *out = t;
    return 0;
}

struct tg_tls_tickets *tg_tls_tickets_from_keys(const unsigned char *keys, size_t n)
{
    if (n == 0 || n > TG_TLS_TICKET_KEYS_MAX)
        return NULL;
    struct tg_tls_tickets *t = ring_new(n);
    for (size_t i = 0; i < n; i++) {
        const unsigned char *k = keys + i * TG_TLS_TICKET_KEY_LEN;
        memcpy(t->keys[i].name, k, 16);
        memcpy(t->keys[i].hmac, k + 16, 32);
        memcpy(t->keys[i].aes, k + 48, 32);
    }
    return t;
}

struct tg_tls_tickets *tg_tls_tickets_rotate(const struct tg_tls_tickets *prev, size_t keep)
{
    size_t old = prev == NULL ? 0 : TG_MIN(prev->n, keep > 0 ? keep - 1 : 0);
    struct tg_tls_tickets *t = ring_new(old + 1);
    if (RAND_bytes((unsigned char *)&t->keys[0], sizeof(t->keys[0])) != 1) {
        fputs("tlsgate: cannot make a session ticket key: the random generator failed\n", stderr);
        abort();
    }
    for (size_t i = 0; i < old; i++)
        t->keys[i + 1] = prev->keys[i];
    return t;
}

void tg_tls_tickets_use(struct tg_tls_tickets *t)
{
    struct tg_tls_tickets *old = thread_ring;
    thread_ring = tg_tls_tickets_ref(t);
    tg_tls_tickets_unref(old);
}

/* Ticket IVs come from the DRBG IV_BATCH at a time per thread: every RAND_bytes call costs
 * OpenSSL's fork check (a getpid system call) and about 6.6k instructions. An IV stays secret
 * until the ticket carrying it goes out, so it is as unpredictable as one drawn at that moment;
 * each is wiped from the pool as it is taken. (The fork check guards a child from repeating its
 * parent's random bytes: tlsgate does not fork once running.) */
#define IV_BATCH 64
#define IV_MAX   16
static _Thread_local unsigned char iv_pool[IV_BATCH * IV_MAX];
static _Thread_local unsigned iv_left;

static int next_iv(unsigned char *iv, int len)
{
    if (len <= 0 || len > IV_MAX)
        return RAND_bytes(iv, len);
    if (iv_left == 0) {
        if (RAND_bytes(iv_pool, sizeof(iv_pool)) != 1)
            return 0;
        iv_left = IV_BATCH;
    }
    unsigned char *p = iv_pool + (size_t)--iv_left * IV_MAX;
    memcpy(iv, p, (size_t)len);
    OPENSSL_cleanse(p, IV_MAX);
    return 1;
}

/* SSL_CTX_set_tlsext_ticket_key_evp_cb: encrypt with the newest key; decrypt with the key the
 * ticket names, asking for a new ticket under TLS 1.3 and when the key is not the newest (1 = use,
 * 2 = use and renew, 0 = unknown key: full handshake, or no ticket when encrypting). */
static int ticket_cb(SSL *ssl, unsigned char *name, unsigned char *iv, EVP_CIPHER_CTX *ectx,
                     EVP_MAC_CTX *hctx, int enc)
{
    const struct tg_tls_tickets *t = thread_ring;
    pthread_once(&aes_once, aes_init);
    if (t == NULL || t->n == 0 || aes == NULL)
        return 0;
    const struct tg_tls_ticket_key *k = NULL;
    int rc = 1;
    if (enc) {
        k = &t->keys[0];
        if (next_iv(iv, EVP_CIPHER_get_iv_length(aes)) != 1)
            return -1;
        memcpy(name, k->name, 16);
    } else {
        /* TLS 1.3 tickets are single-use for clients (RFC 8446 C.4: browsers and OpenSSL use
         * each once), so a resumption always gets a new ticket (renew), or every other
         * connection would be a full handshake; a TLS 1.2 ticket is renewed only when its key
         * is no longer the newest. */
        bool tls13 = SSL_version(ssl) == TLS1_3_VERSION;
        for (size_t i = 0; i < t->n && k == NULL; i++)
            if (CRYPTO_memcmp(name, t->keys[i].name, 16) == 0) {
                k = &t->keys[i];
                rc = i == 0 && !tls13 ? 1 : 2;
            }
        if (k == NULL)
            return 0;
    }
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, (void *)k->hmac, sizeof(k->hmac)),
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    if (EVP_MAC_CTX_set_params(hctx, params) != 1 ||
        EVP_CipherInit_ex(ectx, aes, NULL, k->aes, iv, enc) != 1)
        return -1;
    return rc;
}

void tg_tls__tickets_apply(SSL_CTX *ctx)
{
    SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_cb);
}
