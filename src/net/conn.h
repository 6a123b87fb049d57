/* The connection engine: one object for both hops (client and backend), a transport chosen from a
 * small ops table (plain, TLS server side, TLS client side), bounded buffers, one timer (a place
 * in its worker's heap of deadlines), one
 * state enum, one dispatcher and one teardown. Protocol code (HTTP/1, tunnels) owns connections
 * through struct tg_conn_handler and never touches sockets or SSL objects itself. */
#ifndef TG_NET_CONN_H
#define TG_NET_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <openssl/ssl.h>
#include <uv.h>

#include "core/buf.h"
#include "tls/tls.h"

struct tg_worker;
struct tg_conn;

enum tg_conn_state {
    TG_CONN_CONNECTING = 0, /* backend: non-blocking connect() in progress */
    TG_CONN_HANDSHAKE,      /* TLS handshake (a server side first sniffs the client's bytes) */
    TG_CONN_OPEN,           /* bytes flow */
    TG_CONN_CLOSED, /* closing: handles are being released, no more callbacks but on_closed */
};

/* Why a connection could not be opened (handler's on_fail). */
enum tg_conn_fail {
    TG_CONN_FAIL_CONNECT = 1, /* connect() failed: err is the errno */
    TG_CONN_FAIL_HANDSHAKE,   /* TLS handshake failed: see c->ssl, c->ssl_error, err = errno */
    TG_CONN_FAIL_SNIFF,       /* server side: the client's first bytes are not a TLS hello */
};

/* How bytes move: plain sockets or OpenSSL reading and writing the socket itself (SSL_set_fd, no
 * copies through memory BIOs). Results: bytes, 0 for EOF, -EAGAIN, or another -errno. */
struct tg_transport {
    const char *name;
    /* Advances the handshake: 0 done, -EAGAIN (wait for the poll set through c->hs_want), or
     * -EPROTO/-errno (failed; c->ssl_error/c->sniff describe it). */
    int (*handshake)(struct tg_conn *c);
    ssize_t (*read)(struct tg_conn *c, char *buf, size_t len);
    ssize_t (*write)(struct tg_conn *c, const char *buf, size_t len);
    /* Ends our direction: shutdown(SHUT_WR), or close_notify for TLS. */
    void (*shutdown)(struct tg_conn *c);
    /* Bytes decrypted and waiting inside the transport (no socket event will report them). */
    bool (*pending)(const struct tg_conn *c);
};

extern const struct tg_transport tg_transport_plain;
extern const struct tg_transport tg_transport_tls_server;
extern const struct tg_transport tg_transport_tls_client;

/* What the owner of a connection plugs in. Every callback runs on the worker's thread; any of them
 * may close the connection (check c->state == TG_CONN_CLOSED after calling out). */
struct tg_conn_handler {
    /* Connected (and handshaken, for TLS). */
    void (*on_open)(struct tg_conn *c);
    /* Connecting or the handshake failed; the engine closes the connection after this returns. */
    void (*on_fail)(struct tg_conn *c, enum tg_conn_fail why, int err);
    /* How many bytes may be read into c->in now (0: none; back-pressure). May allocate or
     * compact c->in; the engine reads at c->in.data + c->in.len. */
    size_t (*read_room)(struct tg_conn *c);
    /* Cheap: does the owner want bytes at all now (decides readable interest). */
    bool (*want_read)(const struct tg_conn *c);
    /* New bytes were appended to c->in, or c->rd_eof was set (the peer ended its direction). */
    void (*on_read)(struct tg_conn *c);
    /* A read or write failed (err = -errno); the engine closes the connection after this. */
    void (*on_error)(struct tg_conn *c, int err, bool writing);
    /* After a flush that wrote bytes or found the output empty (optional): room was made. */
    void (*on_drain)(struct tg_conn *c);
    /* A read pass ended with the connection still open (optional): e.g. to give back an empty
     * input buffer, so idle connections hold none. */
    void (*after_read)(struct tg_conn *c);
    /* A connection opened on TLS 1.3 early data (c->early) finished its handshake: what arrived
     * from now on is not replayable (optional). */
    void (*on_confirmed)(struct tg_conn *c);
    /* The timer armed with tg_conn_timer fired (optional). */
    void (*on_timer)(struct tg_conn *c);
    /* The connection is gone (handles released, socket closed): free the owner. */
    void (*on_closed)(struct tg_conn *c);
};

