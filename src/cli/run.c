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
#include <sys/un.h>
#include <unistd.h>

#include <uv.h>

#include "admin/admin.h"
#include "cli/cli.h"
#include "config/config.h"
#include "core/log.h"
#include "net/net.h"
#include "proxy/proxy.h"

struct run_state {
    const char *config_file; /* NULL: embedded default */
    struct tg_net net;
    struct tg_snapshot *snap;
    uint64_t generation;
    int access_fd;
    char *access_path; /* NULL for stdout/stderr/off */
    bool stopping;
    uv_signal_t sig_hup, sig_term, sig_int, sig_usr1;
};

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

static void reopen_access_log(struct run_state *rs, const char *path)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
        tg_log_error("cannot open access log \"%s\": %s", path, strerror(errno));
        return;
    }
    /* Same fd number, new file: workers keep writing without any coordination. */
    dup2(fd, rs->access_fd);
    close(fd);
}

static void log_listening(const struct tg_config *cfg)
{
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        const struct tg_listener_conf *lc = &cfg->listeners[i];
        if (lc->tls.disabled)
            tg_log_info("listener %s on %s: plaintext HTTP (tls.disabled)", lc->name, lc->address);
        else
            tg_log_info("listener %s on %s: HTTPS, %s to %s", lc->name, lc->address,
                        tg_tls_version_name(lc->tls.min_version),
                        tg_tls_version_name(lc->tls.max_version));
    }
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
    if (cur->workers != rs->net.n_workers)
        tg_log_warn("workers changed to %u: this change takes effect at the next restart",
                    cur->workers);
}

static void reload(struct run_state *rs)
{
    struct tg_err err;
    tg_err_init(&err);
    const char *what = rs->config_file ? rs->config_file : "the embedded default";
    tg_log_info("SIGHUP: reloading %s", what);
    uint64_t version = 0;
    if (tg_admin_state_reload(&err, &version) != 0) {
        log_problems(&err, TG_LOG_ERROR);
        tg_log_error("reload failed with %zu error(s): still serving the previous config "
                     "(generation %llu)",
                     tg_err_count(&err), (unsigned long long)version);
        tg_err_close(&err);
        return;
    }
    log_problems(&err, TG_LOG_WARN);
    rs->generation = version;
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
            reload(rs);
        return;
    }
    if (signum == SIGUSR1) {
        if (rs->access_path != NULL)
            reopen_access_log(rs, rs->access_path);
        tg_log_info("SIGUSR1: access log reopened");
        return;
    }
    if (rs->stopping) {
        tg_log_info("%s again: still draining", strsignal(signum));
        return;
    }
    rs->stopping = true;
    tg_log_info("%s: draining connections (up to %llu s), then stopping", strsignal(signum),
                (unsigned long long)(rs->snap->cfg->timeouts.shutdown_ms / 1000));
    tg_net_stop(&rs->net);
    tg_admin_watch_stop();
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
    if (tg_cli_load_config(rs.config_file, &cfg, &err) != 0) {
        tg_err_print(&err, stderr);
        fprintf(stderr, "tlsgate: %zu error(s) in %s\n", tg_err_count(&err),
                rs.config_file ? rs.config_file : "the embedded default config");
        goto out;
    }
    tg_log_setup((enum tg_log_level)cfg->log.level,
                 cfg->log.format == TG_LOGFMT_JSON ? TG_LOG_JSON : TG_LOG_TEXT, 2);
    uint64_t version = 1;
    if (tg_admin_state_open(rs.config_file, &cfg, &version, &err) != 0) {
        tg_err_print(&err, stderr);
        fprintf(stderr, "tlsgate: cannot decide or store the config state\n");
        goto out;
    }
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
    if (tg_net_check_bind(rs.snap->cfg, &err) != 0) {
        log_problems(&err, TG_LOG_ERROR);
        goto out;
    }
    rs.access_fd = open_access_log(rs.snap->cfg->log.access_log, &rs.access_path);
    if (rs.snap->cfg->log.access_log != NULL && rs.access_fd < 0) {
        tg_log_error("cannot open access log \"%s\": %s", rs.snap->cfg->log.access_log,
                     strerror(-rs.access_fd));
        goto out;
    }
    uv_loop_t *loop = uv_default_loop();
    uv_signal_t *sigs[] = {&rs.sig_hup, &rs.sig_term, &rs.sig_int, &rs.sig_usr1};
    int signums[] = {SIGHUP, SIGTERM, SIGINT, SIGUSR1};
    for (size_t i = 0; i < TG_ARRAY_SIZE(sigs); i++) {
        uv_signal_init(loop, sigs[i]);
        sigs[i]->data = &rs;
        uv_signal_start(sigs[i], on_signal, signums[i]);
    }
    if (tg_net_start(&rs.net, rs.snap, rs.snap->cfg->workers, &tg_proxy_handler, rs.access_fd,
                     &err) != 0) {
        log_problems(&err, TG_LOG_ERROR);
        for (size_t i = 0; i < TG_ARRAY_SIZE(sigs); i++)
            uv_close((uv_handle_t *)sigs[i], NULL);
        uv_run(loop, UV_RUN_DEFAULT);
        goto out;
    }
    tg_admin_state_started(&rs.net, rs.snap, on_applied, &rs);
    tg_admin_watch_start(loop);
    tg_log_info("tlsgate %s started: %u worker(s), config %s (generation %llu)", TG_VERSION,
                rs.net.n_workers, rs.config_file ? rs.config_file : "embedded default",
                (unsigned long long)version);
    log_listening(rs.snap->cfg);
    sd_notify_ready();
    uv_run(loop, UV_RUN_DEFAULT);
    tg_net_join(&rs.net);
    tg_log_info("stopped");
    code = TG_EXIT_OK;
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
    return code;
}
