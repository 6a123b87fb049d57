/* Proxy internals: client connections and their protocol handlers (http1, tcp), request streams,
 * backend connections and pools, tunnels. Every connection is a struct tg_conn (net/conn.h). */
#ifndef TG_PROXY_INTERNAL_H
#define TG_PROXY_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>
#include <uv.h>

#include "core/buf.h"
#include "http/http.h"
#include "net/conn.h"
#include "net/net.h"
#include "proxy/proxy.h"

#define TG_CONTAINER(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

struct tg_bconn;
struct tg_stream;
struct tg_tunnel;
struct tg_client;
struct tg_probe;
struct tg__fetch;

/* ---- failures on the backend hop and in HTTP handling (proxy/failure.c) ----
 * One row per reason: a token for logs and counters, a sentence, the config key that would
 * change the outcome, who caused it and the status a client gets. */
enum tg_pfail {
    TG_PF_NONE = 0,
    TG_PF_CONNECT_REFUSED,
    TG_PF_CONNECT_TIMEOUT,
    TG_PF_CONNECT_ERROR,
    TG_PF_TLS,            /* backend TLS handshake: the detail names the tls reason */
    TG_PF_CLOSED_EARLY,   /* the backend closed before a complete response head */
    TG_PF_RESET,          /* read/write error on the backend connection */
    TG_PF_BAD_RESPONSE,   /* malformed response */
    TG_PF_HEAD_TOO_LARGE, /* response head over limits.max_header_bytes */
    TG_PF_RESPONSE_TIMEOUT,
    TG_PF_NO_TARGET, /* every target is out of rotation */
    TG_PF__COUNT
};

struct tg_pfail_info {
    const char *token;
    const char *sentence;
    const char *config_key; /* or NULL */
    bool backend_caused;    /* warn (backend's doing) rather than error (ours) */
    int status;             /* 502 or 504 */
};

const struct tg_pfail_info *tg__pfail_info(enum tg_pfail f);
/* The token logs and bodies name for a failure: the row's, or for TG_PF_TLS the TLS table's token
 * that starts its detail ("unknown_ca: ..."); *rest is the detail after it. */
const char *tg__pfail_token(enum tg_pfail f, const char *detail, char *buf, size_t n,
                            const char **rest);

/* Requests refused by us, one row per reason (proxy/failure.c): a token for logs and counters,
 * the sentence our answer's body carries, the config key that would change it, the status. */
enum tg_hfail {
    TG_HF_NONE = 0,
    TG_HF_MALFORMED,
    TG_HF_HEAD_TOO_LARGE,
    TG_HF_FORWARD_TOO_LARGE,
    TG_HF_HEADERS_TIMEOUT,
    TG_HF_BODY_TIMEOUT,
    TG_HF_VERSION,
    TG_HF_CODING,
    TG_HF_TE_HTTP10,
    TG_HF_CONNECT,
    TG_HF_HOST_REPEATED,
    TG_HF_TARGET_FORM,
    TG_HF_USERINFO,
    TG_HF_HOST_MISSING,
    TG_HF_HOST_INVALID,
    TG_HF_TARGET_MALFORMED,
    TG_HF_STAR,
    TG_HF_UNDERSCORE,
    TG_HF_NO_ROUTE,
    TG_HF_CERT_REQUIRED,
    TG_HF__COUNT
};

struct tg_hfail_info {
    const char *token;
    const char *sentence;
    const char *config_key; /* or NULL */
    int status;
};

const struct tg_hfail_info *tg__hfail_info(enum tg_hfail f);

/* ---- client connections ---- */

enum tg_client_phase {
    TG_CP_HANDSHAKE = 0, /* TLS handshake (first bytes sniffed) */
    TG_CP_IDLE,          /* http1: between requests */
    TG_CP_REQUEST,       /* http1: a stream is in flight */
    TG_CP_CONNECTING,    /* tcp: waiting for the backend */
    TG_CP_TUNNEL,        /* tcp listener, or a WebSocket after 101: bytes both ways */
};

/* What a client's timer currently enforces. */
enum tg_ctimer {
    TG_CT_NONE,
    TG_CT_HANDSHAKE,
    TG_CT_IDLE,
    TG_CT_HEADERS,
    TG_CT_PEER, /* timeouts.idle while the client must take our bytes */
    TG_CT_BODY, /* a request body is read: timeouts.idle, request_body, limits.min_body_rate */
};