struct tg_conn {
    struct tg_worker *w;
    const struct tg_transport *tp;
    const struct tg_conn_handler *h;
    void *owner;
    SSL *ssl;
    int fd;
    enum tg_conn_state state;
    /* The narrow fields below and lingered fill 32 bytes (issue 16 d). */
    int8_t poll_mask;  /* UV_READABLE/UV_WRITABLE polled for; -1: none decided yet */
    uint8_t ssl_error; /* SSL_get_error() of the failed handshake step (0-12) */
    uint8_t sniff;     /* enum tg_tls_sniff verdict when the server-side sniff refused */
    uint8_t v2_minor;  /* an SSLv2-format hello's offered 3.x minor version, 0xff if none */
    uint8_t hs_want;   /* UV_READABLE/UV_WRITABLE the handshake waits for */
    uint8_t pending_closes;
    bool sniffed;      /* server side: first bytes checked */
    bool prefix_held;  /* the first read's bytes are not all taken by OpenSSL yet */
    bool r_blocked;    /* readable fired while the owner could not take bytes */
    bool want_write;   /* the last TLS read needs the socket writable */
    bool rd_eof;       /* the peer ended its direction */
    bool wr_shut;      /* we ended ours */
    bool shut_pending; /* end ours once the output is flushed */
    bool linger;       /* closing drains the client's bytes first (a fatal alert was sent) */
    /* The last read found the socket empty (EAGAIN, or a plain read shorter than asked), and
     * readable interest has been armed and no readable event reported since: whatever arrives
     * from then on is reported by the loop's next poll (tg_conn_has_input needs no system call). */
    bool rd_quiet;
    /* TLS 1.3 early data (server side). early_ok: the owner accepts it (set before
     * tg_conn_start). early: the connection opened on accepted early data and its handshake has
     * not finished (reads are early data, which may be a replay; writes go out before the
     * client's Finished). early_fin: the early data ended, the handshake goes on. confirmed:
     * the handshake just finished (on_confirmed is due). */
    bool early_ok;
    bool early;
    bool early_fin;
    bool confirmed;
    bool poll_kept;      /* closing: the handle was stopped (to be cached), not closed */
    uint32_t lingered;   /* bytes drained so far */
    uint64_t last_io_ms; /* last byte moved either way */
    uint64_t bytes_read;
    uint64_t bytes_written;
    struct tg_buf in;   /* bytes read */
    struct tg_buf *out; /* bytes to write: &own_out, or a buffer lent by the owner */
    struct tg_buf own_out;
    struct tg_buf *early_in; /* early data read before the owner could take it: allocated
                              * only then (net/early.c), NULL otherwise */
    /* The socket's poll handle: from the worker's cache of stopped handles by descriptor number
     * when one was kept for this number (uv_poll_init costs an ioctl and two epoll_ctl), else new;
     * back to the cache when the connection closes. */
    uv_poll_t *poll;
    /* A TLS connection's records that would otherwise be SSL ex_data (tg_conn_of_ssl finds the
     * connection from its SSL through it). */
    struct tg_tls_link tls;
    /* Its timer: a place in the worker's heap of deadlines (net/ctimer.c). t_idx: 1 + its index
     * there, 0 when not armed; t_due: the loop time it fires at; t_seq: arming order. */
    uint64_t t_due;
    uint32_t t_seq;
    uint32_t t_idx;
};

/* Sets up c on an accepted or connecting socket fd (owned by c from here on), which must be
 * non-blocking already (accept4/socket with SOCK_NONBLOCK: a poll handle kept for the descriptor's
 * number is taken as it is, without uv_poll_init setting O_NONBLOCK). ssl (may be NULL
 * for plain) is owned by c too; SSL_set_fd is done here. The state starts at CONNECTING when
 * connecting is true, else HANDSHAKE for TLS and OPEN for plain; the caller then calls
 * tg_conn_start. */
void tg_conn_init(struct tg_conn *c, struct tg_worker *w, int fd, SSL *ssl,
                  const struct tg_transport *tp, const struct tg_conn_handler *h, void *owner,
                  bool connecting);
