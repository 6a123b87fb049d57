/* Proxy internals: client connections and their protocol handlers (http1, tcp), request streams,
 * backend connections and pools, tunnels. Every connection is a struct tg_conn (net/conn.h). */
#ifndef TG_PROXY_INTERNAL_H
#define TG_PROXY_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>
#include <uv.h>

#include "core/addr.h"
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
struct tg_h2_session;
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
    TG_PF_TLS_TIMEOUT,    /* the backend accepted TCP but did not finish the TLS handshake */
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
/* Rows counted under the TLS table's tokens (backend_hs_fail), not under their own. */
static inline bool tg__pfail_is_tls(int f)
{
    return f == TG_PF_TLS || f == TG_PF_TLS_TIMEOUT;
}

/* Requests refused by us (enum tg_hfail, http/http.h), one row per reason (proxy/failure.c): a
 * token for logs and counters, the sentence our answer's body carries, the config key that would
 * change it, the status. */
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

/* What a client's timer currently enforces: a connection deadline, or the earliest deadline of
 * its streams (TG_CT_STREAM; the kinds below it are the streams' own). */
enum tg_ctimer {
    TG_CT_NONE,
    TG_CT_HANDSHAKE,
    TG_CT_IDLE,
    TG_CT_STREAM,
    /* stream deadlines (struct tg_stream.deadline_kind) */
    TG_CT_HEADERS,
    TG_CT_PEER, /* timeouts.idle while the client must take our bytes */
    TG_CT_BODY, /* a request body is read: timeouts.idle, request_body, limits.min_body_rate */
};

struct tg_stream_handler;

/* The protocol spoken on a listener's client connections (chosen per listener mode): the
 * engine's callbacks for the client connection, and what draining and closing mean for it. */
struct tg_proto {
    const char *name;
    const struct tg_conn_handler *conn;
    /* Draining: close now if idle, else finish what is in flight. */
    void (*on_drain)(struct tg_client *c);
    /* The connection is closing: end what it carries (streams, a backend being opened). */
    void (*on_close)(struct tg_client *c);
    /* The connection is gone (its on_closed): free what the protocol kept. */
    void (*on_free)(struct tg_client *c);
};

extern const struct tg_proto tg__proto_http1;
extern const struct tg_proto tg__proto_h2;
extern const struct tg_proto tg__proto_tcp;

/* A client certificate as header values, each NULL when not forwarded (the chain also without
 * intermediates, or once left out for size). */
struct tg_cert_fields {
    char *xfcc;  /* X-Forwarded-Client-Cert */
    char *cert;  /* Client-Cert (RFC 9440) */
    char *chain; /* Client-Cert-Chain */
};

/* What the code serving a stream may know of the client connection it came on: filled at accept
 * (peer, listener, snapshot) and after the handshake (identity; the TLS facts are its SSL's); it
 * lives as long as the connection. Only client.c writes it; backends, handlers and logs read it,
 * and never call into the connection (they read its SSL's facts and its worker). */
struct tg_client_info {
    /* The client's connection: its worker (conn->w) and, on TLS, its SSL (conn->ssl, NULL once
     * freed), which gives the version, suite, SNI and ALPN when they are asked for (issue 16 d:
     * they were 36 bytes kept per connection). */
    const struct tg_conn *conn;
    struct tg_snapshot *snap;
    const struct tg_listener_conf *lc;
    struct tg_addr_packed peer; /* formatted when used: TG__PEER */
    bool tls;
    bool has_cert; /* the client presented a certificate that was verified */
    /* The connection opened on TLS 1.3 early data and its handshake has not finished yet: what
     * it carries now may be a replay (client.c clears it when the handshake finishes). */
    bool early;
    /* The peer is in tls.client_auth.from_header.trusted_from: its requests' client
     * certificate comes from that header field (forward.c), not from the handshake. */
    bool header_trusted;
    /* The verified client certificate as header values (tls.client_auth.forward), or NULL: set
     * (owned by the connection) when its handshake verified a certificate that an HTTP listener
     * forwards; a stream's from_header identity points to the stream's own (issue 16 d: one
     * pointer per connection, not three). */
    struct tg_cert_fields *fwd;
};

/* A client's address as its logs write it ("1.2.3.4:5", "[::1]:5"), formatted from its
 * tg_client_info's binary copy into a buffer that lives until the end of the enclosing block (only
 * when the line is written: tg_log_debug and tg_log_info evaluate their arguments only then). */
