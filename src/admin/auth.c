/* Admin authentication: HTTP Basic against admin.users (hashes from `tlsgate secret hash`,
 * checked in libuv's thread pool since a hash takes ~100 ms), or a client certificate the admin
 * listener's client_auth admitted. Verified credentials are remembered as a keyed digest, compared
 * in constant time, so a client sending Basic on every request costs one hash, not one each.
 * Failures are limited per peer address: after FAIL_LIMIT in FAIL_WINDOW_MS, 429 until the window
 * ends. */
#include "admin/internal.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "core/log.h"
#include "tls/tls.h"

#define FAIL_LIMIT     5
#define FAIL_WINDOW_MS 60000
#define N_PEERS        256
#define N_CACHE        32

struct peer_rec {
    char ip[48];
    unsigned fails;
    uint64_t window_start;
};

static uv_once_t once = UV_ONCE_INIT;
static uv_mutex_t mu;
static struct peer_rec peers[N_PEERS];
static uint8_t cache[N_CACHE][SHA256_DIGEST_LENGTH];
static size_t n_cache, next_cache;
static uint8_t cache_key[32];
static char *dummy_hash; /* verified against for unknown users, so they take as long */

atomic_uint_fast64_t tg__admin_auth_fail[4];

static void init_once(void)
{
    uv_mutex_init(&mu);
    if (RAND_bytes(cache_key, sizeof(cache_key)) != 1)
        abort();
    if (tg_tls_password_hash("not a password", 14, &dummy_hash) != 0)
        dummy_hash = NULL;
}

static void digest(const char *user, const char *pw, size_t pwlen, const char *hash,
                   uint8_t out[SHA256_DIGEST_LENGTH])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned n = 0;
    if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
        EVP_DigestUpdate(ctx, cache_key, sizeof(cache_key)) != 1 ||
        EVP_DigestUpdate(ctx, user, strlen(user) + 1) != 1 ||
        EVP_DigestUpdate(ctx, pw, pwlen) != 1 || EVP_DigestUpdate(ctx, "\0", 1) != 1 ||
        EVP_DigestUpdate(ctx, hash, strlen(hash)) != 1 || EVP_DigestFinal_ex(ctx, out, &n) != 1)
        abort();
    EVP_MD_CTX_free(ctx);
}

static bool cache_has(const uint8_t d[SHA256_DIGEST_LENGTH])
{
    int found = 0;
    uv_mutex_lock(&mu);
    for (size_t i = 0; i < n_cache; i++)
        found |= CRYPTO_memcmp(cache[i], d, SHA256_DIGEST_LENGTH) == 0;
    uv_mutex_unlock(&mu);
    return found != 0;
}

static void cache_add(const uint8_t d[SHA256_DIGEST_LENGTH])
{
    uv_mutex_lock(&mu);
    memcpy(cache[next_cache], d, SHA256_DIGEST_LENGTH);
    next_cache = (next_cache + 1) % N_CACHE;
    if (n_cache < N_CACHE)
        n_cache++;
    uv_mutex_unlock(&mu);
}

/* The peer's record (mu held); an unknown peer takes the oldest slot. */
static struct peer_rec *peer_get(const char *ip, uint64_t now)
{
    struct peer_rec *oldest = &peers[0];
    for (size_t i = 0; i < N_PEERS; i++) {
        if (strcmp(peers[i].ip, ip) == 0) {
            if (now - peers[i].window_start >= FAIL_WINDOW_MS) {
                peers[i].fails = 0;
                peers[i].window_start = now;
            }
            return &peers[i];
        }
        if (peers[i].window_start < oldest->window_start)
            oldest = &peers[i];
    }
    memset(oldest, 0, sizeof(*oldest));
    snprintf(oldest->ip, sizeof(oldest->ip), "%s", ip);
    oldest->window_start = now;
    return oldest;
}

static bool peer_limited(const char *ip)
{
    uint64_t now = tg_now_ms();
    uv_mutex_lock(&mu);
    bool limited = peer_get(ip, now)->fails >= FAIL_LIMIT;
    uv_mutex_unlock(&mu);
    return limited;
}

static void peer_failed(const char *ip)
{
    uint64_t now = tg_now_ms();
    uv_mutex_lock(&mu);
    peer_get(ip, now)->fails++;
    uv_mutex_unlock(&mu);
}

unsigned tg__admin_retry_after(const char *ip)
{
    uint64_t now = tg_now_ms();
    uv_mutex_lock(&mu);
    struct peer_rec *p = peer_get(ip, now);
    uint64_t left = FAIL_WINDOW_MS - (now - p->window_start);
    uv_mutex_unlock(&mu);
    return (unsigned)((left + 999) / 1000);
}

static void fail(struct tg_svc_req *r, enum tg_admin_auth res, tg_admin_auth_cb done,
                 const char *why)
{
    atomic_fetch_add_explicit(&tg__admin_auth_fail[res], 1, memory_order_relaxed);
    tg_log_info("admin authentication refused: peer=%s listener=admin reason=%s", tg_svc_peer(r),
                why);
    done(r, res, NULL);
}

