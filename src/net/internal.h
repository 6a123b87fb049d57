/* Symbols shared inside the net module only. */
#ifndef TG_NET_INTERNAL_H
#define TG_NET_INTERNAL_H

#include <openssl/ssl.h>

#include "net/net.h"

/* Whether a connection from peer on listener lc must start with a PROXY header. */
bool tg_net__ppwait_wanted(const struct tg_listener_conf *lc, const struct sockaddr_storage *peer);
/* Waits (with timeouts.handshake) for the PROXY header on the accepted fd, then hands fd to the
 * handler's on_accept with the header's source address (the connection's own for LOCAL), once
 * that address passes the per-address limits (tg_net__peer_admit); a
 * malformed header, a timeout or a hang-up closes fd, logged once and counted. */
void tg_net__ppwait_start(struct tg_worker *w, size_t lidx, int fd,
                          const struct sockaddr_storage *peer, socklen_t plen);
/* Closes every connection still waiting for its header (shutdown). */
void tg_net__ppwait_close_all(struct tg_worker *w);

/* ---- Per-address limits (peerlim.c) ---- */

struct tg_net_peers;
/* The process-wide per-address tables (zeroed; a fresh secret hash seed), the connection table
 * sized for a process that may open max_fds descriptors. */
struct tg_net_peers *tg_net__peers_new(uint64_t max_fds);
void tg_net__peers_free(struct tg_net_peers *p);
/* Counts a new connection from peer (the real client: after any PROXY header) on listener lidx
 * of w's snapshot against limits.max_connections_per_ip and, on TLS listeners,
 * limits.handshake_rate_per_ip. True with *hold set (for tg_worker_conn_done); false when
 * refused: counted, logged at most once per address per 10 s, and the caller closes the
 * connection. Any worker thread, no lock. */
bool tg_net__peer_admit(struct tg_worker *w, size_t lidx, const struct sockaddr_storage *peer,
                        uint64_t *hold);
/* Takes a connection admitted with hold out of the counts (0: nothing to do). */
void tg_net__peer_release(struct tg_net *net, uint64_t hold);
/* Counts and logs (at most once per 10 s) a connection refused by limits.max_connections. */
void tg_net__refuse_max_connections(struct tg_worker *w, size_t lidx,
                                    const struct sockaddr_storage *peer);

/* Puts the len bytes at data in front of ssl's read BIO: OpenSSL reads them before the socket.
 * data must stay valid until tg_net__prefix_settle, called after the next TLS call. false (and
 * nothing changed) when out of memory. */
bool tg_net__prefix_push(SSL *ssl, const void *data, size_t len);
/* After a TLS call: takes the filter out once OpenSSL has read its bytes (0), or copies what is
 * left so that it outlives the caller's buffer (1: bytes still held); -1 when out of memory. */
int tg_net__prefix_settle(SSL *ssl);

struct tg_conn;

/* early.c: TLS 1.3 early data on server connections (tg_conn.early_ok) */
/* Frees a connection's early_in, if it has one. */
void tg_net__early_in_free(struct tg_conn *c);

/* The first handshake step: 0 opened on accepted early data (its first bytes in early_in),
 * -EAGAIN, -errno, or 1: no early data, go on with the handshake. */
int tg_net__early_step(struct tg_conn *c);
/* Reads early data, then finishes the handshake (sets confirmed and gives -EAGAIN). */
ssize_t tg_net__early_recv(struct tg_conn *c, char *buf, size_t len);
/* Writes before the client's Finished (0.5-RTT data). */
ssize_t tg_net__early_send(struct tg_conn *c, const char *buf, size_t len);
/* Bytes OpenSSL holds in its handshake buffer after an early write. */
bool tg_net__early_wpending(const struct tg_conn *c);
/* Drives the handshake while the owner takes no bytes (early data kept in early_in). */
void tg_net__early_advance(struct tg_conn *c);
/* Tells the owner the handshake finished (on_confirmed). */
void tg_net__early_confirm(struct tg_conn *c);

/* ctimer.c: the worker's heap of connection deadlines, driven by one libuv timer. */
/* Arms c's timer ms from now (0: disarms). */
void tg_net__timer_set(struct tg_conn *c, uint64_t ms);
/* Closes the worker's libuv timer (its loop ended: no deadline is left that anything waits for). */
void tg_net__timers_close(struct tg_worker *w);
void tg_net__timers_free(struct tg_worker *w);
/* trim.c: counts a worker's open connections; after a large fall from their peak, frees
 * glibc's unused memory on the thread pool. */
void tg_net__trim_opened(struct tg_worker *w);
void tg_net__trim_closed(struct tg_worker *w);
/* Closes the trim's timer (the worker is done). */
void tg_net__trim_close(struct tg_worker *w);
/* conn.c: a connection's deadline passed (the heap took it out first). */
void tg_net__conn_timer_fired(struct tg_conn *c);
/* conncache.c: a poll handle for fd, kept for its number or new (uv_poll_init); whether a stopped
 * handle for fd can be kept; keeps stopped handle p for descriptor number fd (closed by now). */
uv_poll_t *tg_net__poll_get(struct tg_worker *w, int fd);
bool tg_net__poll_keepable(struct tg_worker *w, int fd);
void tg_net__poll_put(struct tg_worker *w, uv_poll_t *p, int fd);
/* conncache.c: ends c's close (tg_net__conn_finish_close) on the loop's next turn, as a
 * uv_close callback would, for a connection whose poll handle was stopped to be kept; the
 * worker's queue of such closes is emptied, and its idle handle closed, at teardown. */
void tg_net__close_later(struct tg_conn *c);
void tg_net__closes_flush_and_close(struct tg_worker *w);
/* conn.c: the socket goes, the handle is put back or freed, the owner is told (on_closed). */
void tg_net__conn_finish_close(struct tg_conn *c);

#endif