#define TG__PEER(info) tg_addr_packed_str(&(info)->peer, (char[TG_ADDR_STRLEN]){0})

/* A client connection. Freed in its conn's on_closed. */
struct tg_client {
    struct tg_conn conn; /* its snapshot and listener are info.snap and info.lc */
    const struct tg_proto *proto;
    struct tg_client *prev, *next; /* worker's list, for drain */
    uint8_t phase; /* enum tg_client_phase (its listener's index is tg__client_lidx) */
    uint8_t timer_kind;
    bool close_after; /* close once the response in flight is out */
    bool in_parser;   /* inside tg_h1_execute: no flushing or re-entry */
    bool h2c_maybe;   /* http2.cleartext, plaintext: the first bytes may be the HTTP/2 preface */
    bool early_noted; /* what became of its TLS early data was counted (and logged) */
    bool has_cert;    /* the client presented a certificate that was verified */
    /* Its handshake waits for a revocation fetch: it is among the waiters of one of its worker's
     * fetches (client.c finds where; issue 16 d: 16 bytes fewer than a pointer and a time). */
    bool fetch_waiting;
    /* The loop time it was accepted at, its low 32 bits (tg__client_accepted_ms: the
     * handshake's deadlines, exact for a handshake shorter than 49 days). */
    uint32_t accepted_lo;
    uint32_t peer_hold; /* its place in the per-address counts (tg_worker_conn_done: a slot
                         * number + 1, far below 2^32) */
    struct tg_client_info info;
    union {                       /* one protocol's, never both (issue 16 d: 8 bytes) */
        struct tg_stream *st;     /* http1 (h1.c, h1timer.c): the request in flight, or NULL */
        struct tg_bconn *pending; /* tcp (tcp.c): the backend connection being opened */
    };
    struct tg_h2_session *h2; /* h2: the session, once ALPN chose it */
    struct tg_tunnel *tun;    /* tunnel phase */
    /* The verified client certificate as header values (tls.client_auth.forward) are in
     * info.fwd (computed once after the handshake, owned here). */
};

static inline struct tg_client *tg__client_of(struct tg_conn *conn)
{
    return TG_CONTAINER(conn, struct tg_client, conn);
}

/* Its listener's index in its snapshot's config. */
static inline size_t tg__client_lidx(const struct tg_client *c)
{
    return (size_t)(c->info.lc - c->info.snap->cfg->listeners);
}

/* When c was accepted (loop time), from the low 32 bits kept and now. */
static inline uint64_t tg__client_accepted_ms(const struct tg_client *c, uint64_t now)
{
    return now - (uint32_t)((uint32_t)now - c->accepted_lo);
}

static inline const struct tg_config *tg__cfg(const struct tg_client *c)
{
    return c->info.snap->cfg;
}

/* Capacity of a client's input: a whole request head must fit. */
static inline size_t tg__in_cap(const struct tg_snapshot *snap)
{
    return (size_t)snap->cfg->limits.max_header_bytes + 1024;
}

static inline size_t tg__client_in_cap(const struct tg_client *c)
{
    return tg__in_cap(c->info.snap);
}

/* One revocation fetch a worker waits for, and the client connections whose handshakes wait
 * (mtls.c runs it; client.c drops a closing client from it). */
struct tg__waiter {
    struct tg_client *c; /* NULL once it stopped waiting (or closed) */
    uint64_t since_ms;   /* when it began to wait */
};
struct tg__fetch {
    uv_work_t work;
    struct tg_worker *w;
    struct tg_tls_fetch *f;
    struct tg__waiter *waiters;
    size_t n_waiters;
    bool done; /* its waiters are being resumed: no one joins it any more */
    struct tg__fetch *next;
};

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

/* What the protocol session carrying a stream offers whoever produces its response (the
 * proxy's backend side, the status page). Implemented by the HTTP/1 session (h1.c); an HTTP/2
 * session implements the same table. Called through stream.c, which keeps the phases. */
