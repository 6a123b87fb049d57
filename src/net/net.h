/* Workers (one libuv loop and one SO_REUSEPORT listener socket per listener each), config
 * snapshots, stats. */
#ifndef TG_NET_NET_H
#define TG_NET_NET_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <uv.h>

#include "config/config.h"
#include "core/addr.h"
#include "core/err.h"
#include "tls/tls.h"

/* A config with everything built from it (SSL_CTXs). Immutable and refcounted: a connection keeps
 * the snapshot it was accepted with; a reload publishes a new one. */
struct tg_snapshot {
    atomic_uint refs;
    uint64_t generation;
    struct tg_config *cfg;
    size_t *lslot;              /* per listener: its counter slot (tg_net_listener_slot) */
    struct tg_tls_server **tls; /* per listener; NULL for plaintext listeners */
    /* Per backend, indexed like cfg->backends; NULL for plaintext and built-in backends. */
    struct tg_tls_client **backend_tls;
    bool cfg_detached; /* cfg outlives the snapshot: tg_snapshot_detach_config's caller frees it */
};

/* Builds a snapshot from cfg (TLS contexts for every listener and TLS backend). On success takes
 * ownership of cfg and returns 0 with one reference in *out; on failure leaves cfg to the caller,
 * adds the problems to err and returns -EINVAL. */
int tg_snapshot_new(struct tg_config *cfg, uint64_t generation, struct tg_snapshot **out,
                    struct tg_err *err);
struct tg_snapshot *tg_snapshot_ref(struct tg_snapshot *s);
/* Drops a reference; the last one frees the snapshot (any thread). Accepts NULL. */
void tg_snapshot_unref(struct tg_snapshot *s);
/* Hands the ownership of s's config to the caller (who holds a reference to s, and frees the
 * config once no snapshot can use it): what must outlive the snapshot (the rules the sandbox was
 * made from) no longer keeps its TLS contexts alive. */
struct tg_config *tg_snapshot_detach_config(struct tg_snapshot *s);
/* Snapshots built and not yet freed: the current one plus those older ones that something
 * (an open connection, an idle pooled backend connection) still holds. */
uint64_t tg_snapshots_live(void);

/* ---- PROXY protocol in (ppin.c) ---- */

/* Largest header accepted (v2 with TLVs); a longer one is refused. */
#define TG_PPIN_MAX 2048

/* Why a PROXY header was refused: one counter each (status page), tokens for logs. */
enum tg_ppin_fail {
    TG_PPIN_FAIL_NOT_PROXY = 1,
    TG_PPIN_FAIL_V1_SYNTAX,
    TG_PPIN_FAIL_V1_ADDRESS,
    TG_PPIN_FAIL_V1_TOO_LONG,
    TG_PPIN_FAIL_V2_VERSION,
    TG_PPIN_FAIL_V2_FAMILY,
    TG_PPIN_FAIL_V2_LENGTH,
    TG_PPIN_FAIL_V2_TLV,
    TG_PPIN_FAIL_TIMEOUT,
    TG_PPIN_FAIL_HANGUP,
    TG_PPIN_FAIL__COUNT
};

/* What a PROXY header said. */
struct tg_ppin {
    bool local; /* LOCAL (v2), UNSPEC or UNKNOWN (v1): keep the connection's own addresses */
    struct sockaddr_storage src, dst;
    socklen_t src_len, dst_len;
};

/* Parses a PROXY v1 or v2 header at the start of buf[0..len) into *out. Returns the header's
 * length (> 0) once it is complete, 0 when more bytes are needed (every byte given then belongs
 * to the header), or -enum tg_ppin_fail when it is malformed. Never reads past len. */
long tg_ppin_parse(const uint8_t *buf, size_t len, struct tg_ppin *out);
/* "v1_malformed", ... and a sentence for logs. */
const char *tg_ppin_fail_token(enum tg_ppin_fail f);
const char *tg_ppin_fail_sentence(enum tg_ppin_fail f);

/* Why a connection was closed right after accept, before any handler saw it (peerlim.c): one
 * counter each (status page, metrics), tokens for logs. */
enum tg_net_refuse {
    TG_NET_REFUSE_NONE = 0,
    TG_NET_REFUSE_MAX_CONNECTIONS,       /* limits.max_connections */
    TG_NET_REFUSE_PER_IP_CONNECTIONS,    /* limits.max_connections_per_ip */
    TG_NET_REFUSE_PER_IP_HANDSHAKE_RATE, /* limits.handshake_rate_per_ip */
    TG_NET_REFUSE__COUNT
};
struct tg_net_refuse_info {
    const char *token;      /* "per_ip_connection_limit" */
    const char *sentence;   /* for the log line */
    const char *config_key; /* what would change the outcome */
};
/* The row of r (the "none" row for values out of range). */
const struct tg_net_refuse_info *tg_net_refuse_info(enum tg_net_refuse r);

