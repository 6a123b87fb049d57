/* The tcp protocol handler: a client connection (TLS or plain) joined to one connection to the
 * listener's backend (plain or TLS), optionally announced with a PROXY protocol v2 header. */
#include "proxy/internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/x509.h>

#include "core/addr.h"
#include "core/log.h"

#define PP2_MAX 1024

/* Writes the PROXY v2 header for c (client address, listener address, TLS TLVs) in front of
 * anything in c's input, which the tunnel then sends to the backend first. */
static bool add_proxy_header(struct tg_client *c)
{
    struct sockaddr_storage src, dst;
    socklen_t dl = sizeof(dst);
    /* The client as the gateway knows it: with PROXY protocol in, the address the balancer's
     * header named, not the balancer's own. */
    if (c->info.peer.family == 0)
        return false;
    tg_addr_unpack(&c->info.peer, &src);
    if (getsockname(c->conn.fd, (struct sockaddr *)&dst, &dl) != 0)
        return false;
    struct tg_pp2_tls tls = {0};
    SSL *ssl = c->conn.ssl;
    char cn[256] = "";
    if (ssl != NULL) {
        tls.version = SSL_get_version(ssl);
        tls.cipher = SSL_get_cipher_name(ssl);
        tls.sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
        /* The client certificate, when mutual TLS took one (haproxy's send-proxy-v2-ssl-cn). */
        X509 *leaf = SSL_get0_peer_certificate(ssl);
        if (leaf != NULL) {
            tls.verify_failed = SSL_get_verify_result(ssl) != X509_V_OK;
            if (X509_NAME_get_text_by_NID(X509_get_subject_name(leaf), NID_commonName, cn,
                                          sizeof(cn)) > 0)
                tls.cn = cn;
            else
                tls.cn = ""; /* a certificate without a CN still sets PP2_CLIENT_CERT_CONN */
        }
    }
    uint8_t hdr[PP2_MAX];
    size_t n = tg_pp2_build(hdr, sizeof(hdr), &src, &dst, ssl ? &tls : NULL);
    if (n == 0)
        return false;
    struct tg_buf *in = &c->conn.in;
    tg_conn_buf_get(c->conn.w, in, 64 * 1024);
    tg_buf_compact(in);
    if (in->cap - in->len < n)
        return false;
    memmove(in->data + n, in->data, in->len);
    memcpy(in->data, hdr, n);
    in->len += n;
    return true;
}

static void backend_open(struct tg_bconn *b, void *arg)
{
    struct tg_client *c = arg;
    c->pending = NULL;
    if (c->info.lc->proxy_protocol_out && !add_proxy_header(c)) {
        tg_log_error("client %s listener=%s: cannot build the PROXY protocol header",
                     TG__PEER(&c->info), c->info.lc->name);
        tg__backend_close(b);
        tg__client_close(c);
        return;
    }
    tg__tunnel_start(c, b);
}

static void backend_failed(void *arg, enum tg_pfail f, const char *detail)
{
    struct tg_client *c = arg;
    c->pending = NULL;
    TG_STAT_INC(&c->conn.w->stats, backend_errors);
    tg_log_info("client %s listener=%s: stream closed: no connection to backend %s (%s%s%s)",
                TG__PEER(&c->info), c->info.lc->name,
                tg__cfg(c)->backends[c->info.lc->backend_idx].name, tg__pfail_info(f)->token,
                detail && detail[0] ? ": " : "", detail ? detail : "");
    tg__client_close(c);
}

static const struct tg_bconn_user tcp_user = {backend_open, backend_failed};

static void on_open(struct tg_conn *conn)
{
    struct tg_client *c = tg__client_of(conn);
    tg__client_opened(c);
    if (tg_conn_closed(conn))
        return; /* a resumed session whose certificate no longer passes */
    c->phase = TG_CP_CONNECTING;
    const struct tg_backend_conf *be = &tg__cfg(c)->backends[c->info.lc->backend_idx];
    tg__backend_open(conn->w, c->info.snap, &c->info, be, false, &tcp_user, c, &c->pending);
}

static bool want_read(const struct tg_conn *conn)
{
    (void)conn;
    return false; /* until the tunnel takes over */
}

static size_t read_room(struct tg_conn *conn)
{
    (void)conn;
    return 0;
}

static void on_read(struct tg_conn *conn)
{
    tg__client_close(tg__client_of(conn));
}

static void on_error(struct tg_conn *conn, int err, bool writing)
{
    (void)err;
    (void)writing;
    tg__client_close(tg__client_of(conn));
}

static void on_timer(struct tg_conn *conn)
{
    struct tg_client *c = tg__client_of(conn);
    if (c->timer_kind == TG_CT_HANDSHAKE)
        tg__client_handshake_timeout(c);
}

static void on_drain_worker(struct tg_client *c)
{
    if (c->phase != TG_CP_TUNNEL)
        tg__client_close(c); /* open tunnels run until timeouts.shutdown */
}

/* Closing before the tunnel started: the backend connection being opened goes too. */
static void on_close(struct tg_client *c)
{
    if (c->pending != NULL) {
        struct tg_bconn *b = c->pending;
        c->pending = NULL;
        tg__backend_close(b);
    }
}

static const struct tg_conn_handler tcp_conn = {
    .on_open = on_open,
    .on_fail = tg__client_on_fail,
    .read_room = read_room,
    .want_read = want_read,
    .on_read = on_read,
    .on_error = on_error,
    .on_timer = on_timer,
    .on_closed = tg__client_on_closed,
};

const struct tg_proto tg__proto_tcp = {
    .name = "tcp",
    .conn = &tcp_conn,
    .on_drain = on_drain_worker,
    .on_close = on_close,
};