struct tg_stream_out_ops {
    const char *proto; /* for the access log: "HTTP/1.1", "HTTP/1.0", "HTTP/2" */
    /* Queues an interim (1xx) or the final head; end: no body follows. The session chooses the
     * framing of a body of unknown length (h->body TG_BODY_CHUNKED). False: it does not fit. */
    bool (*head)(struct tg_stream *st, struct tg_http_head *h, bool end);
    /* Response body bytes the session takes now (0: wait for the handler's on_room). */
    size_t (*room)(struct tg_stream *st);
    /* Queues len <= room() body bytes (copied). False: they do not fit. */
    bool (*body)(struct tg_stream *st, const char *p, size_t len);
    /* The response is complete (trailers may be NULL). False: it does not fit. */
    bool (*end)(struct tg_stream *st, const struct tg_http_head *trailers);
    /* Sends what was queued (HTTP/1: now; a multiplexing session may coalesce). */
    void (*flush)(struct tg_stream *st);
    /* Abandons the exchange mid-response: HTTP/1 closes the connection, HTTP/2 would reset only
     * this stream. */
    void (*reset)(struct tg_stream *st, const char *why);
    /* The handler took n request bytes out of its buffer: more of the body may come. */
    void (*consumed)(struct tg_stream *st, size_t n);
    /* A 101 to a WebSocket request was queued: the client connection becomes a tunnel with b
     * (HTTP/1 only; NULL where the protocol has no upgrade). */
    void (*upgrade)(struct tg_stream *st, struct tg_bconn *b);
    /* Drops the final head and body queued if none of it is on its way yet (NULL: never). */
    bool (*retract)(struct tg_stream *st);
};

/* What serves a stream: the proxy's backend side (forward.c), the status page (status.c), later
 * the admin API. The session calls it; it answers through tg__stream_* (stream.c). */
struct tg_stream_handler {
    const char *name;
    /* The request head passed the protocol's and the common checks (tg_http_request_check):
     * st->req_in holds it normalised, st->host/path/method are set. */
    void (*on_head)(struct tg_stream *st);
    /* Request body bytes it can take now. */
    size_t (*body_room)(struct tg_stream *st);
    /* Request body bytes (decoded, no framing); end: the request is complete (p may be NULL).
     * False: they do not fit (the session fails the request). */
    bool (*on_body)(struct tg_stream *st, const char *p, size_t len, bool end);
    /* Push what on_body took toward where it goes; true when that made room while the session
     * still holds body bytes (feed again). May be NULL. */
    bool (*push)(struct tg_stream *st);
    /* The session left its parser after on_head: start what on_head prepared (open a backend
     * connection). May be NULL. */
    void (*start)(struct tg_stream *st);
    /* The session's room for response bytes grew: produce more. */
    void (*on_room)(struct tg_stream *st);
    /* The exchange ended: complete (both directions done, the response went out) or not (reset,
     * refused, the connection went). Called once; the handler lets go of the stream. */
    void (*on_done)(struct tg_stream *st, bool complete);
};

/* One request/response exchange, separate from the connections carrying it: it knows its session
 * only through out/sess and the client only through who. Its heads are data (struct
 * tg_http_head). Recycled per worker by its session. */