/* Rows of the proxy's backend-failure table that get their own counter. */
#define TG_NET_BACKEND_FAIL_MAX 16
/* Rows of the proxy's request-refusal table that get their own counter. */
#define TG_NET_HTTP_FAIL_MAX 24
/* Rows of the proxy's HTTP/2 defence table (connections closed with ENHANCE_YOUR_CALM). */
#define TG_NET_H2_CALM_MAX 12

/* Listeners counted apart (by name, so a reload that reorders them keeps their counts); slot
 * TG_NET_LISTENER_SLOTS takes the rest and is not reported. */
#define TG_NET_LISTENER_SLOTS 64
/* The counter slot of the listener called name (claimed on first use; any thread). */
size_t tg_net_listener_slot(const char *name);
/* The name of slot i, or NULL while unused. */
const char *tg_net_listener_slot_name(size_t i);

/* Distinct TLS suites counted per worker (OpenSSL's suite names, claimed in order). */
#define TG_NET_TLS_SUITES 32

/* Counters, written only by the owning worker (relaxed atomics), read by anyone. */
struct tg_stats {
    atomic_uint_fast64_t accepted;
    atomic_uint_fast64_t active;
    atomic_uint_fast64_t refused[TG_NET_REFUSE__COUNT]; /* closed at accept, by reason */
    atomic_uint_fast64_t closed; /* accepted and since closed: accepted = closed + active */
    atomic_uint_fast64_t handshakes;
    atomic_uint_fast64_t resumed;
    atomic_uint_fast64_t hs_fail[TG_TLS_FAIL__COUNT];
    atomic_uint_fast64_t backend_hs_fail[TG_TLS_BFAIL__COUNT];  /* TLS to backends, by reason */
    atomic_uint_fast64_t backend_fail[TG_NET_BACKEND_FAIL_MAX]; /* by the proxy's failure row */
    atomic_uint_fast64_t http_fail[TG_NET_HTTP_FAIL_MAX];       /* requests we refused, by reason */
    atomic_uint_fast64_t requests;
    atomic_uint_fast64_t responses[6]; /* by status class: [1]..[5] */
    atomic_uint_fast64_t backend_connects;
    atomic_uint_fast64_t backend_reuses;
    /* pooled backend connections closed because their backend sent bytes, an end or a reset
     * after their last response */
    atomic_uint_fast64_t backend_pool_dropped;
    atomic_uint_fast64_t backend_pool_idle; /* a gauge: idle pooled connections now */
    atomic_uint_fast64_t backend_errors;
    atomic_uint_fast64_t backend_timeouts;
    atomic_uint_fast64_t backend_tls_failures;
    atomic_uint_fast64_t websocket_upgrades;
    atomic_uint_fast64_t body_timeouts; /* request bodies cut: too slow or past their deadline */
    atomic_uint_fast64_t ppin_fail[TG_PPIN_FAIL__COUNT]; /* PROXY headers refused, by reason */
    atomic_uint_fast64_t h2_calm[TG_NET_H2_CALM_MAX];    /* HTTP/2 connections ended, by reason */
    /* TLS 1.3 early data: client handshakes by what became of it (enum tg_tls_early), requests
     * served from it (safe ones, with Early-Data: 1), requests held until the handshake
     * finished, and 425 answers to requests forwarded from it */
    atomic_uint_fast64_t early_data[TG_TLS_EARLY__COUNT];
    atomic_uint_fast64_t early_served;
    atomic_uint_fast64_t early_held;
    atomic_uint_fast64_t early_too_early;
    atomic_uint_fast64_t alog_dropped;    /* access-log lines lost to failed writes (disk full) */
    atomic_uint_fast64_t reauth_closed;   /* closed on reload: the new policy refuses the client's
                                             certificate (tls.client_auth.reauthorize_live) */
    atomic_uint_fast64_t tls_versions[4]; /* client handshakes by version: TLS 1.0 .. 1.3 */
    /* client handshakes by suite: slot i counts the suite named suite_name[i] (a static string
     * of OpenSSL's; NULL = free), slots taken in order by the owning worker only */
    _Atomic(const char *) suite_name[TG_NET_TLS_SUITES];
    atomic_uint_fast64_t suite_count[TG_NET_TLS_SUITES];
    /* per listener slot: connections accepted and open, responses by status class */
    atomic_uint_fast64_t l_accepted[TG_NET_LISTENER_SLOTS + 1];
    atomic_uint_fast64_t l_open[TG_NET_LISTENER_SLOTS + 1];
    atomic_uint_fast64_t l_responses[TG_NET_LISTENER_SLOTS + 1][6];
};

