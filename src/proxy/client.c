/* Client connections: accept, the TLS handshake and its failures, the protocol handler chosen
 * per listener, close and drain. The bytes themselves move through the connection engine. */
#include "proxy/internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "core/log.h"

/* ---- lifecycle ---- */

void tg__client_on_closed(struct tg_conn *conn)
{
    struct tg_client *c = tg__client_of(conn);
    struct tg_worker *w = conn->w;
    if (c->proto->on_free != NULL)
        c->proto->on_free(c);
    TG_STAT_DEC(&w->stats, l_open[c->info.snap->lslot[tg__client_lidx(c)]]);
    tg_snapshot_unref(c->info.snap);
    if (c->info.fwd != NULL) {
        free(c->info.fwd->xfcc);
        free(c->info.fwd->cert);
        free(c->info.fwd->chain);
        free(c->info.fwd);
    }
    uint64_t hold = c->peer_hold;
    free(c);
    tg_worker_conn_done(w, hold);
    struct tg_proxy_worker *pw = tg_pw(w);
    if (w->draining && pw->n_clients == 0)
        tg_worker_drained(w);
}

/* The client's handshake no longer waits for its revocation fetch (mtls.c runs the fetch). */
static void fetch_wait_remove(struct tg_client *c, struct tg__waiter *wt)
{
    if (wt != NULL)
        wt->c = NULL;
    c->fetch_waiting = false;
}

/* Where a waiting client is among its worker's fetches (*of: that fetch), or NULL. */
static struct tg__waiter *fetch_waiter(struct tg_client *c, struct tg__fetch **of)
{
    for (struct tg__fetch *p = tg_pw(c->conn.w)->fetches; p != NULL; p = p->next)
        for (size_t i = 0; i < p->n_waiters; i++)
            if (p->waiters[i].c == c) {
                *of = p;
                return &p->waiters[i];
            }
    return NULL;
}

/* A closing client stops waiting for its revocation fetch. */
static void fetch_leave(struct tg_client *c)
{
    if (!c->fetch_waiting)
        return;
    struct tg__fetch *p;
    fetch_wait_remove(c, fetch_waiter(c, &p));
    /* OpenSSL's job is paused inside our verification: let it finish before the SSL goes. */
    tg_tls_server_abandon(c->conn.ssl);
}

/* The handshake timer fired while the handshake waits for a fetch (mtls.c armed it for the end
 * of the waiting time): it stops waiting (logged), its revocation status is unknown, and it goes
 * on with the rest of timeouts.handshake. False when it was not waiting: a real timeout. */
static bool fetch_wait_expired(struct tg_client *c)
{
    struct tg__fetch *p = NULL;
    struct tg__waiter *wt = c->fetch_waiting ? fetch_waiter(c, &p) : NULL;
    if (wt == NULL)
        return false;
    uint64_t now = uv_now(&c->conn.w->loop);
    uint64_t end = tg__client_accepted_ms(c, now) + tg__cfg(c)->timeouts.handshake_ms;
    tg_log_info("client %s listener=%s: stopped waiting for the %s from %s after %" PRIu64
                " ms, to finish the TLS handshake within %" PRIu64
                " ms (timeouts.handshake): its revocation status is unknown",
                TG__PEER(&c->info), c->info.lc->name, tg_tls_fetch_what(p->f),
                tg_tls_fetch_url(p->f), now - wt->since_ms, tg__cfg(c)->timeouts.handshake_ms);
    fetch_wait_remove(c, wt);
    tg_tls_server_stop_waiting(c->conn.ssl);
    tg_conn_timer(&c->conn, end > now ? end - now : 1); /* the rest of the handshake */
    tg_conn_handshake_resume(&c->conn);
    return true;
}

