/* `tlsgate run`: load the config, start the workers, handle SIGHUP reloads and SIGTERM drains. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <uv.h>

#include "admin/admin.h"
#include "cli/cli.h"
#include "cli/sandbox.h"
#include "config/config.h"
#include "core/log.h"
#include "net/net.h"
#include "proxy/proxy.h"

struct run_state {
    const char *config_file; /* NULL: embedded default */
    struct tg_net net;
    struct tg_snapshot *snap; /* until the workers run; then the state (admin) holds it */
    /* the config run started with (detached from its snapshot): the sandbox's rules borrow it */
    struct tg_config *start_cfg;
    uint64_t generation;
    int access_fd;
    char *access_path; /* NULL for stdout/stderr/off */
    bool stopping;
    uv_signal_t sig_hup, sig_term, sig_int, sig_usr1;
    /* Session ticket keys: the ring the workers were last given, and how it is renewed (a
     * rotation timer for keys made here, a watch on session_tickets.key_file). */
    struct tg_tls_tickets *tickets;
    uv_timer_t rotate_timer;
    uv_fs_poll_t key_poll;
    char *key_file; /* watched, or NULL */
    uint64_t rotate_ms;
    uint32_t keep;
    bool started; /* the workers run: new rings are published to them */
    /* OCSP staples: checked every second, refreshed in libuv's thread pool, one job at a time. */
    uv_timer_t staple_timer;
    uv_work_t staple_work;
    bool staple_busy;
    /* session_tickets of a config applied off the main thread (tickets_apply) */
    uv_thread_t main_thread;
    uv_async_t tickets_async;
    uv_mutex_t tickets_mu;
    struct tg_tickets_conf tickets_next;
    bool tickets_pending;
    struct tg_tls_tickets *store_ring; /* store etcd: the cluster's ring, to hand to workers */
    /* ACME: looked at every second, run in the thread pool one job at a time; a new
     * certificate reloads. */
    uv_timer_t acme_timer;
    uv_work_t acme_work;
    bool acme_busy, acme_changed;
    struct tg_sandbox *sandbox; /* what the sandbox allows (cli/sandbox.c) */
};

#define STAPLE_CHECK_MS 1000

#define KEY_POLL_MS 1000

static void run_usage(FILE *out)
{
    fprintf(out,
            "usage: tlsgate run [-c FILE]\n"
            "\n"
            "Runs the gateway in the foreground.\n"
            "  -c, --config FILE   config file (JSON); without it the embedded default serves\n"
            "                      https://127.0.0.1:8443/ with a self-signed certificate kept in\n"
            "                      $TLSGATE_STATE_DIR (default ./tlsgate-state)\n"
            "  -h, --help          this text\n"
            "\n"
            "Signals: SIGHUP reloads the config (a bad one changes nothing), SIGTERM/SIGINT drain\n"
            "and stop, SIGUSR1 reopens the access log.\n"
            "Exit codes: 0 clean stop, 1 runtime failure, 2 bad config or usage.\n");
}

static void log_problems(const struct tg_err *err, enum tg_log_level level)
{
    for (size_t i = 0; i < err->n; i++) {
        char *s = tg_err_format(err, i);
        tg_log(err->v[i].sev == TG_SEV_ERROR ? level : TG_LOG_WARN, "%s", s);
        free(s);
    }
}

static int open_access_log(const char *spec, char **path_out)
{
    *path_out = NULL;
    if (spec == NULL)
        return -1;
    if (strcmp(spec, "stdout") == 0)
        return 1;
    if (strcmp(spec, "stderr") == 0)
        return 2;
    int fd = open(spec, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd >= 0)
        *path_out = tg_xstrdup(spec);
    return fd < 0 ? -errno : fd;
}

