/* Per-address limits on client connections (limits.max_connections_per_ip,
 * limits.handshake_rate_per_ip): process-wide tables of relaxed atomics that every worker
 * updates without a lock, and the refusals' table, counters and rate-limited log lines. */
#include "net/internal.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "core/log.h"

/* Open connections are counted exactly per address in an open-addressing table: a slot is one
 * 64-bit atomic, the address's 40-bit fingerprint (a keyed hash) and its count of 24 bits. An
 * address takes the first slot of its probe window that holds its fingerprint, else the first
 * one whose count is 0 (whoever owned it), with one compare-and-swap; a connection remembers its
 * slot, so closing it is one decrement. The table has at least 4 slots per descriptor the
 * process may open, so windows are rarely full; when one is, the connection is admitted
 * uncounted. Two workers inserting the same new address at the same instant may each take a
 * slot, splitting its count (at most one connection per worker too many, until they close).
 *
 * Handshake rates are a GCRA time stamp per slot of a smaller keyless table: an address hashes
 * to two slots and is admitted when either has a token (a count-min sketch: never under-counted;
 * an innocent address is refused for others only when both of its slots are shared with
 * addresses at their rate). The same slots rate-limit the log lines. */
#define RATE_SLOTS     (1u << 16)
#define RATE_MASK      (RATE_SLOTS - 1)
#define CONN_SLOTS_MIN (1u << 16)
#define CONN_SLOTS_MAX (1u << 22)
#define CONN_WINDOW    16
#define COUNT_BITS     24
#define COUNT_MASK     ((1u << COUNT_BITS) - 1)
/* A refused address is logged at most once per this many seconds (the line says how many
 * refusals were not logged since the previous one). */
#define LOG_EVERY_S 10

struct tg_net_peers {
    uint64_t seed[4];
    uint32_t conn_mask;
    atomic_uint_fast64_t *conns;          /* fingerprint << COUNT_BITS | open connections */
    atomic_uint_fast64_t tat[RATE_SLOTS]; /* GCRA: theoretical arrival time, us of the clock */
    /* Per reason, second of the last line << 32 | refusals since (one reason's lines do not
     * silence the other's). */
    atomic_uint_fast64_t logged_conn[RATE_SLOTS];
    atomic_uint_fast64_t logged_rate[RATE_SLOTS];
    atomic_uint_fast64_t logged_max; /* the same for limits.max_connections */
};

/* An address's place: its fingerprint and probe window start in the connection table, its two
 * slots in the rate and log tables. */
struct slots {
    uint64_t fp;
    uint32_t c0, r1, r2;
};

static const struct tg_net_refuse_info refuse_rows[TG_NET_REFUSE__COUNT] = {
    [TG_NET_REFUSE_NONE] = {"none", "not refused", NULL},
    [TG_NET_REFUSE_MAX_CONNECTIONS] = {"max_connections",
                                       "the gateway has as many client connections open as "
                                       "allowed",
                                       "limits.max_connections"},
    [TG_NET_REFUSE_PER_IP_CONNECTIONS] = {"per_ip_connection_limit",
                                          "this client address has as many connections open as "
                                          "allowed",
                                          "limits.max_connections_per_ip"},
    [TG_NET_REFUSE_PER_IP_HANDSHAKE_RATE] = {"per_ip_handshake_rate",
                                             "this client address opens TLS connections faster "
                                             "than allowed",
                                             "limits.handshake_rate_per_ip"},
};

const struct tg_net_refuse_info *tg_net_refuse_info(enum tg_net_refuse r)
{
    return &refuse_rows[(unsigned)r < TG_NET_REFUSE__COUNT ? r : TG_NET_REFUSE_NONE];
}

/* Microseconds of the monotonic clock (shared by every thread, unlike uv_now). */
static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

struct tg_net_peers *tg_net__peers_new(uint64_t max_fds)
{
    /* calloc of these sizes maps fresh zero pages: only slots in use cost memory. */
    struct tg_net_peers *p = tg_xcalloc(1, sizeof(*p));
    uint32_t n = CONN_SLOTS_MIN;
    while (n < CONN_SLOTS_MAX && n / 4 < max_fds)
        n *= 2;
    p->conn_mask = n - 1;
    p->conns = tg_xcalloc(n, sizeof(*p->conns));
    if (getrandom(p->seed, sizeof(p->seed), 0) != (ssize_t)sizeof(p->seed)) {
        uint64_t t = now_us();
        for (int i = 0; i < 4; i++)
            p->seed[i] = mix(t + (uint64_t)i * 0x9e3779b97f4a7c15ULL + (uintptr_t)p);
    }
    return p;
}

void tg_net__peers_free(struct tg_net_peers *p)
{
    if (p != NULL)
        free(p->conns);
    free(p);
}

