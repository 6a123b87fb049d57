/* auto_reload: the main thread polls the files the config in use names (libuv's uv_fs_poll: a
 * stat each second, so a file replaced by rename is seen as well as one rewritten in place) and,
 * half a second after the last change, reloads as SIGHUP does. The list of files is rebuilt after
 * every applied change. Nothing here runs on a worker. Above state.c: it calls state.c, and
 * state.c tells it of applied changes through the callback registered at start
 * (tg__admin_state_on_change), never by name. */
#include "admin/internal.h"

#include <stdlib.h>
#include <string.h>

#include "core/log.h"

#define POLL_MS   1000
#define SETTLE_MS 500

struct watch {
    uv_fs_poll_t poll;
    char *path;
    struct watch *next;
};

static struct {
    uv_loop_t *loop;
    bool on;
    uv_async_t changed; /* a change was applied (any thread): rebuild the list */
    uv_timer_t settle;
    struct watch *list;
    char *why; /* the file whose change is pending */
} W;

static void free_watch(uv_handle_t *h)
{
    struct watch *w = h->data;
    free(w->path);
    free(w);
}

static void clear_list(void)
{
    for (struct watch *w = W.list, *next; w != NULL; w = next) {
        next = w->next;
        uv_fs_poll_stop(&w->poll);
        uv_close((uv_handle_t *)&w->poll, free_watch);
    }
    W.list = NULL;
}

static void on_settled(uv_timer_t *t)
{
    (void)t;
    struct tg_err err;
    tg_err_init(&err);
    uint64_t version = 0;
    bool same = false;
    tg_log_info("auto_reload: %s changed: reloading", W.why ? W.why : "a file");
    if (tg_admin_state_reload(&err, &version, &same) == 0) {
        tg_log_info("config reloaded (generation %llu%s) by auto_reload",
                    (unsigned long long)version,
                    same ? " kept: the same document, so no new version is stored; key material "
                           "and files read again"
                         : "");
    } else {
        tg__admin_log_errors("", &err);
        tg_log_error("auto_reload failed with %zu error(s): still serving the previous config "
                     "(generation %llu)",
                     tg_err_count(&err), (unsigned long long)version);
    }
    tg_err_close(&err);
    free(W.why);
    W.why = NULL;
}

static void on_poll(uv_fs_poll_t *h, int status, const uv_stat_t *prev, const uv_stat_t *cur)
{
    struct watch *w = h->data;
    (void)status;
    (void)prev;
    (void)cur;
    free(W.why);
    W.why = tg_xstrdup(w->path);
    uv_timer_start(&W.settle, on_settled, SETTLE_MS, 0);
}

static void add(const char *path)
{
    if (path == NULL)
        return;
    for (struct watch *w = W.list; w != NULL; w = w->next)
        if (strcmp(w->path, path) == 0)
            return;
    struct watch *w = tg_xcalloc(1, sizeof(*w));
    w->path = tg_xstrdup(path);
    uv_fs_poll_init(W.loop, &w->poll);
    w->poll.data = w;
    if (uv_fs_poll_start(&w->poll, on_poll, path, POLL_MS) != 0) {
        uv_close((uv_handle_t *)&w->poll, free_watch);
        return;
    }
    w->next = W.list;
    W.list = w;
}

static void rebuild(uv_async_t *a)
{
    (void)a;
    clear_list();
    struct tg_snapshot *snap = tg_admin_state_current();
    if (snap == NULL)
        return;
    const struct tg_config *cfg = snap->cfg;
    if (cfg->auto_reload) {
        char *file = tg__admin_state_file();
        add(file);
        free(file);
        for (size_t i = 0; i < cfg->n_keystores; i++) {
            add(cfg->keystores[i].cert_file);
            add(cfg->keystores[i].key_file);
            add(cfg->keystores[i].file);
        }
        for (size_t i = 0; i < cfg->n_truststores; i++)
            add(cfg->truststores[i].file);
        for (size_t i = 0; i < cfg->n_listeners; i++) {
            const struct tg_client_auth_conf *ca = &cfg->listeners[i].tls.client_auth;
            for (size_t k = 0; k < ca->n_crl_files; k++)
                add(ca->crl_files[k]);
        }
        size_t n = 0;
        for (struct watch *w = W.list; w != NULL; w = w->next)
            n++;
        tg_log_info("auto_reload: watching %zu file(s)", n);
    }
    tg_snapshot_unref(snap);
}

/* A change was applied (any thread, state.c's lock held): the list is rebuilt on the loop. */
static void changed(void)
{
    if (W.on)
        uv_async_send(&W.changed);
}

void tg_admin_watch_start(uv_loop_t *loop)
{
    W.loop = loop;
    uv_async_init(loop, &W.changed, rebuild);
    uv_timer_init(loop, &W.settle);
    W.on = true;
    tg__admin_state_on_change(changed);
    rebuild(&W.changed);
}

void tg_admin_watch_stop(void)
{
    if (!W.on)
        return;
    W.on = false;
    tg__admin_state_on_change(NULL);
    clear_list();
    uv_close((uv_handle_t *)&W.changed, NULL);
    uv_timer_stop(&W.settle);
    uv_close((uv_handle_t *)&W.settle, NULL);
    free(W.why);
    W.why = NULL;
}