struct auth_work {
    uv_work_t work;
    struct tg_svc_req *r;
    tg_admin_auth_cb done;
    const char *hash; /* in r's snapshot, which r keeps alive */
    const char *user;
    char *pw;
    size_t pw_len;
    bool known;
    int rc;
};

static void verify_work(uv_work_t *req)
{
    struct auth_work *aw = req->data;
    aw->rc = aw->hash ? tg_tls_password_verify(aw->hash, aw->pw, aw->pw_len) : -EINVAL;
    if (!aw->known)
        aw->rc = -EACCES;
}

static void verify_done(uv_work_t *req, int status)
{
    struct auth_work *aw = req->data;
    (void)status;
    if (aw->rc == 0) {
        uint8_t d[SHA256_DIGEST_LENGTH];
        digest(aw->user, aw->pw, aw->pw_len, aw->hash, d);
        cache_add(d);
        aw->done(aw->r, TG_AUTH_OK, aw->user);
    } else {
        peer_failed(tg_svc_peer_ip(aw->r));
        fail(aw->r, TG_AUTH_BAD, aw->done, "bad_credentials");
    }
    OPENSSL_cleanse(aw->pw, aw->pw_len);
    free(aw->pw);
    free(aw);
}

char *tg__admin_b64_decode(const char *s, size_t *out_len)
{
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    if (n == 0 || n > 1024)
        return NULL;
    size_t padded = (n + 3) / 4 * 4;
    char *in = tg_xcalloc(1, padded + 1);
    memcpy(in, s, n);
    for (size_t i = n; i < padded; i++)
        in[i] = '=';
    unsigned char *out = tg_xcalloc(1, padded / 4 * 3 + 1);
    int len = EVP_DecodeBlock(out, (const unsigned char *)in, (int)padded);
    free(in);
    if (len < 0) {
        free(out);
        return NULL;
    }
    /* EVP_DecodeBlock counts a byte for each '=': take them off. */
    size_t eq = padded - n;
    for (size_t i = 0; i < n; i++)
        eq += s[i] == '=';
    len -= (int)eq;
    if (len < 0) {
        free(out);
        return NULL;
    }
    out[len] = '\0';
    *out_len = (size_t)len;
    return (char *)out;
}

void tg__admin_authenticate(struct tg_svc_req *r, tg_admin_auth_cb done)
{
    uv_once(&once, init_once);
    if (tg_svc_client_cert(r)) {
        done(r, TG_AUTH_OK, "client-certificate");
        return;
    }
    const char *ip = tg_svc_peer_ip(r);
    if (peer_limited(ip)) {
        fail(r, TG_AUTH_LIMITED, done, "rate_limited");
        return;
    }
    const char *h = tg_svc_header(r, "authorization");
    if (h == NULL || strncasecmp(h, "Basic ", 6) != 0) {
        atomic_fetch_add_explicit(&tg__admin_auth_fail[TG_AUTH_MISSING], 1, memory_order_relaxed);
        done(r, TG_AUTH_MISSING, NULL);
        return;
    }
    size_t len = 0;
    const char *v = h + 6;
    while (*v == ' ')
        v++;
    char *cred = tg__admin_b64_decode(v, &len);
    char *colon = cred ? memchr(cred, ':', len) : NULL;
    if (colon == NULL) {
        if (cred != NULL)
            OPENSSL_cleanse(cred, len);
        free(cred);
        peer_failed(ip);
        fail(r, TG_AUTH_BAD, done, "malformed_credentials");
        return;
    }
    *colon = '\0';
    const struct tg_admin_conf *ac = &tg_svc_snapshot(r)->cfg->admin;
    const struct tg_admin_user *u = NULL;
    for (size_t i = 0; i < ac->n_users; i++)
        if (strcmp(ac->users[i].name, cred) == 0)
            u = &ac->users[i];
    const char *pw = colon + 1;
    size_t pwlen = len - (size_t)(pw - cred);
    if (u != NULL) {
        uint8_t d[SHA256_DIGEST_LENGTH];
        digest(u->name, pw, pwlen, u->password_hash, d);
        if (cache_has(d)) {
            OPENSSL_cleanse(cred, len);
            free(cred);
            done(r, TG_AUTH_OK, u->name);
            return;
        }
    }
    struct auth_work *aw = tg_xcalloc(1, sizeof(*aw));
    aw->work.data = aw;
    aw->r = r;
    aw->done = done;
    aw->known = u != NULL;
    aw->hash = u ? u->password_hash : dummy_hash;
    aw->user = u ? u->name : "";
    aw->pw = tg_xmalloc(pwlen + 1);
    memcpy(aw->pw, pw, pwlen);
    aw->pw[pwlen] = '\0';
    aw->pw_len = pwlen;
    OPENSSL_cleanse(cred, len);
    free(cred);
    uv_queue_work(&tg_svc_worker(r)->loop, &aw->work, verify_work, verify_done);
}

void tg__admin_auth_cleanup(void)
{
    free(dummy_hash);
    dummy_hash = NULL;
}
