/* Per-address limits on client connections (limits.max_connections_per_ip,
 * limits.handshake_rate_per_ip): one process-wide table of relaxed atomics that every worker
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

/* Addresses are hashed (with a secret seed) to two slots of each table; a slot counts every
 * address that lands on it. An address is refused only when both of its slots are over the
 * limit, so it is never under-counted, and an innocent address shares the fate of a flooding one
 * only when both of its slots are shared with floods (a count-min sketch). */
#define SLOT_BITS 16
#define SLOTS     (1u << SLOT_BITS)
#define SLOT_MASK (SLOTS - 1)
/* A refused address is logged at most once per this many seconds (the line says how many
 * refusals were not logged since the previous one). */
#define LOG_EVERY_S 10

struct tg_net_peers {
    uint64_t seed[3];
    atomic_uint conns[SLOTS];           /* open connections */
    atomic_uint_fast64_t tat[SLOTS];    /* GCRA: theoretical arrival time, us of the clock */
    atomic_uint_fast64_t logged[SLOTS]; /* second of the last line << 32 | refusals since */
    atomic_uint_fast64_t logged_max;    /* the same for limits.max_connections */
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

struct tg_net_peers *tg_net__peers_new(void)
{
    /* calloc of this size maps fresh zero pages: only slots in use cost memory. */
    struct tg_net_peers *p = tg_xcalloc(1, sizeof(*p));
    if (getrandom(p->seed, sizeof(p->seed), 0) != (ssize_t)sizeof(p->seed)) {
        uint64_t t = now_us();
        for (int i = 0; i < 3; i++)
            p->seed[i] = mix(t + (uint64_t)i * 0x9e3779b97f4a7c15ULL + (uintptr_t)p);
    }
    return p;
}

void tg_net__peers_free(struct tg_net_peers *p)
{
    free(p);
}

/* The two slots of the address that limits count: an IPv4 address (also IPv4-mapped IPv6), or
 * the /64 an IPv6 address is in (what one host or subscriber gets). False for other families. */
static bool slots_of(const struct tg_net_peers *p, const struct sockaddr_storage *ss, uint32_t *s1,
                     uint32_t *s2)
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
    *s1 = (uint32_t)h & SLOT_MASK;
    *s2 = (uint32_t)(h >> 32) & SLOT_MASK;
    if (*s2 == *s1)
        *s2 ^= 1;
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
        ri->config_key, r == TG_NET_REFUSE_MAX_CONNECTIONS ? "for this reason" : "of this address",
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
    uint32_t s1, s2;
    *hold = 0;
    if (!slots_of(p, peer, &s1, &s2))
        return true;
    /* Counted whatever the limit, so a reload that sets one finds the right counts. */
    unsigned n1 = atomic_fetch_add_explicit(&p->conns[s1], 1, memory_order_relaxed) + 1;
    unsigned n2 = atomic_fetch_add_explicit(&p->conns[s2], 1, memory_order_relaxed) + 1;
    *hold = (uint64_t)1 << 32 | s1 << 16 | s2;
    uint32_t maxc = l->max_connections_per_ip;
    if (maxc != 0 && (n1 < n2 ? n1 : n2) > maxc) {
        tg_net__peer_release(w->net, *hold);
        *hold = 0;
        refused(w, lidx, peer, TG_NET_REFUSE_PER_IP_CONNECTIONS, &p->logged[s1], maxc);
        return false;
    }
    if (l->handshake_rate_per_ip > 0 && w->snap->tls[lidx] != NULL) {
        uint64_t now = now_us(), t = (uint64_t)(1e6 / l->handshake_rate_per_ip);
        uint64_t tau = t * (l->handshake_burst_per_ip - 1);
        bool ok;
        if ((ok = gcra_take(&p->tat[s1], now, t, tau)))
            gcra_charge(&p->tat[s2], now, t);
        else if ((ok = gcra_take(&p->tat[s2], now, t, tau)))
            gcra_charge(&p->tat[s1], now, t);
        if (!ok) {
            tg_net__peer_release(w->net, *hold);
            *hold = 0;
            refused(w, lidx, peer, TG_NET_REFUSE_PER_IP_HANDSHAKE_RATE, &p->logged[s1], 0);
            return false;
        }
    }
    return true;
}

void tg_net__peer_release(struct tg_net *net, uint64_t hold)
{
    if (hold == 0)
        return;
    atomic_fetch_sub_explicit(&net->peers->conns[(hold >> 16) & SLOT_MASK], 1,
                              memory_order_relaxed);
    atomic_fetch_sub_explicit(&net->peers->conns[hold & SLOT_MASK], 1, memory_order_relaxed);
}