struct tg_stream {
    const struct tg_stream_out_ops *out;
    void *sess; /* the session carrying it (HTTP/1: the struct tg_client) */
    const struct tg_client_info *who;
    const struct tg_stream_handler *h; /* NULL once on_done ran */
    struct tg_http_head req_in; /* the request as received (strings in the session's buffers) */
    struct tg_http_head req;    /* the request head forwarded to the backend */
    struct tg_http_head resp;   /* the response head forwarded to the client */
    /* Request trailer fields to end a chunked body with (HTTP/2 sessions set it before the end
     * of the body; checked against tg_http_trailer_ok), or NULL. */
    const struct tg_http_head *req_trailers;
    enum tg_req_phase req_phase;
    enum tg_resp_phase resp_phase;
    enum tg_stream_kind kind;
    /* Properties of this exchange (not states). */
    bool head_only;    /* HEAD: the response has no body */
    bool http10;       /* the client speaks HTTP/1.0 (Host may be missing) */
    bool has_body;     /* the request has a body */
    bool discard_body; /* the request body is read and dropped */
    bool retried;      /* already retried once on a fresh backend connection */
    bool upgrade;      /* the client asked for a WebSocket upgrade */
    bool close_conn;   /* the rest of the request is not read: no further request after it */
    bool early;        /* its head arrived in TLS 1.3 early data (before the handshake finished) */
    bool early_wait;   /* not safe to serve from early data: starts when the handshake finishes */
    int status;
    uint64_t start_ms;
    uint64_t bytes_in;  /* request bytes received for it (head and body, as framed) */
    uint64_t bytes_out; /* response bytes queued for it (head, body, framing) */
    /* Its own deadline (enum tg_ctimer stream kind); the connection's timer follows the
     * earliest of its streams'. */
    uint64_t deadline_ms;
    uint8_t deadline_kind;
    /* The body clock (limits.min_body_rate, timeouts.request_body): started at the end of the
     * head, stopped while we hold body bytes the backend has no room for yet. */
    bool body_clock;
    bool body_holding;
    uint64_t body_bytes;
    uint64_t body_start_ms;
    uint64_t body_held_ms;
    uint64_t body_hold_since_ms;
    /* What tg_http_request_check found: the authority routing uses and the backend gets (port
     * kept; strings in the session's buffers), or NULL. */
    const char *authority;
    size_t authority_len;
    char method[16];
    char path[256];
    char host[128];
    char ws_accept[TG_WS_ACCEPT_LEN + 1]; /* what a 101 must carry for the client's key, or "" */
    void *hdata; /* the handler's own state for this stream (service.c), or NULL */
    /* The proxy's part (forward.c, backend.c). */
    struct tg_bconn *bc;
    const struct tg_backend_conf *backend;
    size_t target_idx;
    unsigned targets_tried;
    bool req_chunked;    /* the request body is re-chunked for the backend */
    size_t req_head_len; /* bytes of the forwarded head in to_backend */
    struct tg_buf to_backend;
    char xff[64]; /* values of the fields we add (X-Forwarded-For: at least TG_ADDR_STRLEN) */
    /* tls.client_auth.from_header (forward.c): who the request is from when a trusted balancer
     * passed the certificate (a copy of *who with the header's identity, used when hdr_set);
     * the certificate and header values are freed by tg__stream_identity_clear. */
    bool hdr_set;
    struct tg_client_info hdr_who;
    X509 *hdr_leaf;                   /* hdr_who's certificate (the connection's is its SSL's) */
    struct tg_cert_fields hdr_fields; /* hdr_who.fwd when set (no chain) */
};

/* Frees a stream's from_header identity (any stream; idempotent). */
void tg__stream_identity_clear(struct tg_stream *st);

/* ---- backend connections ---- */