/* Opens path as the access log; false (logged) when it cannot: the file open before is kept. */
static bool reopen_access_log(struct run_state *rs, const char *path)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
        tg_log_error("cannot open access log \"%s\": %s; still writing to the file open before",
                     path, strerror(errno));
        return false;
    }
    /* Same fd number, new file: workers keep writing without any coordination. */
    dup2(fd, rs->access_fd);
    close(fd);
    return true;
}

static void log_listening(const struct tg_config *cfg)
{
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        const struct tg_listener_conf *lc = &cfg->listeners[i];
        bool tcp = lc->mode == TG_MODE_TCP;
        if (lc->tls.disabled)
            tg_log_info("listener %s on %s: %s (tls.disabled)", lc->name, lc->address,
                        tcp ? "tcp, plaintext" : "plaintext HTTP");
        else
            tg_log_info("listener %s on %s: %s, %s to %s", lc->name, lc->address,
                        tcp ? "tcp over TLS" : "HTTPS", tg_tls_version_name(lc->tls.min_version),
                        tg_tls_version_name(lc->tls.max_version));
    }
}

/* Makes t the ring in use (takes ownership) and gives it to the workers. */
static void tickets_set(struct run_state *rs, struct tg_tls_tickets *t)
{
    tg_tls_tickets_unref(rs->tickets);
    rs->tickets = t;
    rs->net.tickets = t;
    if (rs->started)
        tg_net_publish_tickets(&rs->net, t);
}

static int tickets_read(struct run_state *rs, const char *why_now)
{
    struct tg_tls_tickets *t = NULL;
    char why[512];
    if (tg_tls_tickets_load(rs->key_file, &t, why, sizeof(why)) != 0) {
        if (rs->started)
            tg_log_error("session_tickets.key_file: %s; keeping the %zu key(s) in use", why,
                         tg_tls_tickets_count(rs->tickets));
        else
            tg_log_error("session_tickets.key_file: %s; cannot start", why);
        return -EINVAL;
    }
    tickets_set(rs, t);
    tg_log_info("session ticket keys %s from %s: %zu key(s), the first encrypts", why_now,
                rs->key_file, tg_tls_tickets_count(t));
    return 0;
}

static void on_rotate(uv_timer_t *h)
{
    struct run_state *rs = h->data;
    tickets_set(rs, tg_tls_tickets_rotate(rs->tickets, rs->keep));
    tg_log_debug("session ticket keys rotated (%zu in use)", tg_tls_tickets_count(rs->tickets));
}

static void on_key_file(uv_fs_poll_t *h, int status, const uv_stat_t *prev, const uv_stat_t *curr)
{
    struct run_state *rs = h->data;
    if (status < 0)
        tg_log_warn("session_tickets.key_file %s: %s; keeping the keys in use", rs->key_file,
                    uv_strerror(status));
    else
        tickets_read(rs, "re-read");
}

/* Applies cfg's session_tickets: at start (before the workers run) and on every reload, which
 * also re-reads the key file. Keys made in memory survive reloads, so sessions stay
 * resumable; switching to a key file or back keeps the old keys out (their tickets make full
 * handshakes). Returns -EINVAL only when a key file cannot be read at start. */