/* The connection whose SSL this is (tied by tg_conn_init), or NULL. */
struct tg_conn *tg_conn_of_ssl(SSL *ssl);
/* Starts polling (and, for an open plain connection, nothing else: the owner asks for reads
 * through want_read). */
void tg_conn_start(struct tg_conn *c);
/* Non-blocking connect to addr and tg_conn_init (state CONNECTING); 0, or -errno (nothing was
 * set up and ssl is still the caller's). */
int tg_conn_connect(struct tg_conn *c, struct tg_worker *w, const struct sockaddr *addr,
                    socklen_t addr_len, SSL *ssl, const struct tg_transport *tp,
                    const struct tg_conn_handler *h, void *owner);
/* Continues a TLS handshake that paused for an off-loop check: verification called
 * SSL_set_retry_verify() (or paused the async job running the handshake, SSL_MODE_ASYNC) and the
 * handshake reported SSL_ERROR_WANT_RETRY_VERIFY / SSL_ERROR_WANT_ASYNC (the connection then
 * waits with no socket interest). Call on the worker thread once the check is done. */
void tg_conn_handshake_resume(struct tg_conn *c);
/* Recomputes poll interest after the owner's wants changed. */
void tg_conn_update(struct tg_conn *c);
/* Reads while the owner has room and bytes are there (on_read after each read). */
void tg_conn_read(struct tg_conn *c);
/* Writes c->out; on_drain when it empties. Updates poll interest. */
void tg_conn_flush(struct tg_conn *c);
/* Ends our direction once c->out is flushed (half-close). */
void tg_conn_shutdown(struct tg_conn *c);
/* Whether the peer sent something nobody has read yet: bytes (in c->in, inside the transport or
 * in the socket), an end or a reset. A pooled backend connection for which this is true must not
 * carry a request (its next bytes would be taken for the response to it). Without a system call
 * when c->rd_quiet: then the socket's news since the last read is in the loop's poll, and the
 * answer holds only once every event of the current poll has run (a caller in an I/O callback
 * waits for the loop's next idle phase: see tg__backend_open). Otherwise peeks at the socket
 * (recv MSG_PEEK, one system call), which is exact at once. */
bool tg_conn_has_input(const struct tg_conn *c);
/* Arms the connection's one timer (ms from now); 0 stops it. */
void tg_conn_timer(struct tg_conn *c, uint64_t ms);
/* Closes: no callbacks but on_closed from here on. Idempotent. */
void tg_conn_close(struct tg_conn *c);
/* Closes as failed: what the peer got is not the whole stream. No close_notify (a TLS peer sees
 * the stream cut, not ended), and a plain connection is reset (RST) rather than ended with a FIN,
 * so a peer that reads to the end (an HTTP/1.0 client, a tcp tunnel) never takes a cut stream for
 * a whole one. Bytes not yet sent may be lost. Idempotent. */
void tg_conn_abort(struct tg_conn *c);
/* Re-targets the connection's callbacks (e.g. a backend connection moving into a pool). */
static inline void tg_conn_set_handler(struct tg_conn *c, const struct tg_conn_handler *h,
                                       void *owner)
{
    c->h = h;
    c->owner = owner;
}
static inline bool tg_conn_closed(const struct tg_conn *c)
{
    return c->state == TG_CONN_CLOSED;
}

/* Per-worker cache of buffer blocks (busy connections do not malloc/free tens of KiB per request).
 */
void tg_conn_buf_get(struct tg_worker *w, struct tg_buf *b, size_t cap);
void tg_conn_buf_put(struct tg_worker *w, struct tg_buf *b);
void tg_conn_buf_put_if_empty(struct tg_worker *w, struct tg_buf *b);
void tg_conn_bufcache_free(struct tg_worker *w);
/* Frees the cached blocks beyond keep per size (after a burst: net/trim.c); the bytes freed. */
size_t tg_conn_bufcache_shrink(struct tg_worker *w, size_t keep);
/* Closes the worker's cached poll handles (worker teardown; the loop runs once more after). */
void tg_conn_pollcache_free(struct tg_worker *w);

#endif
