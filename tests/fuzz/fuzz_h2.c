/* Fuzz harness for the HTTP/2 front: client bytes into a server session wired as the gateway wires
 * it (tg__h2_start on a client connection, the proxy's forwarding handler, routes to the status
 * page so no backend is needed), fed in data-derived pieces through the connection handler's
 * on_read; then the connection is closed and its teardown run. The first byte picks the piece
 * size (1 + byte * 16). Crashes, sanitizer reports and leaks are the findings. */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config/config.h"
#include "core/err.h"
#include "proxy/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char config_json[] =
    "{\"version\": 1, \"workers\": 1, \"state_dir\": \"/tmp\",\n"
    " \"listeners\": [{\"name\": \"fuzz\", \"address\": \"127.0.0.1:1\",\n"
    "   \"tls\": {\"disabled\": true},\n"
    "   \"routes\": [{\"path_prefix\": \"/\", \"backend\": \"status\"}]}],\n"
    " \"backends\": {\"status\": {\"builtin\": \"status\"}},\n"
    " \"limits\": {\"max_header_bytes\": 4096, \"max_headers\": 16}}\n";

static struct tg_net net;
static struct tg_worker worker;
static struct tg_snapshot *snap;

static void setup(void)
{
    struct tg_config *cfg = NULL;
    struct tg_err err;
    tg_err_init(&err);
    if (tg_config_load_string(config_json, sizeof(config_json) - 1, "fuzz.json", "/tmp", &cfg,
                              &err) != 0 ||
        tg_snapshot_new(cfg, 1, &snap, &err) != 0)
        abort();
    tg_err_close(&err);
    net.access_log_fd = -1;
    worker.net = &net;
    worker.snap = snap;
    if (uv_loop_init(&worker.loop) != 0)
        abort();
    worker.proto = tg_xcalloc(1, sizeof(struct tg_proxy_worker));
}

/* Reads what the session wrote, so its socket never fills. */
static void drain(int fd)
{
    char sink[65536];
    while (recv(fd, sink, sizeof(sink), MSG_DONTWAIT) > 0)
        ;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (snap == NULL)
        setup();
    if (size < 1)
        return 0;
    size_t piece = 1 + (size_t)data[0] * 16;
    data++;
    size--;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        abort();
    /* the engine's sockets are non-blocking from the start (a poll handle kept for the
     * descriptor's number does not set it again): as accept4 and socket make them */
    if (fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK) != 0)
        abort();
    struct tg_proxy_worker *pw = worker.proto;
    struct tg_client *c = tg_xcalloc(1, sizeof(*c));
    c->info.snap = tg_snapshot_ref(snap);
    c->info.lc = &snap->cfg->listeners[0];
    c->proto = &tg__proto_http1;
    c->info.peer = (struct tg_addr_packed){.family = AF_INET, .port = 9, .addr = {127, 0, 0, 1}};
    c->info.conn = &c->conn;
    pw->clients = c;
    pw->n_clients = 1;
    atomic_fetch_add(&net.active_conns, 1);
    tg_conn_init(&c->conn, &worker, sv[0], NULL, &tg_transport_plain, c->proto->conn, c, false);
    tg_conn_start(&c->conn);
    if (!tg__h2_start(c))
        abort();
    for (size_t off = 0; off < size && !tg_conn_closed(&c->conn);) {
        struct tg_conn *conn = &c->conn;
        tg_conn_buf_get(&worker, &conn->in, tg__client_in_cap(c));
        size_t room = conn->in.cap - conn->in.len;
        size_t n = size - off < piece ? size - off : piece;
        if (n > room)
            n = room;
        if (n == 0)
            break;
        memcpy(conn->in.data + conn->in.len, data + off, n);
        conn->in.len += n;
        off += n;
        conn->h->on_read(conn);
        if (!tg_conn_closed(conn) && conn->h->after_read != NULL)
            conn->h->after_read(conn);
        drain(sv[1]);
    }
    tg__client_close(c);
    while (uv_run(&worker.loop, UV_RUN_NOWAIT) != 0)
        ;
    close(sv[1]);
    return 0;
}