enum tg_bstate {
    TG_B_OPENING = 0, /* connecting / TLS handshake */
    TG_B_ACTIVE,      /* serving a stream, or carrying a tunnel */
    TG_B_IDLE,        /* in the worker's pool */
    TG_B_RESERVED,    /* taken from the pool for a user, handed over in the loop's idle phase */
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
    struct tg_bconn **slot;           /* the user's pointer to its connection while opening */
    const struct tg_client_info *who; /* whose request it is (for logs), or NULL */
    unsigned tries;                   /* targets tried for this user */
    uint64_t drained; /* conn.bytes_written when the stream last heard of progress */
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
    struct tg_h1_stream *free_streams; /* recycled HTTP/1 streams (h1.c) */
    size_t n_free_streams;
    struct tg_h2_stream *free_h2; /* recycled HTTP/2 streams (h2stream.c) */
    size_t n_free_h2;
    /* HTTP/2 sessions with frames to write at the end of this loop iteration (h2stream.c),
     * written by h2_check (a uv_check, allocated on first use, freed when closed) */
    struct tg_h2_session *h2_pending;
    uv_check_t *h2_check;
    struct tg_bconn *idle; /* idle pooled backend connections, most recent first */
    size_t n_idle;
    /* pooled connections taken for a request (TG_B_RESERVED), oldest first, handed over by
     * reuse_idle (a uv_idle, allocated on first use) once the current poll's events have run */
    struct tg_bconn *reserved, *reserved_tail;
    uv_idle_t *reuse_idle;
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
/* Accepts fd on listener lidx (its streams, for http: tg__client_serve). accepted_ms: the loop
 * time of the accept (before a PROXY header was read): timeouts.handshake counts from it. */
void tg__client_accept(struct tg_worker *w, size_t lidx, int fd,
                       const struct sockaddr_storage *peer, uint64_t hold, uint64_t accepted_ms,
                       const struct tg_proto *proto);
void tg__client_opened(struct tg_client *c);
void tg__client_handshake_timeout(struct tg_client *c);
void tg__client_on_fail(struct tg_conn *conn, enum tg_conn_fail why, int err);
void tg__client_on_closed(struct tg_conn *conn);
/* The client's Client-Cert-Chain does not fit a forwarded head: it is left out of the requests
 * of this connection from now on (RFC 9440 allows it; logged once). i is the client's info. */
void tg__client_leave_out_cert_chain(const struct tg_client_info *i);
void tg__client_close(struct tg_client *c);
/* Closes the client's connection as failed (net's tg_conn_abort: no close_notify, a reset when
 * plain): a response or tunnel cut short never looks ended to a client reading to the end. */
void tg__client_abort(struct tg_client *c, const char *why);
/* The handshake of a connection opened on early data finished (the protocol's on_confirmed
 * calls it first, then starts the streams that waited). */
void tg__client_confirmed(struct tg_client *c);

/* h1.c: the HTTP/1 session */
/* A stream carried by HTTP/1: the neutral part, plus the llhttp request and the framing this
 * protocol decides. */
struct tg_h1_stream {
    struct tg_stream st;
    struct tg_h1_msg msg; /* the client's request, as parsed (spans in c->conn.in) */
    struct tg_h1_stream *next_free;
    bool keepalive;    /* the client allows another request on the connection */
    bool resp_chunked; /* the response body is chunked for the client */
};

static inline struct tg_h1_stream *tg__h1s(struct tg_stream *st)
{
    return TG_CONTAINER(st, struct tg_h1_stream, st);
}

void tg__h1_cache_free(struct tg_worker *w);
/* Frees the worker's recycled HTTP/2 streams. */
void tg__h2_cache_free(struct tg_worker *w);

/* h2.c, h2stream.c: the HTTP/2 session */

struct tg_h2_stream {
    struct tg_stream st;
    struct tg_h2_session *s;
    struct tg_h2_stream *next; /* the session's live or dead list */
    int32_t id;
    struct tg_buf scratch; /* decoded header names and values (req_in points here) */
    struct tg_buf reqbuf;  /* request body received, not yet taken by the handler */
    struct tg_buf resp;    /* response body waiting for nghttp2 */
    size_t hdr_bytes;
    const char *authority;
    size_t authority_len;
    bool too_large; /* the header list went over limits.max_header_bytes / max_headers */
    bool end_in;    /* END_STREAM received */
    bool end_given; /* the handler heard the request ended */
    bool end_out;   /* the response is complete */
    bool no_data;   /* the response went out as HEADERS with END_STREAM */
    bool head_end;  /* head_pending has no body */
    struct tg_http_head *head_pending;    /* a backend's final head, submitted at h2_flush */
    struct tg_h2_trailers *resp_trailers; /* response trailers to send after the DATA, or NULL */
    bool deferred;                        /* nghttp2 waits for response bytes */
    bool room_wanted; /* its handler found no room for response bytes: on_room is due */
    bool to_start;    /* on_head ran inside mem_recv: start after it returns */
    bool feeding;
    bool closed; /* nghttp2 closed it: on the dead list */
    struct tg_http_head
        trailers; /* request trailers kept for a chunked body (max_fields 0: none) */
    size_t trailer_bytes;
    uint64_t wait_ms;   /* response bytes have waited for the client since (DATA sent resets it) */
    uint64_t opened_ms; /* its HEADERS began (timeouts.request_headers until END_HEADERS) */
    bool timed_out;     /* a body limit ended it: RST_STREAM(NO_ERROR) after our 408 */
};

/* h2calm.c: the HTTP/2 defences (each ends the connection with ENHANCE_YOUR_CALM). */
enum tg_h2_calm {
    TG_H2C_NONE = 0,
    TG_H2C_RAPID_RESET,
    TG_H2C_CONTINUATION,
    TG_H2C_HPACK_BOMB,
    TG_H2C_SETTINGS,
    TG_H2C_PING,
    TG_H2C_EMPTY,
    TG_H2C_ACK_QUEUE,
    TG_H2C_ZERO_WINDOW,
    TG_H2C_PRIORITY,      /* PRIORITY / PRIORITY_UPDATE frames: no effect here */
    TG_H2C_WINDOW_UPDATE, /* WINDOW_UPDATE frames beyond the DATA they could answer */
    TG_H2C__COUNT
};

struct tg_h2_calm_info {
    const char *token; /* in the log line and the status page */
    const char *text;
    const char *key; /* the config key that sets the limit, or NULL */
};

struct tg_h2_bucket {
    uint32_t tokens;
    uint64_t at_ms; /* 0: not used yet (full) */
};

struct tg_h2_session {
    struct tg_client *c;
    struct nghttp2_session *ng; /* nghttp2/nghttp2.h */
    struct tg_h2_stream *live;
    struct tg_h2_stream *dead; /* closed inside callbacks; freed at the next entry point */
    size_t n_live;
    uint64_t idle_since_ms; /* no stream open since (timeouts.idle then sends GOAWAY) */
    size_t n_dead;  /* closed, not freed yet: they still count against max_concurrent_streams */
    bool in_recv;   /* inside nghttp2_session_mem_recv: no mem_send */
    bool sending;   /* inside send(): no re-entry */
    bool want_send; /* frames were queued while sending was not allowed */
    bool goaway;    /* draining: no new streams, close when the last one ends */
    bool queued;    /* on the worker's h2_pending list */
    struct tg_h2_session *pending_next;
    uint64_t goaway_at_ms; /* a reload's shutdown notice went out: the final GOAWAY is due then */
    enum tg_h2_calm calm;  /* why we ended it with ENHANCE_YOUR_CALM (logged and counted once) */
    struct tg_h2_bucket b_settings, b_ping, b_reset, b_empty, b_priority, b_winupd;
};

const struct tg_h2_calm_info *tg__h2_calm_info(enum tg_h2_calm r);
/* A frame header arrived (on_begin_frame): false when it broke a flood limit (then the session
 * is already terminated with ENHANCE_YOUR_CALM). */
bool tg__h2_calm_frame(struct tg_h2_session *s, uint8_t type, uint8_t flags, size_t length);
/* A DATA frame went out: the client may answer it with WINDOW_UPDATEs (stream, connection). */
void tg__h2_calm_data_sent(struct tg_h2_session *s);
/* Logs and counts the reason once and queues GOAWAY(ENHANCE_YOUR_CALM). */
void tg__h2_calm(struct tg_h2_session *s, enum tg_h2_calm r);
/* Zero-window stalls: ends the session if a stream's response bytes waited timeouts.idle with
 * no DATA sent (returns 0); else the ms until the next such deadline (UINT64_MAX: none). */
uint64_t tg__h2_calm_stalls(struct tg_h2_session *s, uint64_t now);
/* The same deadline without acting on it. */
uint64_t tg__h2_calm_stalls_next(const struct tg_h2_session *s, uint64_t now);

/* h2timer.c: the session's one timer (idle, stream head and body deadlines, stalls). */
void tg__h2_timer_update(struct tg_h2_session *s);
void tg__h2_on_timer(struct tg_conn *conn);
/* Graceful GOAWAY (shutdown): streams in flight finish, then the connection closes. */
void tg__h2_goaway(struct tg_h2_session *s);
/* The same in two steps (a reload): a shutdown notice now, the final GOAWAY a moment later
 * (h2timer.c), so streams the client sent before it saw the notice are served, not refused. */
void tg__h2_goaway_soon(struct tg_h2_session *s);

extern const struct tg_stream_out_ops tg__h2_ops;
struct tg_h2_stream *tg__h2_stream_new(struct tg_h2_session *s, int32_t id);
/* nghttp2 forgot the stream (or the connection goes): the handler lets go (complete or not);
 * the object waits on the dead list for tg__h2_free_dead. */
void tg__h2_stream_close(struct tg_h2_stream *hs, bool complete);
/* Frees closed streams: only where no caller up the stack can hold one (top-level events). */
void tg__h2_free_dead(struct tg_h2_session *s);
struct tg_h2_stream *tg__h2_stream_of(struct tg_h2_session *s, int32_t id);
/* After a read pass, outside nghttp2's callbacks: start what on_head prepared, move bodies on. */
void tg__h2_streams_run(struct tg_h2_session *s);
/* Serialises what nghttp2 queued into the client's output and writes it (not inside
 * mem_recv: then it only notes that frames wait). */
void tg__h2_send(struct tg_h2_session *s);
/* Writes the session's frames at the end of this loop iteration (after every event of it), so
 * responses finishing on many streams at once leave in one write. */
void tg__h2_send_soon(struct tg_h2_session *s);
/* The session goes: it leaves the worker's list of sessions to write. */
void tg__h2_send_cancel(struct tg_h2_session *s);
/* Closes the worker's end-of-iteration handle (worker teardown). */
void tg__h2_check_close(struct tg_worker *w);
/* Turns an open client connection whose ALPN chose "h2" into an HTTP/2 session (sends our
 * SETTINGS, reads the preface); false if nghttp2 could not be set up. */
bool tg__h2_start(struct tg_client *c);

/* h1timer.c: the HTTP/1 session's timer */
/* Chooses the timer for the current state: keep-alive idle, header deadline, body limits, or
 * "waiting on the client" (only while we need its bytes or it must take ours). */
void tg__h1_timer_update(struct tg_client *c);
void tg__h1_on_timer(struct tg_conn *conn);

/* stream.c: the neutral stream; what handlers and backends call to answer */
bool tg__stream_head(struct tg_stream *st, struct tg_http_head *h, bool end);
size_t tg__stream_room(struct tg_stream *st);
bool tg__stream_body(struct tg_stream *st, const char *p, size_t len);
bool tg__stream_end(struct tg_stream *st);
/* Ends the response with trailer fields (already filtered with tg_http_trailer_ok), or NULL. */
bool tg__stream_end_trailers(struct tg_stream *st, const struct tg_http_head *trailers);
void tg__stream_flush(struct tg_stream *st);
void tg__stream_reset(struct tg_stream *st, const char *why);
/* out->retract: true when the queued response was dropped and the stream waits for one again. */
bool tg__stream_retract(struct tg_stream *st);
/* The handler lets go (on_done), once. */
void tg__stream_finish(struct tg_stream *st, bool complete);
/* A complete small response of ours (head and body, taken as is); the handler (if any) is let go
 * first. If a response is already under way the stream can only be reset. */
void tg__stream_respond(struct tg_stream *st, int status, const char *ctype, const char *extra_name,
                        const char *extra_value, const char *body, size_t blen);
/* Answers the request with the row's status and sentence, and counts it (the caller logs). */
void tg__stream_refuse(struct tg_stream *st, enum tg_hfail f);
/* Logs a refusal with its reason (peer, listener) and answers it; the rest of the request is
 * not read. */
void tg__stream_refuse_logged(struct tg_stream *st, enum tg_hfail f);
/* Runs the common request checks on st->req_in (tg_http_request_check) and records the method,
 * path, Host and authority they found; TG_HF_NONE or the refusal (not answered yet). */
enum tg_hfail tg__stream_check_request(struct tg_stream *st);
/* A request that arrived in TLS 1.3 early data may be a replay (RFC 8470): only a safe one (GET,
 * HEAD or OPTIONS, no body, no upgrade) is served before the handshake finishes. */
bool tg__stream_early_safe(const struct tg_stream *st);
/* The session left its parser after on_head: starts what the handler prepared, unless the
 * request came in early data and is not safe (it then waits: st->early_wait). */
void tg__stream_start(struct tg_stream *st);
/* The connection's handshake finished: a stream that waited for it starts. */
void tg__stream_confirmed(struct tg_stream *st);
/* Records the method and (raw) path of st->req_in for the access log. */
void tg__stream_note_request(struct tg_stream *st);
/* Every target failed, or the backend failed before a response byte: 502/504 with the reason. */
void tg__stream_backend_failed(struct tg_stream *st, enum tg_pfail f, const char *detail);
void tg__stream_log_access(struct tg_stream *st);
const char *tg__reason_phrase(int status);
/* The body clock: hold = the session holds body bytes the handler has no room for. True when the
 * clock changed state. */
bool tg__stream_body_hold(struct tg_stream *st, bool hold, uint64_t now);
/* The part of the time since the body started that the client is answerable for. */
uint64_t tg__stream_body_elapsed(const struct tg_stream *st, uint64_t now);
enum tg_body_verdict { TG_BODY_OK, TG_BODY_TOO_LONG, TG_BODY_TOO_SLOW };
enum tg_body_verdict tg__stream_body_check(const struct tg_stream *st, uint64_t e);
/* Milliseconds until the body could first break a limit, or quiet_left (timeouts.idle) if
 * sooner; at least 1. */
uint64_t tg__stream_body_next_check(const struct tg_stream *st, uint64_t now, uint64_t quiet_left);

/* forward.c: the proxy's stream handler */
extern const struct tg_stream_handler tg__forward_handler;

/* service.c: streams of the admin listener, served by the service an upper layer registered */
extern const struct tg_stream_handler tg__service_handler;

/* What serves an HTTP client's streams: the service on the admin listener, else the proxy
 * (worker.c accepts them so; derived, not kept per connection). */
static inline const struct tg_stream_handler *tg__client_serve(const struct tg_client *c)
{
    return c->info.lc->admin ? &tg__service_handler : &tg__forward_handler;
}

/* status.c: the status page's stream handler */
extern const struct tg_stream_handler tg__status_handler;
/* acme.c: an HTTP-01 challenge on a plaintext listener, answered before routing. True if st was
 * taken (and answered). */
extern const struct tg_stream_handler tg__acme_handler;
bool tg__acme_claim(struct tg_stream *st);

/* backend.c */
/* Opens (or takes from the pool, when pooled is true) a connection to one of be's targets for a
 * request of who (on w, under snap) and keeps *slot pointing at the attempt in progress (failover
 * replaces it). user->on_open runs once one is open (for a pooled one, in the loop's next idle
 * phase, once the events of the current poll have run: see reserve() in backend.c), user->on_fail
 * when every target failed (*slot NULL). */
struct tg_bconn *tg__backend_open(struct tg_worker *w, struct tg_snapshot *snap,
                                  const struct tg_client_info *who,
                                  const struct tg_backend_conf *be, bool pooled,
                                  const struct tg_bconn_user *user, void *arg,
                                  struct tg_bconn **slot);
/* Frees the worker's reuse handle (worker teardown). */
void tg__backend_reuse_close(struct tg_worker *w);
/* Starts forwarding the stream's request on b (http). */
void tg__backend_serve(struct tg_bconn *b, struct tg_stream *st);
void tg__backend_flush(struct tg_bconn *b);
void tg__backend_resume_read(struct tg_bconn *b);
/* Detaches b from its stream: back to the pool if reusable, else closed. */
void tg__backend_release(struct tg_bconn *b, bool reusable);
void tg__backend_close(struct tg_bconn *b);
void tg__backend_close_idle(struct tg_worker *w);
/* What a backend connection's one timer is armed for. */
enum { TG_BT_NONE, TG_BT_CONNECT, TG_BT_RESPONSE, TG_BT_IDLE };
void tg__backend_arm(struct tg_bconn *b, int kind, uint64_t ms);

/* pool.c (see tg__backend_release, tg__backend_close_idle above) */
/* Takes a pooled connection to target idx of backend bi for user (*slot = it; user->on_open in
 * the loop's next idle phase); false when none is fit. */
bool tg__pool_take(struct tg_worker *w, struct tg_snapshot *snap, const struct tg_client_info *who,
                   size_t bi, size_t idx, const struct tg_bconn_user *user, void *arg,
                   struct tg_bconn **slot);
/* A new snapshot on the worker: idle connections of older ones closed (they pin them). */
void tg__pool_on_snapshot(struct tg_worker *w);
/* Out of the pool or its reserved list (closing, or its user is done with it). */
void tg__pool_unlink(struct tg_bconn *b);
/* A pooled connection whose backend sent bytes, an end or a reset: counted, logged, closed. */
void tg__pool_drop(struct tg_bconn *b, const char *what);

/* The backend connection's teardown (its conn's on_closed). */
void tg__backend_on_closed(struct tg_conn *conn);
void tg__backend_log_failure(struct tg_worker *w, const struct tg_client_info *who,
                             const struct tg_backend_conf *be, const char *target, enum tg_pfail f,
                             const char *detail);

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
/* A new snapshot on the worker: the targets' states laid out for it (the old one let go). */
void tg__targets_on_snapshot(struct tg_worker *w);
void tg__targets_stop(struct tg_worker *w);
/* Frees the targets' state and, once its health timer is closed, the worker's proxy state. */
void tg__targets_free(struct tg_worker *w);
extern const struct tg_conn_handler tg__probe_handler;

/* tunnel.c */
/* Joins c and b (both open) into a tunnel; bytes already in either input go on at once. */
void tg__tunnel_start(struct tg_client *c, struct tg_bconn *b);

/* mtls.c */
/* Installs the revocation-fetch hook (once per process). */
void tg__mtls_init(void);
/* A new snapshot arrived: close connections whose client certificate it refuses. */
void tg__mtls_on_snapshot(struct tg_worker *w);

#endif