/* The protocol spoken on a listener's client connections (chosen per listener mode): the
 * engine's callbacks for the client connection, and what draining means for it. */
struct tg_proto {
    const char *name;
    const struct tg_conn_handler *conn;
    /* Draining: close now if idle, else finish what is in flight. */
    void (*on_drain)(struct tg_client *c);
};

extern const struct tg_proto tg__proto_http1;
extern const struct tg_proto tg__proto_tcp;

/* A client connection. Freed in its conn's on_closed. */
struct tg_client {
    struct tg_conn conn;
    struct tg_snapshot *snap;
    const struct tg_listener_conf *lc;
    size_t lidx;
    const struct tg_proto *proto;
    struct tg_client *prev, *next; /* worker's list, for drain */
    enum tg_client_phase phase;
    uint8_t timer_kind;
    bool close_after; /* close once the response in flight is out */
    bool in_parser;   /* inside tg_h1_execute: no flushing or re-entry */
    uint64_t accepted_ms;
    uint64_t deadline_ms;
    char peer[48];
    struct tg_stream *st;     /* http1: the request in flight, NULL while idle */
    struct tg_tunnel *tun;    /* tunnel phase */
    struct tg_bconn *pending; /* tcp: the backend connection being opened */
    /* The verified client certificate as header values (tls.client_auth.forward), computed once
     * after the handshake; NULL without a certificate or when not forwarded. */
    bool has_cert;                /* the client presented a certificate that was verified */
    struct tg__fetch *fetch_wait; /* the revocation fetch its handshake waits for, or NULL */
    uint64_t fetch_wait_since_ms; /* when that wait began */
    char *xfcc;                   /* X-Forwarded-Client-Cert */
    char *client_cert;            /* RFC 9440 Client-Cert */
    char *client_cert_chain;      /* RFC 9440 Client-Cert-Chain (of the verified chain); NULL
                                   * without intermediates, or once left out for size */
};

static inline struct tg_client *tg__client_of(struct tg_conn *conn)
{
    return TG_CONTAINER(conn, struct tg_client, conn);
}

static inline const struct tg_config *tg__cfg(const struct tg_client *c)
{
    return c->snap->cfg;
}

/* Capacity of c->conn.in: a whole request head must fit. */
static inline size_t tg__client_in_cap(const struct tg_client *c)
{
    return (size_t)c->snap->cfg->limits.max_header_bytes + 1024;
}

/* ---- request streams ---- */

enum tg_req_phase {
    TG_REQ_HEAD = 0, /* reading the head (some bytes may have arrived) */
    TG_REQ_BODY,     /* head parsed; the body is read and forwarded (or dropped) */
    TG_REQ_DONE,     /* the whole request was read */
};

enum tg_resp_phase {
    TG_RESP_WAIT = 0, /* nothing sent to the client yet */
    TG_RESP_BODY,     /* head queued, body streaming */
    TG_RESP_DONE,     /* the whole response is queued */
};

enum tg_stream_kind {
    TG_SK_PROXY = 0, /* forwarded to a backend */
    TG_SK_LOCAL,     /* answered by us (errors, status page) */
};

/* One request/response exchange, separate from the connections carrying it. Its heads are data
 * (struct tg_http_head) serialised by the HTTP/1 writer. Recycled per worker. */
struct tg_stream {
    struct tg_client *c;
    struct tg_bconn *bc;
    struct tg_stream *next_free;
    struct tg_h1_msg msg;     /* the client's request, as parsed (spans in c->conn.in) */
    struct tg_http_head req;  /* the request head forwarded to the backend */
    struct tg_http_head resp; /* the response head forwarded to the client */
    enum tg_req_phase req_phase;
    enum tg_resp_phase resp_phase;
    enum tg_stream_kind kind;
    /* Properties of this exchange (not states). */
    bool head_only;    /* HEAD: the response has no body */
    bool http10;       /* the client speaks HTTP/1.0 */
    bool keepalive;    /* the client allows another request on the connection */
    bool req_chunked;  /* the request body is re-chunked for the backend */
    bool has_body;     /* the request has a body */
    bool discard_body; /* the request body is read and dropped */
    bool resp_chunked; /* the response body is re-chunked for the client */
    bool retried;      /* already retried once on a fresh backend connection */
    bool upgrade;      /* the client asked for a WebSocket upgrade */
    int status;
    const struct tg_backend_conf *backend;
    size_t target_idx;
    unsigned targets_tried;
    size_t req_head_len; /* bytes of the forwarded head in to_backend */
    struct tg_buf to_backend;
    uint64_t start_ms;
    uint64_t bytes_out; /* the client connection's bytes_written when the stream began */
    /* The body clock (limits.min_body_rate, timeouts.request_body): started at the end of the
     * head, stopped while we hold body bytes the backend has no room for yet. */
    bool body_clock;
    bool body_holding;
    uint64_t body_bytes;
    uint64_t body_start_ms;
    uint64_t body_held_ms;
    uint64_t body_hold_since_ms;
    char xff[64]; /* values of the fields we add */
    char method[16];
    char path[256];
    char host[128];
    char ws_accept[TG_WS_ACCEPT_LEN + 1]; /* what a 101 must carry for the client's key, or "" */
};