#define TG_STAT_ADD(st, field, n)                                                                  \
    atomic_store_explicit(&(st)->field,                                                            \
                          atomic_load_explicit(&(st)->field, memory_order_relaxed) + (n),          \
                          memory_order_relaxed)
#define TG_STAT_INC(st, field) TG_STAT_ADD(st, field, 1)
#define TG_STAT_DEC(st, field) TG_STAT_ADD(st, field, (uint_fast64_t)-1)
#define TG_STAT_GET(st, field) atomic_load_explicit(&(st)->field, memory_order_relaxed)

struct tg_worker;
struct tg_net;
struct tg_ppwait;
struct tg_conn_bufcache;

/* What the protocol layer (proxy) plugs into the workers. Every callback runs on the worker's
 * own thread. */
struct tg_net_handler {
    /* Before the loop runs: set up per-worker state in w->proto. */
    void (*worker_init)(struct tg_worker *w);
    /* A new client connection: fd is non-blocking and owned by the callee from here on; hold
     * (its place in the per-address counts) goes back with tg_worker_conn_done when it closes.
     * accepted_ms: the loop time it was accepted at (earlier than now when a PROXY header was
     * read first: the TLS handshake's deadline counts from the accept, one budget for both). */
    void (*on_accept)(struct tg_worker *w, size_t listener_idx, int fd,
                      const struct sockaddr_storage *peer, socklen_t peer_len, uint64_t hold,
                      uint64_t accepted_ms);
    /* Shutdown began: close idle connections now, let busy ones finish their request. The
     * handler calls tg_worker_drained() once it holds no connections. */
    void (*on_drain)(struct tg_worker *w);
    /* timeouts.shutdown passed: close everything at once (then call tg_worker_drained()). */
    void (*on_drain_timeout)(struct tg_worker *w);
    /* The worker swapped in a new snapshot (w->snap; optional): e.g. re-check open connections
     * against the new policy. */
    void (*on_snapshot)(struct tg_worker *w);
    /* After the loop ended: free w->proto. */
    void (*worker_free)(struct tg_worker *w);
};

struct tg_net_listener {
    struct tg_worker *w;
    uv_poll_t poll;
    int fd;
    size_t idx; /* index in the current snapshot's listeners */
    struct sockaddr_storage addr;
    socklen_t addr_len;
    bool active;
    uint64_t woke_ms; /* loop time of the last readable event (accept batch size) */
};

struct tg_conn;

struct tg_worker {
    struct tg_net *net;
    unsigned id;
    uv_loop_t loop;
    uv_thread_t thread;
    uv_async_t wakeup;
    uv_timer_t drain_timer;
    uv_timer_t log_timer;
    uv_timer_t accept_timer; /* resumes accepting after running out of descriptors */
    uv_timer_t ctimer;       /* fires at the earliest connection deadline (net/ctimer.c) */
    struct tg_conn **theap;  /* armed connections, a binary min-heap on their deadlines */
    uint32_t theap_len, theap_cap;
    uint32_t theap_seq; /* arming order, for equal deadlines */
    bool ctimer_ready;
    bool ctimer_closed;
    uint64_t theap_armed; /* the deadline ctimer is started for, 0 when stopped */
    uv_work_t trim_req;   /* malloc_trim after a burst of closes (net/trim.c) */
    uint32_t open_now;    /* connections accepted and not yet done, on this worker */
    uint32_t open_peak;   /* the most since the last trim */
    uint32_t trim_fell;   /* how many had closed when the last trim started */
    size_t trim_cached;   /* bytes of cached buffer blocks that trim freed */
    bool trim_busy;
    bool trim_timer_ready;
    uv_timer_t trim_timer;     /* starts the trim a second after the fall (unref'd) */
    uint64_t starved_since_ms; /* accept found no descriptor: since when (0 = it did not) */
    uint64_t starved_last_ms;  /* the last time it found none */
    _Atomic(struct tg_snapshot *) pending;            /* handed over by the main thread */
    _Atomic(struct tg_tls_tickets *) pending_tickets; /* likewise: a new ticket-key ring */
    _Atomic(struct tg_tls_staples *) pending_staples; /* likewise: new OCSP responses */
    atomic_int stop_requested;
    struct tg_snapshot *snap; /* current; new connections take a reference */
    struct tg_net_listener **listeners;
    size_t n_listeners;
    bool draining;
    bool released;
    int start_rc; /* bind result reported to the starter */
    struct tg_stats stats;
    char *alog; /* access-log buffer */
    size_t alog_len;
    bool alog_cut; /* a failed write left the file in the middle of a line of ours */
    void *proto;   /* the handler's per-worker state */
    struct tg_conn_bufcache *bufs;   /* buffer blocks kept for reuse (net/conn.c) */
    struct tg_conn_pollcache *polls; /* stopped poll handles by descriptor number (net/conn.c) */
    /* Closes to end on the next loop turn (their poll handle was stopped to be kept). */
    uv_idle_t closes_idle;
    bool closes_idle_ready;
    struct tg_conn **closing, **closing_spare;
    size_t n_closing, cap_closing, cap_closing_spare;
    struct tg_ppwait *ppwaits; /* connections waiting for their PROXY header (ppwait.c) */
};

