/* TLS 1.3 early data (0-RTT) on listeners with tls.early_data: the limit OpenSSL enforces and a
 * process-wide anti-replay register of the tickets early data was accepted on.
 *
 * Our tickets are stateless (tickets.c). OpenSSL's own anti-replay would make every TLS 1.3
 * ticket of such a context a session id in its per-context cache (used once, but lost on
 * reload, unknown to other instances sharing the key file, and locked on every handshake), so it
 * is off (SSL_OP_NO_ANTI_REPLAY) and two checks stand in for it (RFC 8446 section 8):
 * - freshness: OpenSSL accepts early data only when the ticket age the client claims is within
 *   10 s of the age the server computes, so a captured ClientHello is useless for early data
 *   after about 11 s;
 * - a register of the resumption secrets (one per ticket: the PSK the ticket carries) that early
 *   data was accepted on in the last TG_TLS_EARLY_WINDOW_S seconds, so within the freshness
 *   window a ticket carries early data once per process: a replayed ClientHello, or a client
 *   using one ticket twice, is refused early data (its handshake goes on, 1-RTT).
 * The register is a fixed table of 64-bit words updated with compare-and-swap (no lock on the
 * handshake path); when the slots a ticket hashes to are all taken by live entries, early data is
 * refused (never accepted unchecked). Across instances sharing a ticket key file each instance
 * has its own register: a replay sent to another instance within the freshness window can be
 * accepted there once (docs/config.md says so). */
#include "tls/tls.h"

#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "tls/internal.h"

#define SLOTS_LOG2 16
#define SLOTS      (1u << SLOTS_LOG2)
#define PROBE      32
#define TRIES      4

/* Each word: 48 bits of the ticket's fingerprint, 16 bits of the second it was recorded (0 =
 * empty). Zero pages of this table cost nothing until used. */
static _Atomic uint64_t reg[SLOTS];

static uint64_t now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec;
}

static bool live(uint64_t v, uint64_t now16)
{
    return v != 0 && ((now16 - (v & 0xffff)) & 0xffff) <= TG_TLS_EARLY_WINDOW_S;
}

enum tg_tls_early tg_tls__early_register(uint64_t fp, uint64_t now)
{
    uint64_t fp48 = (fp >> 16) | 1; /* never 0: a word of 0 is an empty slot */
    uint64_t now16 = now & 0xffff;
    uint64_t word = (fp48 << 16) | now16;
    size_t start = (size_t)(fp & (SLOTS - 1));
    for (int attempt = 0; attempt < TRIES; attempt++) {
        size_t free_i = SIZE_MAX;
        uint64_t free_v = 0;
        for (size_t i = 0; i < PROBE; i++) {
            uint64_t v = atomic_load(&reg[(start + i) & (SLOTS - 1)]);
            if (!live(v, now16)) {
                if (free_i == SIZE_MAX)
                    free_i = i, free_v = v;
            } else if ((v >> 16) == fp48) {
                return TG_TLS_EARLY_REPLAY;
            }
        }
        if (free_i == SIZE_MAX)
            return TG_TLS_EARLY_FULL;
        if (!atomic_compare_exchange_strong(&reg[(start + free_i) & (SLOTS - 1)], &free_v, word))
            continue; /* another handshake took that slot: look again */
        /* Two handshakes with the same ticket racing may both have found no entry: each now
         * sees the other's and both are refused (refusing is always safe). */
        for (size_t i = 0; i < PROBE; i++) {
            uint64_t v = atomic_load(&reg[(start + i) & (SLOTS - 1)]);
            if (i != free_i && live(v, now16) && (v >> 16) == fp48)
                return TG_TLS_EARLY_REPLAY;
        }
        return TG_TLS_EARLY_ACCEPTED;
    }
    return TG_TLS_EARLY_FULL;
}

/* SSL_CTX_set_allow_early_data_cb: OpenSSL already checked that the ticket resumed, allows early
 * data (this listener's max_early_data), is fresh, and that SNI and ALPN match its session. */
static int allow_cb(SSL *ssl, void *arg)
{
    (void)arg;
    SSL_SESSION *sess = SSL_get0_session(ssl);
    unsigned char psk[EVP_MAX_MD_SIZE], md[EVP_MAX_MD_SIZE];
    unsigned md_len = 0;
    size_t n = sess != NULL ? SSL_SESSION_get_master_key(sess, psk, sizeof(psk)) : 0;
    struct tg_tls__hello *h = tg_tls__hello_get_or_new(ssl);
    enum tg_tls_early r = TG_TLS_EARLY_FULL;
    if (n > 0 && EVP_Digest(psk, n, md, &md_len, EVP_sha256(), NULL) == 1 && md_len >= 8) {
        uint64_t fp = 0;
        for (int i = 0; i < 8; i++)
            fp = fp << 8 | md[i];
        r = tg_tls__early_register(fp, now_s());
    }
    OPENSSL_cleanse(psk, sizeof(psk));
    if (h != NULL)
        h->early = (uint8_t)r;
    return r == TG_TLS_EARLY_ACCEPTED;
}

void tg_tls__early_apply(SSL_CTX *ctx)
{
    /* OpenSSL's own anti-replay turns TLS 1.3 tickets into session ids kept in the server's
     * cache (one per SSL_CTX: lost on reload, unknown to other instances, and behind a lock
     * every worker takes): our register does that job for stateless tickets instead. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_ANTI_REPLAY);
    SSL_CTX_set_max_early_data(ctx, TG_TLS_EARLY_MAX);
    SSL_CTX_set_allow_early_data_cb(ctx, allow_cb, NULL);
}

enum tg_tls_early tg_tls_early_status(SSL *ssl)
{
    switch (SSL_get_early_data_status(ssl)) {
    case SSL_EARLY_DATA_ACCEPTED:
        return TG_TLS_EARLY_ACCEPTED;
    case SSL_EARLY_DATA_REJECTED: {
        const struct tg_tls__hello *h = tg_tls__hello_get(ssl);
        if (h != NULL && (h->early == TG_TLS_EARLY_REPLAY || h->early == TG_TLS_EARLY_FULL))
            return (enum tg_tls_early)h->early;
        return TG_TLS_EARLY_REJECTED;
    }
    default:
        return TG_TLS_EARLY_NONE;
    }
}

const char *tg_tls_early_token(enum tg_tls_early e)
{
    static const char *const t[] = {"none", "accepted", "rejected", "replay", "register_full"};
    return (unsigned)e < TG_ARRAY_SIZE(t) ? t[e] : "none";
}