/* ---- backend connections ---- */

enum tg_bstate {
    TG_B_OPENING = 0, /* connecting / TLS handshake */
    TG_B_ACTIVE,      /* serving a stream, or carrying a tunnel */
    TG_B_IDLE,        /* in the worker's pool */
};

/* Who a backend connection is opened for (a stream or a tcp client). */
struct tg_bconn_user {
    /* Open (connected, handshaken): b is the user's now. */
    void (*on_open)(struct tg_bconn *b, void *arg);
    /* Every target failed (or none is in rotation): reason and status for the client. */
    void (*on_fail)(void *arg, enum tg_pfail f, const char *detail);
};

struct tg_bconn {
    struct tg_conn conn;
    struct tg_snapshot *snap;
    const struct tg_backend_conf *backend;
    size_t backend_idx;
    size_t target_idx;
    struct tg_bconn *prev, *next; /* pool list while idle */
    enum tg_bstate state;
    uint8_t timer_kind;
    bool reused;
    bool got_bytes;
    bool reusable;
    bool resp_ready;
    bool upgraded;         /* answered 101 to a WebSocket request: becomes a tunnel */
    bool counted;          /* counted in its target's connections in use */
    struct tg_h1_msg resp; /* response parser (spans in conn.in) */
    struct tg_stream *st;  /* http: the stream served */
    const struct tg_bconn_user *user;
    void *user_arg;
    struct tg_bconn **slot;   /* the user's pointer to its connection while opening */
    struct tg_client *client; /* whose request it is (for logs) */
    unsigned tries;           /* targets tried for this user */
    char target[64];
};

static inline struct tg_bconn *tg__bconn_of(struct tg_conn *conn)
{
    return TG_CONTAINER(conn, struct tg_bconn, conn);
}

/* ---- tunnels ---- */

/* Two open connections moving bytes both ways: each one's input is the other's output (no
 * copy), half-close is passed on, the fixed buffers give back-pressure, timeouts.idle ends a
 * silent tunnel. */
struct tg_tunnel {
    struct tg_client *c;
    struct tg_bconn *b;
    const struct tg_conn *cconn; /* the client's connection */
    uint64_t idle_ms;
    uint64_t bytes_in, bytes_out; /* client->backend, backend->client */
    int closed;                   /* conns whose on_closed ran */
};

/* ---- per-worker proxy state ---- */

struct tg_proxy_worker {
    struct tg_client *clients; /* every open client connection */
    size_t n_clients;
    struct tg_stream *free_streams; /* recycled streams */
    size_t n_free_streams;
    struct tg_bconn *idle; /* idle pooled backend connections, most recent first */
    size_t n_idle;
    size_t *rr; /* round-robin position per backend index */
    size_t n_rr;
    /* targets.c: per-target state, laid out for the current snapshot (tsnap) */
    struct tg_target_state *tstates;
    size_t n_tstates;
    size_t *toffset; /* first state of each backend */
    uint64_t *next_check_ms;
    struct tg_snapshot *tsnap; /* the snapshot the states are laid out for (a reference) */
    uv_timer_t health_timer;
    struct tg_probe *probes;   /* health probes in flight */
    struct tg__fetch *fetches; /* mtls.c: revocation fetches handshakes wait for */
};

static inline struct tg_proxy_worker *tg_pw(struct tg_worker *w)
{
    return w->proto;
}