static int tickets_configure(struct run_state *rs, const struct tg_tickets_conf *tc)
{
    tg_tls_sessions_bound(tc->client_auth_sessions);
    if (tc->key_file == NULL && tg_admin_state_clustered()) {
        /* store etcd: the cluster's ring comes from the store (tickets_from_store) and is
         * rotated there; until it arrives keys are made here */
        if (rs->rotate_ms != 0) {
            uv_timer_stop(&rs->rotate_timer);
            rs->rotate_ms = 0;
        }
        if (rs->key_file != NULL) {
            uv_fs_poll_stop(&rs->key_poll);
            free(rs->key_file);
            rs->key_file = NULL;
        }
        rs->keep = tc->keep;
        if (rs->tickets == NULL)
            tickets_set(rs, tg_tls_tickets_rotate(NULL, rs->keep));
        return 0;
    }
    if (tc->key_file != NULL) {
        if (rs->rotate_ms != 0) {
            uv_timer_stop(&rs->rotate_timer);
            rs->rotate_ms = 0;
        }
        if (rs->key_file == NULL || strcmp(rs->key_file, tc->key_file) != 0) {
            if (rs->key_file != NULL)
                uv_fs_poll_stop(&rs->key_poll);
            free(rs->key_file);
            rs->key_file = tg_xstrdup(tc->key_file);
            uv_fs_poll_start(&rs->key_poll, on_key_file, rs->key_file, KEY_POLL_MS);
        }
        return tickets_read(rs, rs->started ? "re-read" : "read") != 0 && !rs->started ? -EINVAL
                                                                                       : 0;
    }
    bool was_file = rs->key_file != NULL;
    if (was_file) {
        uv_fs_poll_stop(&rs->key_poll);
        free(rs->key_file);
        rs->key_file = NULL;
    }
    rs->keep = tc->keep;
    if (rs->tickets == NULL || was_file)
        tickets_set(rs, tg_tls_tickets_rotate(NULL, rs->keep));
    uint64_t ms = (uint64_t)tc->rotate_seconds * 1000;
    if (ms != rs->rotate_ms) {
        rs->rotate_ms = ms;
        uv_timer_start(&rs->rotate_timer, on_rotate, ms, ms);
    }
    return 0;
}

/* The staple publisher: the thread that changed a response hands the new set to the workers. */
static void publish_staples(struct tg_tls_staples *set, void *arg)
{
    tg_net_publish_staples(arg, set);
}

static void staple_work(uv_work_t *w)
{
    tg_tls_staples_refresh(false);
}

static void staple_done(uv_work_t *w, int status)
{
    struct run_state *rs = w->data;
    rs->staple_busy = false;
}

static void on_staple_timer(uv_timer_t *h)
{
    struct run_state *rs = h->data;
    if (rs->staple_busy || !tg_tls_staples_due())
        return;
    rs->staple_work.data = rs;
    if (uv_queue_work(uv_default_loop(), &rs->staple_work, staple_work, staple_done) == 0)
        rs->staple_busy = true;
}

static void reload(struct run_state *rs, const char *why);

/* A truststore that does not load leaves the placeholders served and nothing obtained. */
static void acme_configure(const struct tg_config *cfg)
{
    struct tg_err err;
    tg_err_init(&err);
    if (tg_acme_configure(cfg, &err) != 0)
        log_problems(&err, TG_LOG_ERROR);
    tg_err_close(&err);
}

static void acme_work(uv_work_t *w)
{
    struct run_state *rs = w->data;
    rs->acme_changed = tg_acme_run();
}

static void acme_done(uv_work_t *w, int status)
{
    struct run_state *rs = w->data;
    rs->acme_busy = false;
    if (status == 0 && rs->acme_changed && !rs->stopping)
        reload(rs, "ACME: a new certificate");
}

static void on_acme_timer(uv_timer_t *h)
{
    struct run_state *rs = h->data;
    if (rs->acme_busy || rs->stopping || !tg_acme_due())
        return;
    rs->acme_work.data = rs;
    if (uv_queue_work(uv_default_loop(), &rs->acme_work, acme_work, acme_done) == 0)
        rs->acme_busy = true;
}

/* The session_tickets of a config being applied. The ring's timer and file watch live on the
 * main loop: applied there (SIGHUP, before the snapshot is published), they take effect at once;
 * applied on a pool thread (the admin API), the main loop takes them through tickets_async. */
static void tickets_apply(struct run_state *rs, const struct tg_tickets_conf *tc)
{
    uv_thread_t self = uv_thread_self();
    if (rs->stopping)
        return; /* the main loop is closing its handles */
    if (uv_thread_equal(&self, &rs->main_thread)) {
        tickets_configure(rs, tc);
        return;
    }
    uv_mutex_lock(&rs->tickets_mu);
    free(rs->tickets_next.key_file);
    rs->tickets_next = *tc;
    rs->tickets_next.key_file = tc->key_file ? tg_xstrdup(tc->key_file) : NULL;
    rs->tickets_next.key_file_path = NULL;
    rs->tickets_pending = true;
    uv_mutex_unlock(&rs->tickets_mu);
    uv_async_send(&rs->tickets_async);
}