/* Two distinct slots under mask from a 64-bit hash. */
static void two(uint64_t h, uint32_t mask, uint32_t *a, uint32_t *b)
{
    *a = (uint32_t)h & mask;
    *b = (uint32_t)(h >> 32) & mask;
    if (*b == *a)
        *b ^= 1;
}

/* Counts one more connection of the address at sl unless it has max (0 = no limit) open.
 * Returns 1 with *slot set, 0 when at the limit, -1 when its window is full (not counted). */
static int conn_take(struct tg_net_peers *p, const struct slots *sl, uint32_t max, uint32_t *slot)
{
    for (;;) {
        uint32_t reuse = UINT32_MAX;
        uint_fast64_t reuse_v = 0;
        for (uint32_t k = 0; k < CONN_WINDOW; k++) {
            uint32_t i = (sl->c0 + k) & p->conn_mask;
            uint_fast64_t v = atomic_load_explicit(&p->conns[i], memory_order_relaxed);
            if (v >> COUNT_BITS == sl->fp) {
                uint32_t n = (uint32_t)v & COUNT_MASK;
                if ((max != 0 && n >= max) || n == COUNT_MASK)
                    return 0;
                if (!atomic_compare_exchange_strong_explicit(
                        &p->conns[i], &v, v + 1, memory_order_relaxed, memory_order_relaxed))
                    goto again;
                *slot = i;
                return 1;
            }
            if ((v & COUNT_MASK) == 0 && reuse == UINT32_MAX) {
                reuse = i;
                reuse_v = v;
            }
        }
        if (reuse == UINT32_MAX)
            return -1;
        if (atomic_compare_exchange_strong_explicit(&p->conns[reuse], &reuse_v,
                                                    sl->fp << COUNT_BITS | 1, memory_order_relaxed,
                                                    memory_order_relaxed)) {
            *slot = reuse;
            return 1;
        }
    again:;
    }
}

/* The two slots of the address that limits count: an IPv4 address (also IPv4-mapped IPv6), or
 * the /64 an IPv6 address is in (what one host or subscriber gets). False for other families. */
static bool slots_of(const struct tg_net_peers *p, const struct sockaddr_storage *ss,
                     struct slots *sl)
{
    uint64_t key, seed;
    if (ss->ss_family == AF_INET) {
        key = ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr);
        seed = p->seed[0];
    } else if (ss->ss_family == AF_INET6) {
        const uint8_t *a = ((const struct sockaddr_in6 *)ss)->sin6_addr.s6_addr;
        static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        key = 0;
        if (memcmp(a, v4mapped, 12) == 0) {
            for (int i = 12; i < 16; i++)
                key = key << 8 | a[i];
            seed = p->seed[0];
        } else {
            for (int i = 0; i < 8; i++)
                key = key << 8 | a[i];
            seed = p->seed[1];
        }
    } else {
        return false;
    }
    uint64_t h = mix(mix(key ^ seed) ^ p->seed[2]);
    sl->c0 = (uint32_t)h & p->conn_mask;
    sl->fp = (h >> COUNT_BITS) | 1; /* 40 bits, never 0 */
    two(mix(h ^ p->seed[3]), RATE_MASK, &sl->r1, &sl->r2);
    return true;
}

/* GCRA (a token bucket kept as one time stamp): takes a token from slot if one is there. */
static bool gcra_take(atomic_uint_fast64_t *slot, uint64_t now, uint64_t t, uint64_t tau)
{
    uint_fast64_t tat = atomic_load_explicit(slot, memory_order_relaxed);
    for (;;) {
        uint64_t base = tat > now ? tat : now;
        if (base - now > tau)
            return false;
        if (atomic_compare_exchange_weak_explicit(slot, &tat, base + t, memory_order_relaxed,
                                                  memory_order_relaxed))
            return true;
    }
}

/* Takes a token from slot even when it has none (the address's other slot had one). */
static void gcra_charge(atomic_uint_fast64_t *slot, uint64_t now, uint64_t t)
{
    uint_fast64_t tat = atomic_load_explicit(slot, memory_order_relaxed);
    for (;;) {
        uint64_t base = tat > now ? tat : now;
        if (atomic_compare_exchange_weak_explicit(slot, &tat, base + t, memory_order_relaxed,
                                                  memory_order_relaxed))
            return;
    }
}

/* Whether a refusal is to be logged now (at most once per LOG_EVERY_S per slot); *quiet gets the
 * refusals not logged since the last line. */
