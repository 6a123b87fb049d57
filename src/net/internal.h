/* Symbols shared inside the net module only. */
#ifndef TG_NET_INTERNAL_H
#define TG_NET_INTERNAL_H

#include "net/net.h"

/* Whether a connection from peer on listener lc must start with a PROXY header. */
bool tg_net__ppwait_wanted(const struct tg_listener_conf *lc, const struct sockaddr_storage *peer);
/* Waits (with timeouts.handshake) for the PROXY header on the accepted fd, then hands fd to the
 * handler's on_accept with the header's source address (the connection's own for LOCAL); a
 * malformed header, a timeout or a hang-up closes fd, logged once and counted. */
void tg_net__ppwait_start(struct tg_worker *w, size_t lidx, int fd,
                          const struct sockaddr_storage *peer, socklen_t plen);
/* Closes every connection still waiting for its header (shutdown). */
void tg_net__ppwait_close_all(struct tg_worker *w);

struct tg_conn;

/* early.c: TLS 1.3 early data on server connections (tg_conn.early_ok) */
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

#endif
