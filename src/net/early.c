/* TLS 1.3 early data on server connections (early_ok): the first handshake step reads the
 * ClientHello with SSL_read_early_data and opens the connection on accepted early data; until
 * the client's Finished, reads are early data and writes go out with SSL_write_early_data. */
#include "net/internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "core/core.h"
#include "net/conn.h"

/* All the early data a client may send, and a byte more: with the early data all kept, a read
 * still has room to take the EndOfEarlyData that ends it (else a readable socket would spin). */
#define EARLY_IN_CAP (TG_TLS_EARLY_MAX + 1)

/* Maps a failed SSL call on a connection open on early data (r as the call returned). */
/* The connection's early_in, allocated (with room for all early data) on first use. */
static struct tg_buf *early_in(struct tg_conn *c)
{
    if (c->early_in == NULL)
        c->early_in = tg_xcalloc(1, sizeof(*c->early_in));
    tg_buf_ensure(c->early_in, EARLY_IN_CAP);
    return c->early_in;
}

void tg_net__early_in_free(struct tg_conn *c)
{
    if (c->early_in == NULL)
        return;
    tg_buf_free(c->early_in);
    free(c->early_in);
    c->early_in = NULL;
}

static ssize_t early_result(struct tg_conn *c, int r)
{
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ)
        return -EAGAIN;
    if (e == SSL_ERROR_WANT_WRITE) {
        c->want_write = true;
        return -EAGAIN;
    }
    if (e == SSL_ERROR_ZERO_RETURN)
        return 0;
    c->ssl_error = e;
    if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
        return errno == 0 ? 0 : -errno;
    return -EPROTO;
}

/* The first step of a server that accepts early data: SSL_read_early_data processes the
 * ClientHello. Accepted early data opens the connection at once (bytes already read wait in
 * early_in); refused or absent early data lets the handshake go on as usual. */
int tg_net__early_step(struct tg_conn *c)
{
    char tmp[TG_TLS_EARLY_MAX];
    size_t n = 0;
    ERR_clear_error();
    errno = 0;
    int r = SSL_read_early_data(c->ssl, tmp, sizeof(tmp), &n);
    if (r == SSL_READ_EARLY_DATA_FINISH) {
        c->early_fin = true;
        return 1;
    }
    if (r == SSL_READ_EARLY_DATA_SUCCESS) {
        struct tg_buf *b = early_in(c);
        tg_buf_append(b, tmp, n);
        c->early = true;
        return 0;
    }
    int e = SSL_get_error(c->ssl, r);
    if ((e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) &&
        SSL_get_early_data_status(c->ssl) == SSL_EARLY_DATA_ACCEPTED) {
        c->early = true; /* the ClientHello is done: open while its early data comes */
        c->want_write = e == SSL_ERROR_WANT_WRITE;
        return 0;
    }
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        c->hs_want = e == SSL_ERROR_WANT_READ ? UV_READABLE : UV_WRITABLE;
        return -EAGAIN;
    }
    c->ssl_error = e;
    return errno ? -errno : -EPROTO;
}

/* Reads early data, then finishes the handshake (confirmed, and -EAGAIN: read again). */
ssize_t tg_net__early_recv(struct tg_conn *c, char *buf, size_t len)
{
    ERR_clear_error();
    errno = 0;
    while (!c->early_fin) {
        size_t n = 0;
        int r = SSL_read_early_data(c->ssl, buf, len, &n);
        if (r == SSL_READ_EARLY_DATA_SUCCESS && n > 0)
            return (ssize_t)n;
        if (r == SSL_READ_EARLY_DATA_ERROR)
            return early_result(c, 0);
        if (r == SSL_READ_EARLY_DATA_FINISH)
            c->early_fin = true;
    }
    int r = SSL_do_handshake(c->ssl);
    if (r != 1)
        return early_result(c, r);
    c->early = false;
    c->confirmed = true;
    return -EAGAIN;
}

/* Bytes OpenSSL kept in its handshake buffer after an early write (the socket was full). */
bool tg_net__early_wpending(const struct tg_conn *c)
{
    return c->early && BIO_wpending(SSL_get_wbio(c->ssl)) > 0;
}

/* Before the client's Finished, OpenSSL writes only through SSL_write_early_data (0.5-RTT). */
ssize_t tg_net__early_send(struct tg_conn *c, const char *buf, size_t len)
{
    /* Between the EndOfEarlyData and the Finished OpenSSL takes no application data either
     * way: the output waits (no writable interest) and goes once the handshake is confirmed. */
    if (c->early_fin)
        return -EAGAIN;
    BIO *wb = SSL_get_wbio(c->ssl);
    if (BIO_wpending(wb) > 0 && BIO_flush(wb) <= 0)
        return BIO_should_retry(wb) ? -EAGAIN : -EPIPE;
    size_t w = 0;
    if (SSL_write_early_data(c->ssl, buf, len, &w) == 1)
        return (ssize_t)w;
    int e = SSL_get_error(c->ssl, 0);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return -EAGAIN;
    c->ssl_error = e;
    return e == SSL_ERROR_SSL ? -EPROTO : -EPIPE;
}

/* The handshake of a connection opened on early data finished: tell the owner. */
void tg_net__early_confirm(struct tg_conn *c)
{
    c->confirmed = false;
    if (c->h->on_confirmed != NULL)
        c->h->on_confirmed(c);
    if (c->state == TG_CONN_OPEN && c->out != NULL && tg_buf_used(c->out) > 0)
        tg_conn_flush(c); /* what waited for the Finished */
}

/* The owner takes no bytes now but the handshake must go on (its Finished is what the client
 * waits on): early data is kept in early_in (OpenSSL refuses more than TG_TLS_EARLY_MAX). */
void tg_net__early_advance(struct tg_conn *c)
{
    while (c->state == TG_CONN_OPEN && c->early) {
        struct tg_buf *b = early_in(c);
        tg_buf_compact(b);
        size_t room = b->cap - b->len;
        if (room == 0)
            break;
        ssize_t n = tg_net__early_recv(c, b->data + b->len, room);
        if (n > 0) {
            b->len += (size_t)n;
            continue;
        }
        if (n == -EAGAIN)
            break;
        if (n == 0) {
            c->rd_eof = true;
            c->h->on_read(c);
        } else {
            c->h->on_error(c, (int)n, false);
            tg_conn_close(c);
        }
        return;
    }
    if (c->early_in != NULL && tg_buf_used(c->early_in) == 0)
        tg_net__early_in_free(c);
    if (c->state == TG_CONN_OPEN && c->confirmed)
        tg_net__early_confirm(c);
}