static bool log_due(atomic_uint_fast64_t *slot, uint64_t now_s, uint32_t *quiet)
{
    uint_fast64_t v = atomic_load_explicit(slot, memory_order_relaxed);
    for (;;) {
        uint64_t at = v >> 32;
        bool due = at == 0 || now_s >= at + LOG_EVERY_S;
        uint_fast64_t next = due ? now_s << 32 : (v + (((uint32_t)v != UINT32_MAX) ? 1 : 0));
        if (atomic_compare_exchange_weak_explicit(slot, &v, next, memory_order_relaxed,
                                                  memory_order_relaxed)) {
            *quiet = at == 0 ? 0 : (uint32_t)v;
            return due;
        }
    }
}

static void refused(struct tg_worker *w, size_t lidx, const struct sockaddr_storage *peer,
                    enum tg_net_refuse r, atomic_uint_fast64_t *log_slot, uint32_t limit)
{
    TG_STAT_INC(&w->stats, refused[r]);
    uint32_t quiet;
    /* +1: second 0 of the clock must not read as "never logged". */
    if (!log_due(log_slot, now_us() / 1000000u + 1, &quiet))
        return;
    const struct tg_net_refuse_info *ri = tg_net_refuse_info(r);
    const struct tg_limits_conf *l = &w->snap->cfg->limits;
    char addr[64], what[96];
    tg_addr_format(peer, addr, sizeof(addr));
    if (r == TG_NET_REFUSE_PER_IP_HANDSHAKE_RATE)
        snprintf(what, sizeof(what), "more than %g per second, bursts of %" PRIu32,
                 l->handshake_rate_per_ip, l->handshake_burst_per_ip);
    else
        snprintf(what, sizeof(what), "%" PRIu32 " open", limit);
    char since[96] = "";
    if (quiet > 0)
        snprintf(since, sizeof(since), "; %" PRIu32 " more refused since the last such line",
                 quiet);
    tg_log_info(
        "connection refused: peer=%s listener=%s reason=%s: %s (%s%s; to change this, "
        "see %s); further refusals %s are logged at most once per %d s%s",
        addr, w->snap->cfg->listeners[lidx].name, ri->token, ri->sentence, what,
        peer->ss_family == AF_INET6 && r != TG_NET_REFUSE_MAX_CONNECTIONS ? ", counted per /64"
                                                                          : "",
        ri->config_key,
        r == TG_NET_REFUSE_MAX_CONNECTIONS ? "for this reason" : "of this address for this reason",
        LOG_EVERY_S, since);
}

void tg_net__refuse_max_connections(struct tg_worker *w, size_t lidx,
                                    const struct sockaddr_storage *peer)
{
    refused(w, lidx, peer, TG_NET_REFUSE_MAX_CONNECTIONS, &w->net->peers->logged_max,
            w->snap->cfg->limits.max_connections);
}

bool tg_net__peer_admit(struct tg_worker *w, size_t lidx, const struct sockaddr_storage *peer,
                        uint64_t *hold)
{
    struct tg_net_peers *p = w->net->peers;
    const struct tg_limits_conf *l = &w->snap->cfg->limits;
    struct slots sl;
    *hold = 0;
    if (!slots_of(p, peer, &sl))
        return true;
    /* Counted whatever the limit, so a reload that sets one finds the right counts. */
    uint32_t maxc = l->max_connections_per_ip, slot;
    int took = conn_take(p, &sl, maxc, &slot);
    if (took == 0) {
        refused(w, lidx, peer, TG_NET_REFUSE_PER_IP_CONNECTIONS, &p->logged_conn[sl.r1], maxc);
        return false;
    }
    if (took > 0)
        *hold = (uint64_t)slot + 1;
    if (l->handshake_rate_per_ip > 0 && w->snap->tls[lidx] != NULL) {
        uint64_t now = now_us(), t = (uint64_t)(1e6 / l->handshake_rate_per_ip);
        uint64_t tau = t * (l->handshake_burst_per_ip - 1);
        bool ok;
        if ((ok = gcra_take(&p->tat[sl.r1], now, t, tau)))
            gcra_charge(&p->tat[sl.r2], now, t);
        else if ((ok = gcra_take(&p->tat[sl.r2], now, t, tau)))
            gcra_charge(&p->tat[sl.r1], now, t);
        if (!ok) {
            tg_net__peer_release(w->net, *hold);
            *hold = 0;
            refused(w, lidx, peer, TG_NET_REFUSE_PER_IP_HANDSHAKE_RATE, &p->logged_rate[sl.r1], 0);
            return false;
        }
    }
    return true;
}

void tg_net__peer_release(struct tg_net *net, uint64_t hold)
{
    if (hold == 0)
        return;
    /* The count is above 0 while the connection is open, so the fingerprint stays. */
    atomic_fetch_sub_explicit(&net->peers->conns[hold - 1], 1, memory_order_relaxed);
}
