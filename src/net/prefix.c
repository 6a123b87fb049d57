/* Bytes read before OpenSSL, handed to it first: the server-side sniff reads the client's first
 * bytes itself (one recv, where a MSG_PEEK and then OpenSSL's own read were two system calls per
 * connection) and gives them to the handshake through a filter BIO in front of the socket BIO.
 * The filter leaves the chain as soon as OpenSSL has taken its bytes. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>

#include "core/core.h"
#include "net/internal.h"

struct prefix {
    const char *data; /* the caller's bytes during one TLS call, or own */
    char *own;        /* a copy when bytes are left after the call */
    size_t off, len;
};

static BIO_METHOD *prefix_method;
static int prefix_type;
static pthread_once_t prefix_once = PTHREAD_ONCE_INIT;
/* One filter per thread is reused from connection to connection (a BIO_new costs a lock and
 * three allocations); it is freed when its thread ends. */
static pthread_key_t spare_key;
static __thread BIO *spare;

static int prefix_read(BIO *b, char *out, int outl)
{
    struct prefix *p = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (outl <= 0)
        return 0;
    if (p != NULL && p->off < p->len) {
        size_t n = TG_MIN((size_t)outl, p->len - p->off);
        memcpy(out, p->data + p->off, n);
        p->off += n;
        return (int)n;
    }
    BIO *next = BIO_next(b);
    if (next == NULL)
        return 0;
    int r = BIO_read(next, out, outl);
    BIO_copy_next_retry(b);
    return r;
}

static int prefix_write(BIO *b, const char *in, int inl)
{
    BIO *next = BIO_next(b);
    BIO_clear_retry_flags(b);
    if (next == NULL)
        return 0;
    int r = BIO_write(next, in, inl);
    BIO_copy_next_retry(b);
    return r;
}

static long prefix_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    struct prefix *p = BIO_get_data(b);
    BIO *next = BIO_next(b);
    long held = p != NULL ? (long)(p->len - p->off) : 0;
    if (cmd == BIO_CTRL_PENDING)
        return held + (next != NULL ? BIO_ctrl(next, cmd, num, ptr) : 0);
    if (cmd == BIO_CTRL_EOF && held > 0)
        return 0;
    return next != NULL ? BIO_ctrl(next, cmd, num, ptr) : 0;
}

static int prefix_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static int prefix_destroy(BIO *b)
{
    struct prefix *p = BIO_get_data(b);
    if (p != NULL) {
        free(p->own);
        free(p);
        BIO_set_data(b, NULL);
    }
    return 1;
}

static void spare_free(void *b)
{
    BIO_free(b);
}

static void make_method(void)
{
    if (pthread_key_create(&spare_key, spare_free) != 0)
        return;
    int type = BIO_get_new_index();
    BIO_METHOD *m = type > 0 ? BIO_meth_new(type | BIO_TYPE_FILTER, "tlsgate prefix") : NULL;
    if (m == NULL)
        return;
    if (!BIO_meth_set_read(m, prefix_read) || !BIO_meth_set_write(m, prefix_write) ||
        !BIO_meth_set_ctrl(m, prefix_ctrl) || !BIO_meth_set_create(m, prefix_create) ||
        !BIO_meth_set_destroy(m, prefix_destroy)) {
        BIO_meth_free(m);
        return;
    }
    prefix_type = type | BIO_TYPE_FILTER;
    prefix_method = m;
}

bool tg_net__prefix_push(SSL *ssl, const void *data, size_t len)
{
    pthread_once(&prefix_once, make_method);
    BIO *sock = SSL_get_rbio(ssl);
    if (prefix_method == NULL || sock == NULL)
        return false;
    BIO *f = spare;
    if (f != NULL) {
        spare = NULL;
        pthread_setspecific(spare_key, NULL);
    } else {
        struct prefix *fresh = calloc(1, sizeof(*fresh));
        f = fresh != NULL ? BIO_new(prefix_method) : NULL;
        if (f == NULL) {
            free(fresh);
            return false;
        }
        BIO_set_data(f, fresh);
    }
    if (!BIO_up_ref(sock)) {
        BIO_free(f);
        return false;
    }
    struct prefix *p = BIO_get_data(f);
    p->data = data;
    p->off = 0;
    p->len = len;
    BIO_push(f, sock);     /* the chain's link owns the reference taken above */
    SSL_set0_rbio(ssl, f); /* releases the SSL's own reference to sock */
    return true;
}

int tg_net__prefix_settle(SSL *ssl)
{
    BIO *f = SSL_get_rbio(ssl);
    if (f == NULL || prefix_method == NULL || BIO_method_type(f) != prefix_type)
        return 0;
    struct prefix *p = BIO_get_data(f);
    if (p != NULL && p->off < p->len) {
        if (p->own == NULL) {
            char *copy = malloc(p->len - p->off);
            if (copy == NULL)
                return -1;
            memcpy(copy, p->data + p->off, p->len - p->off);
            p->own = copy;
            p->data = copy;
            p->len -= p->off;
            p->off = 0;
        }
        return 1;
    }
    BIO *sock = BIO_pop(f); /* the link's reference to sock is now ours */
    if (spare == NULL && p != NULL && BIO_up_ref(f)) {
        free(p->own);
        p->own = NULL;
        p->data = NULL;
        p->off = p->len = 0;
        pthread_setspecific(spare_key, f);
        spare = f;
    }
    SSL_set0_rbio(ssl, sock); /* frees f unless it became the spare */
    return 0;
}