static void on_tickets_async(uv_async_t *h)
{
    struct run_state *rs = h->data;
    uv_mutex_lock(&rs->tickets_mu);
    struct tg_tickets_conf tc = rs->tickets_next;
    bool pending = rs->tickets_pending;
    struct tg_tls_tickets *ring = rs->store_ring;
    rs->store_ring = NULL;
    rs->tickets_next.key_file = NULL;
    rs->tickets_pending = false;
    uv_mutex_unlock(&rs->tickets_mu);
    if (pending)
        tickets_configure(rs, &tc);
    free(tc.key_file);
    if (ring != NULL && rs->key_file == NULL && !rs->stopping)
        tickets_set(rs, ring);
    else
        tg_tls_tickets_unref(ring);
}

/* store etcd: the cluster's ring, on the store's thread; the main loop hands it to the workers
 * (a key_file in the config wins over it). The store's thread is joined before the async handle
 * closes (tg_admin_state_unfollow). */
static void tickets_from_store(const unsigned char *keys, size_t n, void *arg)
{
    struct run_state *rs = arg;
    struct tg_tls_tickets *t = tg_tls_tickets_from_keys(keys, n);
    if (t == NULL)
        return;
    uv_mutex_lock(&rs->tickets_mu);
    tg_tls_tickets_unref(rs->store_ring);
    rs->store_ring = t;
    uv_mutex_unlock(&rs->tickets_mu);
    uv_async_send(&rs->tickets_async);
}

/* Runs under the config state's lock when a change is applied (SIGHUP or the admin API), on
 * whichever thread applied it: what the workers cannot take from a snapshot. */
static void on_applied(const struct tg_config *old, const struct tg_config *cur, void *arg)
{
    struct run_state *rs = arg;
    if ((old->log.access_log == NULL) != (cur->log.access_log == NULL) ||
        (old->log.access_log && strcmp(old->log.access_log, cur->log.access_log) != 0)) {
        if (rs->access_path != NULL && cur->log.access_log != NULL &&
            strcmp(cur->log.access_log, "stdout") != 0 &&
            strcmp(cur->log.access_log, "stderr") != 0) {
            reopen_access_log(rs, cur->log.access_log);
            char *old_path = rs->access_path;
            rs->access_path = tg_xstrdup(cur->log.access_log);
            free(old_path);
        } else {
            tg_log_warn("log.access_log changed: this change takes effect at the next restart");
        }
    }
    tickets_apply(rs, &cur->tickets);
    acme_configure(cur);
    if (cur->workers != rs->net.n_workers)
        tg_log_warn("workers changed to %u: this change takes effect at the next restart",
                    cur->workers);
}