struct tg_net {
    struct tg_worker *workers;
    unsigned n_workers;
    const struct tg_net_handler *h;
    int access_log_fd; /* -1 = off */
    uint64_t started_ms;
    atomic_uint_fast64_t generation;
    atomic_uint_fast64_t active_conns; /* for limits.max_connections */
    struct tg_net_peers *peers;        /* per-address counts (peerlim.c) */
    atomic_uint accept_starved;        /* workers whose accept found no descriptor */
    atomic_int access_log_failing;     /* an access-log write failed and none worked since */
    /* Ticket keys the workers start with (set before tg_net_start; the caller keeps its
     * reference); later rings go through tg_net_publish_tickets. */
    struct tg_tls_tickets *tickets;
    /* Likewise the OCSP staples; later sets go through tg_net_publish_staples. */
    struct tg_tls_staples *staples;
    uv_sem_t started;
    /* The effective uid the start listeners were bound with: a test bind made after run
     * switched to another user (cli/sandbox.c) skips their addresses, since SO_REUSEPORT only
     * joins sockets of the same owner. An address a published config drops leaves the list. */
    uint32_t start_euid;
    struct sockaddr_storage *start_addrs;
    size_t n_start_addrs;
};

/* The running gateway (for the status page); NULL when not running. */
extern struct tg_net *tg_net_running;

/* Checks that every listener address of cfg can be bound (with SO_REUSEPORT, so addresses already
 * served by this process pass; after a switch to another user, those bound at start are not
 * tried again); problems go to err. Returns 0 or -EADDRINUSE/-errno. */
int tg_net_check_bind(const struct tg_config *cfg, struct tg_err *err);
/* Whether the workers have served addr since start without a break: bound at start and listed by
 * every config published since (a reload that dropped it closed its sockets). Called with the
 * config state's lock held, as tg_net_publish is. */
bool tg_net_bound_since_start(const struct sockaddr_storage *addr);
/* Starts n workers on snap (each takes its own reference) and returns once every worker has bound
 * its listeners; on failure stops them all and returns -errno with a message in err. */
int tg_net_start(struct tg_net *net, struct tg_snapshot *snap, unsigned n,
                 const struct tg_net_handler *h, int access_log_fd, struct tg_err *err);
/* Hands snap to every worker (new connections use it; open ones keep theirs). Main thread. */
void tg_net_publish(struct tg_net *net, struct tg_snapshot *snap);
/* Hands a new ticket-key ring to every worker (each takes its own reference; handshakes on
 * that worker use it from its next loop turn). Main thread. */
void tg_net_publish_tickets(struct tg_net *net, struct tg_tls_tickets *t);
/* Hands a new set of OCSP staples to every worker, likewise. Any thread, while the workers run,
 * one call at a time (the caller orders them: the staple publisher, tg_tls_staples_on_change). */
void tg_net_publish_staples(struct tg_net *net, struct tg_tls_staples *set);
/* Asks every worker to drain and stop; returns at once. */
void tg_net_stop(struct tg_net *net);
/* Waits for every worker thread to end and frees them. */
void tg_net_join(struct tg_net *net);

/* TLS facts for a PROXY v2 header (strings may be NULL). */
struct tg_pp2_tls {
    const char *version; /* "TLSv1.3" */
    const char *cipher;  /* OpenSSL name */
    const char *sni;     /* sent as PP2_TYPE_AUTHORITY */
    const char *cn;      /* client certificate CN, when one was presented */
    bool verify_failed;
};
/* Builds a PROXY protocol v2 header (PROXY command, TCP over the addresses' family, TLVs for
 * tls when not NULL) into buf; its length, or 0 if it does not fit. */
size_t tg_pp2_build(uint8_t *buf, size_t cap, const struct sockaddr_storage *src,
                    const struct sockaddr_storage *dst, const struct tg_pp2_tls *tls);

/* Worker side: the handler holds no more connections; lets the loop end once draining. */
void tg_worker_drained(struct tg_worker *w);
/* A connection handed over by on_accept has been closed (keeps the connection counts right;
 * hold as on_accept gave it). */
void tg_worker_conn_done(struct tg_worker *w, uint64_t hold);
/* Appends one access-log line (must end with '\n') to the worker's buffer. */
void tg_worker_access_log(struct tg_worker *w, const char *line, size_t len);

#endif
