/* Proxy internals shared by client.c, backend.c and status.c. */
#ifndef TG_PROXY_INTERNAL_H
#define TG_PROXY_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <openssl/ssl.h>
#include <uv.h>

#include "core/buf.h"
#include "http/http.h"
#include "net/net.h"
#include "proxy/proxy.h"

struct tg_bconn;

/* State needed only while a request is in flight: parser and what the access log names. Taken
 * from a per-worker free list when a request starts and given back when the connection goes
 * idle, so idle keep-alive connections do not carry it. */
struct tg_creq {
    struct tg_h1_msg msg;
    struct tg_creq *next_free;
    char method[16];
    char path[256];
    char host[128];
};

enum tg_cstate {
    TG_C_HANDSHAKE = 0, /* TLS handshake (first bytes sniffed before OpenSSL sees them) */
    TG_C_HTTP,          /* reading requests / forwarding responses */
};

/* A client connection. Freed in the last uv_close callback; `dead` marks it closing. */
struct tg_client {
    struct tg_worker *w;
    struct tg_snapshot *snap;
    const struct tg_listener_conf *lc;
    struct tg_client *prev, *next; /* worker's list, for drain */
    int fd;
    uv_poll_t poll;
    uv_timer_t timer;
    int poll_mask;
    int pending_closes;
    enum tg_cstate state;
    SSL *ssl;
    bool sniffed;
    bool dead;
    bool want_write; /* the last TLS read needs the socket writable */
    bool in_parser;  /* inside tg_h1_execute: no flushing or re-entry */
    bool r_blocked;  /* readable fired while we could not take input: stop polling it */
    uint64_t accepted_ms;
    uint64_t last_io_ms;  /* last progress with the client, for the idle timer */
    uint64_t deadline_ms; /* what the timer enforces */
    int timer_kind;
    char peer[48];

    struct tg_buf in;  /* bytes from the client (decrypted), head spans point here */
    struct tg_buf out; /* bytes to the client */
    struct tg_buf to_backend;
    struct tg_creq *rq; /* NULL while idle */

    /* The request in progress. */
    bool head_started; /* some bytes of the next request arrived */
    bool req_active;   /* head parsed */
    bool req_done;     /* whole request (with body) parsed */
    bool req_chunked;
    bool req_has_body;
    bool req_keepalive;
    bool req_head_only; /* HEAD request */
    bool req_http10;
    bool discard_body; /* local response: drop the body */
    bool resp_started; /* response head queued to the client */
    bool resp_done;    /* response fully queued */
    bool resp_chunked; /* re-encoding the body as chunked */
    bool close_after;  /* close once the response is flushed */
    bool local;        /* answered by us, no backend */
    bool retried;
    int status;
    uint64_t req_start_ms;
    uint64_t bytes_out;
    size_t req_head_len; /* bytes of the forwarded head in to_backend */
    const struct tg_backend_conf *backend;
    size_t target_idx;
    unsigned targets_tried;
    struct tg_bconn *bc;
};

/* What a client's timer currently enforces. */
enum tg_ctimer { TG_CT_NONE, TG_CT_HANDSHAKE, TG_CT_IDLE, TG_CT_HEADERS, TG_CT_PEER };

enum tg_bstate { TG_B_CONNECTING, TG_B_IDLE, TG_B_ACTIVE };

/* A connection to a backend target; pooled per worker when idle. */
struct tg_bconn {
    struct tg_worker *w;
    struct tg_bconn *prev, *next; /* pool list while idle */
    int fd;
    uv_poll_t poll;
    uv_timer_t timer;
    int poll_mask;
    int pending_closes;
    enum tg_bstate state;
    bool dead;
    bool reused;
    bool got_bytes; /* some response byte arrived */
    bool reusable;
    struct sockaddr_storage addr;
    socklen_t addr_len;
    char target[64];
    struct tg_buf in;
    struct tg_h1_msg resp;
    bool resp_ready;
    bool r_blocked;
    uint64_t last_io_ms;
    struct tg_client *c;
};