static void reload(struct run_state *rs, const char *why)
{
    struct tg_err err;
    tg_err_init(&err);
    const char *what = rs->config_file ? rs->config_file : "the embedded default";
    tg_log_info("%s: reloading %s", why, what);
    uint64_t version = 0;
    bool same = false;
    if (tg_admin_state_reload(&err, &version, &same) != 0) {
        log_problems(&err, TG_LOG_ERROR);
        tg_log_error("reload failed with %zu error(s): still serving the previous config "
                     "(generation %llu)",
                     tg_err_count(&err), (unsigned long long)version);
        tg_err_close(&err);
        return;
    }
    log_problems(&err, TG_LOG_WARN);
    rs->generation = version;
    if (same)
        tg_log_info("config reloaded (generation %llu kept: the same document, so no new version "
                    "is stored; key material and files read again); open connections keep their "
                    "config",
                    (unsigned long long)version);
    else
        tg_log_info("config reloaded (generation %llu); open connections keep their config",
                    (unsigned long long)version);
    struct tg_snapshot *cur = tg_admin_state_current();
    if (cur != NULL)
        log_listening(cur->cfg);
    tg_snapshot_unref(cur);
    tg_err_close(&err);
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct run_state *rs = h->data;
    if (signum == SIGHUP) {
        if (!rs->stopping)
            reload(rs, "SIGHUP");
        return;
    }
    if (signum == SIGUSR1) {
        if (tg_fault("seccomp_probe")) {
            tg_log_warn("fault injection: seccomp_probe: calling getcpu, which the sandbox "
                        "does not allow");
            unsigned cpu = 0;
            syscall(SYS_getcpu, &cpu, NULL, NULL);
        }
        if (rs->access_path == NULL)
            tg_log_info("SIGUSR1: no access log file to reopen");
        else if (reopen_access_log(rs, rs->access_path))
            tg_log_info("SIGUSR1: access log reopened");
        return;
    }
    if (rs->stopping) {
        tg_log_info("%s again: still draining", strsignal(signum));
        return;
    }
    rs->stopping = true;
    struct tg_snapshot *cur = tg_admin_state_current();
    tg_log_info("%s: draining connections (up to %llu s), then stopping", strsignal(signum),
                (unsigned long long)(cur ? cur->cfg->timeouts.shutdown_ms / 1000 : 0));
    tg_snapshot_unref(cur);
    tg_tls_staples_on_change(NULL, NULL); /* workers may end before a running refresh does */
    tg_admin_state_unfollow();            /* no change from the store after this */
    tg_net_stop(&rs->net);
    uv_close((uv_handle_t *)&rs->rotate_timer, NULL);
    uv_close((uv_handle_t *)&rs->key_poll, NULL);
    uv_close((uv_handle_t *)&rs->staple_timer, NULL);
    uv_close((uv_handle_t *)&rs->tickets_async, NULL);
    tg_admin_watch_stop();
    uv_close((uv_handle_t *)&rs->acme_timer, NULL);
    tg_acme_stop(); /* a running ACME job gives up at its next step */
    uv_close((uv_handle_t *)&rs->sig_hup, NULL);
    uv_close((uv_handle_t *)&rs->sig_term, NULL);
    uv_close((uv_handle_t *)&rs->sig_int, NULL);
    uv_close((uv_handle_t *)&rs->sig_usr1, NULL);
}

/* Every client and backend connection is a file descriptor: raise the soft limit to the hard
 * one so the default 1024 does not cap the gateway. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max)
        return;
    rlim_t old = rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
        tg_log_debug("open-files limit raised from %llu to %llu", (unsigned long long)old,
                     (unsigned long long)rl.rlim_max);
    else
        tg_log_warn("cannot raise the open-files limit above %llu: %s", (unsigned long long)old,
                    strerror(errno));
}

/* Tells systemd (Type=notify) that we are ready, if it is listening. */
static void sd_notify_ready(void)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (path == NULL || (path[0] != '/' && path[0] != '@') || strlen(path) >= 108)
        return;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, strlen(path));
    if (sa.sun_path[0] == '@')
        sa.sun_path[0] = '\0';
    static const char msg[] = "READY=1";
    ssize_t r = sendto(fd, msg, sizeof(msg) - 1, 0, (struct sockaddr *)&sa,
                       (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path)));
    (void)r;
    close(fd);
}