/* client.c: shared by the protocols' connection handlers */
void tg__client_opened(struct tg_client *c);
void tg__client_handshake_timeout(struct tg_client *c);
void tg__client_on_fail(struct tg_conn *conn, enum tg_conn_fail why, int err);
void tg__client_on_closed(struct tg_conn *conn);
void tg__client_close(struct tg_client *c);
void tg__client_abort(struct tg_client *c, const char *why);
void tg__client_flush(struct tg_client *c);
void tg__client_update(struct tg_client *c);
size_t tg__client_out_room(struct tg_client *c);

/* http1.c */
void tg__http1_process(struct tg_client *c);
void tg__http1_request_space(struct tg_client *c);
void tg__stream_release(struct tg_client *c);
void tg__stream_cache_free(struct tg_worker *w);

/* respond.c */
void tg__client_local_response(struct tg_client *c, int status, const char *body);
/* Answers the request with the row's status and sentence, and counts it (the caller logs). */
void tg__client_refuse(struct tg_client *c, enum tg_hfail f);
void tg__client_log_access(struct tg_client *c);
void tg__status_respond_done(struct tg_client *c, int status, const char *ctype, char *body,
                             size_t blen);
void tg__client_backend_failed(struct tg_client *c, enum tg_pfail f, const char *detail);
const char *tg__reason_phrase(int status);

/* backend.c */
/* Opens (or takes from the pool, when pooled is true) a connection to one of be's targets and
 * keeps *slot pointing at the attempt in progress (failover replaces it). user->on_open runs once
 * one is open (at once for a pooled one), user->on_fail when every target failed (*slot NULL). */
struct tg_bconn *tg__backend_open(struct tg_client *c, const struct tg_backend_conf *be,
                                  bool pooled, const struct tg_bconn_user *user, void *arg,
                                  struct tg_bconn **slot);
/* Starts forwarding the stream's request on b (http). */
void tg__backend_serve(struct tg_bconn *b, struct tg_stream *st);
void tg__backend_flush(struct tg_bconn *b);
void tg__backend_resume_read(struct tg_bconn *b);
/* Detaches b from its stream: back to the pool if reusable, else closed. */
void tg__backend_release(struct tg_bconn *b, bool reusable);
void tg__backend_close(struct tg_bconn *b);
void tg__backend_close_idle(struct tg_worker *w);
/* The backend connection's teardown (its conn's on_closed). */
void tg__backend_on_closed(struct tg_conn *conn);
void tg__backend_log_failure(struct tg_client *c, const struct tg_backend_conf *be,
                             const char *target, enum tg_pfail f, const char *detail);

void tg__stream_start(struct tg_stream *st);

/* targets.c */
bool tg__target_usable(struct tg_worker *w, const struct tg_snapshot *snap, size_t bi, size_t ti);
uint64_t tg__target_load(const struct tg_snapshot *snap, struct tg_worker *w, size_t bi, size_t ti);
void tg__target_failed(struct tg_worker *w, const struct tg_snapshot *snap, size_t bi, size_t ti);
void tg__target_ok(struct tg_worker *w, const struct tg_snapshot *snap, size_t bi, size_t ti);
void tg__target_conn_start(struct tg_bconn *b);
void tg__target_conn_done(struct tg_bconn *b);
/* True the first time for a target: its backend never asked for our client certificate. */
bool tg__target_note_unrequested(struct tg_worker *w, const struct tg_snapshot *snap, size_t bi,
                                 size_t ti);
SSL_SESSION *tg__target_session(struct tg_worker *w, const struct tg_snapshot *snap, size_t bi,
                                size_t ti);
void tg__targets_init(struct tg_worker *w);
void tg__targets_stop(struct tg_worker *w);
void tg__targets_free(struct tg_worker *w);
extern const struct tg_conn_handler tg__probe_handler;

/* tunnel.c */
/* Joins c and b (both open) into a tunnel; bytes already in either input go on at once. */
void tg__tunnel_start(struct tg_client *c, struct tg_bconn *b);

/* mtls.c */
/* Installs the revocation-fetch hook (once per process). */
void tg__mtls_init(void);
/* The handshake timer fired: if the handshake waits for a fetch, it stops waiting (logged) and
 * goes on with the rest of timeouts.handshake; true then, false for a real timeout. */
bool tg__mtls_wait_expired(struct tg_client *c);
/* A client connection is closing: stop waiting for its fetch and end its paused handshake. */
void tg__mtls_client_closing(struct tg_client *c);
/* A new snapshot arrived: close connections whose client certificate it refuses. */
void tg__mtls_on_snapshot(struct tg_worker *w);

/* status.c */
void tg__status_respond(struct tg_client *c);

#endif