void tg__client_leave_out_cert_chain(const struct tg_client_info *i)
{
    struct tg_client *c = (struct tg_client *)((char *)i - offsetof(struct tg_client, info));
    if (c->info.fwd == NULL || c->info.fwd->chain == NULL)
        return;
    tg_log_info("client %s listener=%s: Client-Cert-Chain left out of requests forwarded on this "
                "connection: its %zu bytes do not fit the forwarded head (limits.max_header_bytes)",
                TG__PEER(&c->info), c->info.lc->name, strlen(c->info.fwd->chain));
    free(c->info.fwd->chain);
    c->info.fwd->chain = NULL;
}

static void client_close(struct tg_client *c, bool failed)
{
    if (tg_conn_closed(&c->conn))
        return;
    struct tg_proxy_worker *pw = tg_pw(c->conn.w);
    if (c->prev)
        c->prev->next = c->next;
    else
        pw->clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    pw->n_clients--;
    fetch_leave(c);
    if (c->proto->on_close != NULL)
        c->proto->on_close(c);
    if (failed) /* first: a tunnel's output is its backend's input */
        tg_conn_abort(&c->conn);
    if (c->tun != NULL)
        tg_conn_close(&c->tun->b->conn);
    tg_conn_close(&c->conn);
}

void tg__client_close(struct tg_client *c)
{
    client_close(c, false);
}

void tg__client_abort(struct tg_client *c, const char *why)
{
    tg_log_debug("client %s listener=%s: closing: %s", TG__PEER(&c->info), c->info.lc->name, why);
    client_close(c, true);
}

/* ---- handshake failures ---- */

static void hs_failed(struct tg_client *c, enum tg_tls_fail f)
{
    const struct tg_tls_fail_info *fi = tg_tls_fail_info(f);
    char detail[1024] = "";
    if (c->conn.ssl != NULL)
        tg_tls_fail_detail(c->conn.ssl, f, detail, sizeof(detail));
    if (strcmp(detail, fi->sentence) == 0)
        detail[0] = '\0';
    TG_STAT_INC(&c->conn.w->stats, hs_fail[f]);
    tg_log(fi->client_caused ? TG_LOG_INFO : TG_LOG_ERROR,
           "TLS handshake failed: peer=%s listener=%s reason=%s: %s%s%s%s%s%s", TG__PEER(&c->info),
           c->info.lc->name, fi->token, fi->sentence, detail[0] ? " (" : "", detail,
           detail[0] ? ")" : "", fi->config_key ? "; to change this, see " : "",
           fi->config_key ? fi->config_key : "");
}