int tg_cli_run(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    struct run_state rs;
    memset(&rs, 0, sizeof(rs));
    rs.access_fd = -1;
    uv_mutex_init(&rs.tickets_mu);
    optind = 1;
    int ch;
    while ((ch = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            rs.config_file = optarg;
            break;
        case 'h':
            run_usage(stdout);
            return TG_EXIT_OK;
        default:
            run_usage(stderr);
            return TG_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "tlsgate run: unexpected argument '%s'\n", argv[optind]);
        run_usage(stderr);
        return TG_EXIT_USAGE;
    }
    signal(SIGPIPE, SIG_IGN);
    tg_admin_init();

    struct tg_err err;
    tg_err_init(&err);
    struct tg_config *cfg = NULL;
    int code = TG_EXIT_USAGE;
    /* An instance file (store etcd): the config itself comes from the store below. */
    bool clustered = rs.config_file != NULL && tg_config_is_instance_file(rs.config_file);
    if (!clustered && tg_cli_load_config(rs.config_file, &cfg, &err) != 0) {
        tg_err_print(&err, stderr);
        fprintf(stderr, "tlsgate: %zu error(s) in %s\n", tg_err_count(&err),
                rs.config_file ? rs.config_file : "the embedded default config");
        goto out;
    }
    if (cfg != NULL)
        tg_log_setup((enum tg_log_level)cfg->log.level,
                     cfg->log.format == TG_LOGFMT_JSON ? TG_LOG_JSON : TG_LOG_TEXT, 2);
    else
        tg_log_setup(TG_LOG_INFO, TG_LOG_TEXT, 2);
    tg_fault_init(); /* before any worker thread */
    uint64_t version = 1;
    if (tg_admin_state_open(rs.config_file, &cfg, &version, &err) != 0) {
        tg_err_print(&err, stderr);
        fprintf(stderr, "tlsgate: cannot decide or store the config state\n");
        goto out;
    }
    if (clustered)
        tg_log_setup((enum tg_log_level)cfg->log.level,
                     cfg->log.format == TG_LOGFMT_JSON ? TG_LOG_JSON : TG_LOG_TEXT, 2);
    if (tg_snapshot_new(cfg, version, &rs.snap, &err) != 0) {
        tg_err_print(&err, stderr);
        fprintf(stderr, "tlsgate: %zu error(s) in %s\n", tg_err_count(&err),
                rs.config_file ? rs.config_file : "the embedded default config");
        goto out; /* cfg is still ours: freed at out */
    }
    cfg = NULL;
    tg_proxy_snapshot_init(rs.snap);
    rs.generation = version;
    log_problems(&err, TG_LOG_WARN);
    tg_err_close(&err);
    tg_err_init(&err);

    code = TG_EXIT_RUNTIME;
    raise_fd_limit();
    if (tg_cli_sandbox_check_ids(rs.snap->cfg, &err) != 0 ||
        tg_net_check_bind(rs.snap->cfg, &err) != 0) {
        log_problems(&err, TG_LOG_ERROR);
        goto out;
    }
    rs.access_fd = open_access_log(rs.snap->cfg->log.access_log, &rs.access_path);
    if (rs.snap->cfg->log.access_log != NULL && rs.access_fd < 0) {
        tg_log_error("cannot open access log \"%s\": %s", rs.snap->cfg->log.access_log,
                     strerror(-rs.access_fd));
        goto out;
    }
    /* Landlock binds the calling thread and those it starts later: before any other exists. */
    rs.sandbox = tg_cli_sandbox_new(rs.snap->cfg, rs.config_file);
    tg_cli_sandbox_enter_fs(rs.sandbox);
    uv_loop_t *loop = uv_default_loop();
    uv_signal_t *sigs[] = {&rs.sig_hup, &rs.sig_term, &rs.sig_int, &rs.sig_usr1};
    int signums[] = {SIGHUP, SIGTERM, SIGINT, SIGUSR1};
    for (size_t i = 0; i < TG_ARRAY_SIZE(sigs); i++) {
        uv_signal_init(loop, sigs[i]);
        sigs[i]->data = &rs;
        uv_signal_start(sigs[i], on_signal, signums[i]);
    }
    uv_timer_init(loop, &rs.rotate_timer);
    rs.rotate_timer.data = &rs;
    uv_fs_poll_init(loop, &rs.key_poll);
    rs.key_poll.data = &rs;
    uv_timer_init(loop, &rs.staple_timer);
    rs.staple_timer.data = &rs;
    rs.main_thread = uv_thread_self();
    uv_async_init(loop, &rs.tickets_async, on_tickets_async);
    rs.tickets_async.data = &rs;
    uv_timer_init(loop, &rs.acme_timer);
    rs.acme_timer.data = &rs;
    rs.net.staples = tg_tls_staples_current();
    if (tickets_configure(&rs, &rs.snap->cfg->tickets) != 0 ||
        tg_net_start(&rs.net, rs.snap, rs.snap->cfg->workers, &tg_proxy_handler, rs.access_fd,
                     &err) != 0) {
        log_problems(&err, TG_LOG_ERROR);
        for (size_t i = 0; i < TG_ARRAY_SIZE(sigs); i++)
            uv_close((uv_handle_t *)sigs[i], NULL);
        uv_close((uv_handle_t *)&rs.rotate_timer, NULL);
        uv_close((uv_handle_t *)&rs.key_poll, NULL);
        uv_close((uv_handle_t *)&rs.staple_timer, NULL);
        uv_close((uv_handle_t *)&rs.tickets_async, NULL);
        uv_close((uv_handle_t *)&rs.acme_timer, NULL);
        uv_run(loop, UV_RUN_DEFAULT);
        goto out;
    }
    rs.started = true;
    bool sandbox_failed = tg_cli_sandbox_enter_rest(rs.sandbox) != 0;
    tg_tls_staples_on_change(publish_staples, &rs.net);
    uv_timer_start(&rs.staple_timer, on_staple_timer, 0, STAPLE_CHECK_MS);
    acme_configure(rs.snap->cfg);
    uv_timer_start(&rs.acme_timer, on_acme_timer, 0, STAPLE_CHECK_MS);
    tg_admin_state_started(&rs.net, rs.snap, on_applied, &rs);
    tg_admin_state_set_guard(tg_cli_sandbox_guard, rs.sandbox);
    if (tg_admin_state_follow(tickets_from_store, &rs) != 0)
        tg_log_error("store: cannot start the store's thread; the config will not follow etcd");
    tg_admin_watch_start(loop);
    tg_log_info("tlsgate %s started: %u worker(s), config %s (generation %llu)", TG_VERSION,
                rs.net.n_workers, rs.config_file ? rs.config_file : "embedded default",
                (unsigned long long)version);
    log_listening(rs.snap->cfg);
    /* The first snapshot goes when a reload replaces it everywhere, as any other; its config
     * stays for the sandbox. */
    rs.start_cfg = tg_snapshot_detach_config(rs.snap);
    tg_snapshot_unref(rs.snap);
    rs.snap = NULL;
    if (sandbox_failed)
        on_signal(&rs.sig_term, SIGTERM); /* logged why; the workers stop at once */
    else
        sd_notify_ready();
    uv_run(loop, UV_RUN_DEFAULT);
    tg_tls_staples_on_change(NULL, NULL);
    tg_net_join(&rs.net);
    tg_log_info("stopped");
    code = sandbox_failed ? TG_EXIT_RUNTIME : TG_EXIT_OK;
out:
    uv_loop_close(uv_default_loop());
    tg_snapshot_unref(rs.snap);
    tg_config_free(cfg);
    tg_err_close(&err);
    tg_admin_state_close();
    tg_admin_cleanup();
    if (rs.access_fd > 2)
        close(rs.access_fd);
    free(rs.access_path);
    tg_tls_tickets_unref(rs.tickets);
    tg_tls_staples_unref(rs.net.staples);
    tg_acme_shutdown();
    free(rs.key_file);
    free(rs.tickets_next.key_file);
    tg_tls_tickets_unref(rs.store_ring);
    uv_mutex_destroy(&rs.tickets_mu);
    tg_cli_sandbox_free(rs.sandbox);
    tg_config_free(rs.start_cfg); /* every snapshot is gone: the workers joined, the state closed */
    return code;
}