#define TG_BUFCACHE_CLASSES 4
#define TG_BUFCACHE_DEPTH   64

/* Free buffer blocks kept per worker so busy connections do not malloc/free (and fault in)
 * tens of KiB per request; keyed by capacity. */
struct tg_bufcache {
    size_t cap;
    size_t n;
    char *blocks[TG_BUFCACHE_DEPTH];
};

/* Per-worker proxy state. */
struct tg_proxy_worker {
    struct tg_bufcache cache[TG_BUFCACHE_CLASSES];
    struct tg_client *clients; /* every open client connection */
    size_t n_clients;
    struct tg_creq *free_req; /* recycled request state */
    size_t n_free_req;
    struct tg_bconn *idle; /* idle pooled backend connections, most recent first */
    size_t n_idle;
    size_t *rr; /* round-robin position per backend index */
    size_t n_rr;
};

static inline struct tg_proxy_worker *tg_pw(struct tg_worker *w)
{
    return w->proto;
}

/* Worker-cached buffer blocks (client.c). w may have no proxy state left (then plain malloc). */
void tg__buf_ensure(struct tg_worker *w, struct tg_buf *b, size_t cap);
void tg__buf_release(struct tg_worker *w, struct tg_buf *b);
void tg__buf_release_if_empty(struct tg_worker *w, struct tg_buf *b);

/* Readable interest to ask for: on when wanted; when not, kept until an event arrived that could
 * not be taken (*r_blocked), so a request/response cycle costs no epoll_ctl calls. cur is the
 * mask in force (-1 or 0 when none). */
static inline int tg__poll_readable(bool want, bool *r_blocked, int cur)
{
    if (want) {
        *r_blocked = false;
        return UV_READABLE;
    }
    return !*r_blocked && cur > 0 && (cur & UV_READABLE) ? UV_READABLE : 0;
}

/* Applies mask to p if it differs from *cur. */
static inline void tg__poll_set(uv_poll_t *p, int *cur, int mask, uv_poll_cb cb)
{
    if (mask == *cur)
        return;
    *cur = mask;
    if (mask)
        uv_poll_start(p, mask, cb);
    else
        uv_poll_stop(p);
}

static inline const struct tg_config *tg__cfg(const struct tg_client *c)
{
    return c->snap->cfg;
}

/* Capacity of c->in: a whole request head must fit. */
static inline size_t tg__client_in_cap(const struct tg_client *c)
{
    return (size_t)c->snap->cfg->limits.max_header_bytes + 1024;
}

/* client.c */
void tg__client_close(struct tg_client *c);
void tg__client_flush(struct tg_client *c);
/* request.c: feeds buffered client bytes to the parser as far as the backend buffer allows. */
void tg__client_process(struct tg_client *c);
/* request.c: gives c->rq back to the worker (accepts c->rq == NULL). */
void tg__client_req_release(struct tg_client *c);
/* request.c: frees the worker's recycled request objects. */
void tg__req_cache_free(struct tg_worker *w);
/* respond.c */
void tg__client_local_response(struct tg_client *c, int status, const char *body);
void tg__client_log_access(struct tg_client *c);
void tg__status_respond_done(struct tg_client *c, int status, const char *ctype, char *body,
                             size_t blen);
void tg__client_backend_failed(struct tg_client *c, int status, const char *why);
void tg__client_response_progress(struct tg_client *c);
void tg__client_request_space(struct tg_client *c);
void tg__client_abort(struct tg_client *c, const char *why);
size_t tg__client_out_room(struct tg_client *c);

/* backend.c */
void tg__backend_start(struct tg_client *c);
void tg__backend_flush(struct tg_bconn *b);
void tg__backend_resume_read(struct tg_bconn *b);
/* Detaches b from its client: back to the pool if reusable, else closed. */
void tg__backend_release(struct tg_bconn *b, bool reusable);
void tg__backend_close(struct tg_bconn *b);
void tg__backend_close_idle(struct tg_worker *w);

/* status.c */
void tg__status_respond(struct tg_client *c);

#endif