static void answer_plain_http(struct tg_client *c)
{
    static const char body[] = "This port speaks TLS: use https:// to reach it.\n";
    char resp[256];
    int n = snprintf(resp, sizeof(resp),
                     "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     sizeof(body) - 1, body);
    ssize_t r = send(c->conn.fd, resp, (size_t)n, MSG_NOSIGNAL);
    (void)r;
}

/* Answers an SSLv2-format client hello as OpenSSL does a first hello it refuses: a fatal
 * protocol_version alert in a record whose version is the hello's (TLS 1.2's for SSLv2 itself and
 * for anything newer), which tlsfuzzer's sslv2hello cases expect. The sniff has read the hello's
 * start (and kept its version, conn.v2_minor); the rest is read too because closing a socket with
 * unread bytes makes the kernel send a reset, and a reset makes the client drop the alert unread.
 */
static void refuse_sslv2(struct tg_client *c)
{
    uint8_t alert[] = {0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x46};
    if (c->conn.v2_minor < 0x03)
        alert[2] = c->conn.v2_minor;
    /* An SSLv2 record is at most 32 KiB; past that the client is streaming, not saying hello. */
    uint8_t sink[4096];
    for (size_t got = 0; got < 64 * 1024;) {
        ssize_t r = recv(c->conn.fd, sink, sizeof(sink), MSG_DONTWAIT);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    ssize_t w = send(c->conn.fd, alert, sizeof(alert), MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)w; /* best effort: the failure is logged and counted either way */
}

/* Counts what became of the client's TLS 1.3 early data; a replay is logged (once: the
 * connection goes on without early data, its requests sent again after the handshake). */
static void early_noted(struct tg_client *c)
{
    if (c->conn.ssl == NULL || c->early_noted)
        return;
    c->early_noted = true;
    enum tg_tls_early e = tg_tls_early_status(c->conn.ssl);
    if (e == TG_TLS_EARLY_NONE)
        return;
    TG_STAT_INC(&c->conn.w->stats, early_data[e]);
    if (e == TG_TLS_EARLY_REPLAY || e == TG_TLS_EARLY_FULL)
        tg_log_info("client %s listener=%s: TLS early data refused: reason=%s: %s; the handshake "
                    "goes on without it",
                    TG__PEER(&c->info), c->info.lc->name, tg_tls_early_token(e),
                    e == TG_TLS_EARLY_REPLAY
                        ? "its ticket already carried early data within the replay window (a "
                          "replayed ClientHello, or a ticket used twice)"
                        : "the anti-replay register has no free slot for its ticket");
    else
        tg_log_debug("client %s listener=%s: TLS early data %s", TG__PEER(&c->info),
                     c->info.lc->name, tg_tls_early_token(e));
}

void tg__client_on_fail(struct tg_conn *conn, enum tg_conn_fail why, int err)
{
    struct tg_client *c = tg__client_of(conn);
    if (why == TG_CONN_FAIL_SNIFF) {
        switch (conn->sniff) {
        case TG_SNIFF_HTTP:
            answer_plain_http(c);
            hs_failed(c, TG_TLS_FAIL_PLAIN_HTTP);
            break;
        case TG_SNIFF_SSLV2:
            refuse_sslv2(c);
            hs_failed(c, TG_TLS_FAIL_SSLV2);
            break;
        case TG_SNIFF_NEED_MORE:
            hs_failed(c, TG_TLS_FAIL_HANGUP);
            break;
        default:
            hs_failed(c, TG_TLS_FAIL_NOT_TLS);
            break;
        }
    } else {
        early_noted(c); /* a replayed ClientHello never finishes its handshake */
        hs_failed(c, tg_tls_classify(conn->ssl, conn->ssl_error, err == EPROTO ? 0 : err));
    }
    tg__client_close(c);
}

/* The verified client certificate as the header values tls.client_auth.forward asks for. They
 * live as long as the connection, so request heads can point at them. */
static bool client_identity(struct tg_client *c)
{
    const struct tg_client_auth_conf *ca = &c->info.lc->tls.client_auth;
    X509 *leaf = SSL_get0_peer_certificate(c->conn.ssl);
    if (ca->mode == TG_CAUTH_NONE || leaf == NULL ||
        SSL_get_verify_result(c->conn.ssl) != X509_V_OK)
        return true;
    if (SSL_session_reused(c->conn.ssl)) {
        /* A resumed session skipped verification. The allow list and truststore are those
         * that verified it (a reload changes the session id context), but revocation data may
         * have changed since. */
        char detail[512];
        enum tg_tls_fail f = tg_tls_server_client_recheck(c->info.snap->tls[tg__client_lidx(c)],
                                                          leaf, detail, sizeof(detail));
        if (f != TG_TLS_FAIL_NONE) {
            const struct tg_tls_fail_info *fi = tg_tls_fail_info(f);
            TG_STAT_INC(&c->conn.w->stats, hs_fail[f]);
            tg_log_info("TLS handshake failed: peer=%s listener=%s reason=%s: %s (%s; resumed "
                        "session)",
                        TG__PEER(&c->info), c->info.lc->name, fi->token, fi->sentence, detail);
            return false;
        }
    }
    c->has_cert = true;
    if (c->info.lc->mode != TG_MODE_HTTP || ca->forward == TG_FWD_NONE)
        return true;
    struct tg_cert_fields *fwd = c->info.fwd = tg_xcalloc(1, sizeof(*fwd));
    if (ca->forward == TG_FWD_XFCC || ca->forward == TG_FWD_BOTH)
        fwd->xfcc = tg_tls_xfcc(leaf);
    if (ca->forward == TG_FWD_RFC9440 || ca->forward == TG_FWD_BOTH) {
        fwd->cert = tg_tls_rfc9440_cert(leaf);
        /* Only what was verified: a client may append any certificates it likes. */
        STACK_OF(X509) *v =
            tg_tls_server_verified_chain(c->info.snap->tls[tg__client_lidx(c)], c->conn.ssl);
        fwd->chain = tg_tls_rfc9440_chain(v, ca->forward_anchor);
        sk_X509_pop_free(v, X509_free);
    }
    return true;
}

/* Counts a handshake's version and suite (worker thread: the only writer of w's stats). */
static void count_negotiated(struct tg_stats *st, SSL *ssl)
{
    int v = SSL_version(ssl);
    if (v >= TLS1_VERSION && v <= TLS1_3_VERSION)
        TG_STAT_INC(st, tls_versions[v - TLS1_VERSION]);
    const char *name = SSL_get_cipher_name(ssl);
    if (name == NULL)
        return;
    for (int i = 0; i < TG_NET_TLS_SUITES; i++) {
        const char *have = atomic_load_explicit(&st->suite_name[i], memory_order_acquire);
        if (have == NULL)
            atomic_store_explicit(&st->suite_name[i], name, memory_order_release);
        if (have == NULL || have == name || strcmp(have, name) == 0) {
            TG_STAT_INC(st, suite_count[i]);
            return;
        }
    }
}

void tg__client_opened(struct tg_client *c)
{
    struct tg_conn *conn = &c->conn;
    if (conn->ssl != NULL) {
        /* Async jobs were only for verification waiting on a fetch. */
        SSL_clear_mode(conn->ssl, SSL_MODE_ASYNC);
        TG_STAT_INC(&conn->w->stats, handshakes);
        if (SSL_session_reused(conn->ssl))
            TG_STAT_INC(&conn->w->stats, resumed);
        count_negotiated(&conn->w->stats, conn->ssl);
        early_noted(c);
        const char *sni = SSL_get_servername(conn->ssl, TLSEXT_NAMETYPE_host_name);
        tg_log_debug("client %s listener=%s: TLS established %s %s sni=%s", TG__PEER(&c->info),
                     c->info.lc->name, SSL_get_version(conn->ssl), SSL_get_cipher_name(conn->ssl),
                     sni ? sni : "-");
        if (!client_identity(c)) {
            tg__client_close(c); /* callers check tg_conn_closed() after this */
            return;
        }
        struct tg_client_info *i = &c->info;
        const unsigned char *alpn;
        unsigned alpn_len;
        SSL_get0_alpn_selected(conn->ssl, &alpn, &alpn_len);
        if (alpn_len == 10 && memcmp(alpn, "acme-tls/1", 10) == 0) {
            /* A TLS-ALPN-01 validation (RFC 8737): the handshake was all it came for. */
            tg_log_info("client %s listener=%s: ACME tls-alpn-01 challenge answered for %s",
                        TG__PEER(&c->info), c->info.lc->name, sni ? sni : "-");
            tg__client_close(c);
            return;
        }
        i->has_cert = c->has_cert;
    }
    if (conn->early) {
        /* Opened on early data: the handshake timer stays armed until the Finished comes (a
         * replayed ClientHello never brings one). */
        c->info.early = true;
        return;
    }
    if (conn->ssl != NULL)
        tg_tls_hello_release(conn->ssl);
    c->timer_kind = TG_CT_NONE;
    tg_conn_timer(conn, 0);
}

void tg__client_confirmed(struct tg_client *c)
{
    c->info.early = false;
    tg_tls_hello_release(c->conn.ssl);
    if (c->timer_kind == TG_CT_HANDSHAKE) {
        c->timer_kind = TG_CT_NONE;
        tg_conn_timer(&c->conn, 0);
    }
    tg_log_debug("client %s listener=%s: TLS handshake finished after early data",
                 TG__PEER(&c->info), c->info.lc->name);
}

void tg__client_handshake_timeout(struct tg_client *c)
{
    if (fetch_wait_expired(c))
        return;
    early_noted(c);
    const struct tg_tls_fail_info *fi = tg_tls_fail_info(TG_TLS_FAIL_TIMEOUT);
    TG_STAT_INC(&c->conn.w->stats, hs_fail[TG_TLS_FAIL_TIMEOUT]);
    tg_log_info("TLS handshake failed: peer=%s listener=%s reason=%s: %s (no handshake "
                "within %" PRIu64 " ms); to change this, see %s",
                TG__PEER(&c->info), c->info.lc->name, fi->token, fi->sentence,
                tg__cfg(c)->timeouts.handshake_ms,
                fi->config_key ? fi->config_key : "timeouts.handshake");
    tg__client_close(c);
}

/* ---- accept ---- */

void tg__client_accept(struct tg_worker *w, size_t lidx, int fd,
                       const struct sockaddr_storage *peer, uint64_t hold, uint64_t accepted_ms,
                       const struct tg_proto *proto)
{
    struct tg_client *c = tg_xcalloc(1, sizeof(*c));
    struct tg_proxy_worker *pw = tg_pw(w);
    c->info.snap = tg_snapshot_ref(w->snap);
    c->peer_hold = (uint32_t)hold;
    c->info.lc = &c->info.snap->cfg->listeners[lidx];
    TG_STAT_INC(&w->stats, l_open[c->info.snap->lslot[lidx]]);
    c->proto = proto;
    tg_addr_pack(peer, &c->info.peer);
    c->info.conn = &c->conn;
    const struct tg_client_auth_conf *ca = &c->info.lc->tls.client_auth;
    for (size_t i = 0; ca->from_header != NULL && i < ca->n_header_from; i++)
        c->info.header_trusted = c->info.header_trusted || tg_cidr_match(&ca->header_from[i], peer);
    c->info.tls = c->info.snap->tls[lidx] != NULL;
    uint64_t now = uv_now(&w->loop);
    if (accepted_ms > now)
        accepted_ms = now;
    c->accepted_lo = (uint32_t)accepted_ms;
    c->next = pw->clients;
    if (pw->clients)
        pw->clients->prev = c;
    pw->clients = c;
    pw->n_clients++;
    SSL *ssl = NULL;
    if (c->info.snap->tls[lidx] != NULL) {
        ssl = SSL_new(tg_tls_server_ctx(c->info.snap->tls[lidx]));
        if (ssl == NULL) {
            ERR_clear_error();
            tg_log_error("client %s listener=%s: cannot create a TLS session", TG__PEER(&c->info),
                         c->info.lc->name);
        } else {
            SSL_set_accept_state(ssl);
            /* One read() fills OpenSSL's buffer with every record available instead of two
             * reads (header, body) per record; SSL_has_pending() tells us when to read again. */
            SSL_set_read_ahead(ssl, 1);
            /* Output is appended to and compacted between write retries. */
            SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
        }
    }
    tg_conn_init(&c->conn, w, fd, ssl, ssl ? &tg_transport_tls_server : &tg_transport_plain,
                 c->proto->conn, c, false);
    c->conn.early_ok = ssl != NULL && c->info.lc->tls.early_data;
    if (c->info.snap->tls[lidx] != NULL && ssl == NULL) {
        tg__client_close(c);
        return;
    }
    if (ssl != NULL) {
        c->phase = TG_CP_HANDSHAKE;
        c->timer_kind = TG_CT_HANDSHAKE;
        /* One budget from the accept: a PROXY header read first took part of it. */
        uint64_t hs = c->info.snap->cfg->timeouts.handshake_ms, spent = now - accepted_ms;
        tg_conn_timer(&c->conn, spent < hs ? hs - spent : 1);
        tg_conn_start(&c->conn);
    } else {
        tg_conn_start(&c->conn);
        c->proto->conn->on_open(&c->conn);
    }
}
