/* Refcounted snapshots: a validated config plus the TLS contexts built from it. */
#include "net/net.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static atomic_uint_fast64_t live;

uint64_t tg_snapshots_live(void)
{
    return atomic_load_explicit(&live, memory_order_relaxed);
}

static uv_once_t slots_once = UV_ONCE_INIT;
static uv_mutex_t slots_mu;
static _Atomic(const char *) slot_names[TG_NET_LISTENER_SLOTS];

static void slots_init(void)
{
    uv_mutex_init(&slots_mu);
}

size_t tg_net_listener_slot(const char *name)
{
    uv_once(&slots_once, slots_init);
    uv_mutex_lock(&slots_mu);
    size_t i = 0;
    for (; i < TG_NET_LISTENER_SLOTS; i++) {
        const char *n = atomic_load(&slot_names[i]);
        if (n == NULL) {
            atomic_store(&slot_names[i], tg_xstrdup(name)); /* kept for the process's life */
            break;
        }
        if (strcmp(n, name) == 0)
            break;
    }
    uv_mutex_unlock(&slots_mu);
    return i;
}

const char *tg_net_listener_slot_name(size_t i)
{
    return i < TG_NET_LISTENER_SLOTS ? atomic_load(&slot_names[i]) : NULL;
}

static void free_contexts(struct tg_snapshot *s, const struct tg_config *cfg)
{
    for (size_t i = 0; i < cfg->n_listeners; i++)
        tg_tls_server_free(s->tls[i]);
    free(s->tls);
    for (size_t i = 0; i < cfg->n_backends; i++)
        tg_tls_client_free(s->backend_tls[i]);
    free(s->backend_tls);
}

int tg_snapshot_new(struct tg_config *cfg, uint64_t generation, struct tg_snapshot **out,
                    struct tg_err *err)
{
    struct tg_snapshot *s = tg_xcalloc(1, sizeof(*s));
    s->tls = tg_xcalloc(cfg->n_listeners ? cfg->n_listeners : 1, sizeof(*s->tls));
    s->backend_tls = tg_xcalloc(cfg->n_backends ? cfg->n_backends : 1, sizeof(*s->backend_tls));
    int rc = 0;
    /* Everything is built even after a failure, so one reload reports every problem. */
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        if (cfg->listeners[i].tls.disabled)
            continue;
        if (tg_tls_server_new(cfg, i, &s->tls[i], err) != 0)
            rc = -EINVAL;
    }
    for (size_t i = 0; i < cfg->n_backends; i++) {
        const struct tg_backend_conf *bc = &cfg->backends[i];
        if (bc->kind != TG_BACKEND_HTTP || !bc->tls.enabled)
            continue;
        if (tg_tls_client_new(cfg, bc, &s->backend_tls[i], err) != 0)
            rc = -EINVAL;
    }
    if (rc != 0) {
        free_contexts(s, cfg);
        free(s);
        return rc;
    }
    atomic_init(&s->refs, 1);
    s->lslot = tg_xcalloc(cfg->n_listeners + 1, sizeof(*s->lslot));
    for (size_t i = 0; i < cfg->n_listeners; i++)
        s->lslot[i] = tg_net_listener_slot(cfg->listeners[i].name);
    s->generation = generation;
    s->cfg = cfg;
    atomic_fetch_add_explicit(&live, 1, memory_order_relaxed);
    *out = s;
    return 0;
}

struct tg_snapshot *tg_snapshot_ref(struct tg_snapshot *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    return s;
}

struct tg_config *tg_snapshot_detach_config(struct tg_snapshot *s)
{
    s->cfg_detached = true; /* read by the last unref: ordered by the refs' acq_rel */
    return s->cfg;
}

void tg_snapshot_unref(struct tg_snapshot *s)
{
    if (s == NULL)
        return;
    if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
        return;
    free_contexts(s, s->cfg);
    if (!s->cfg_detached)
        tg_config_free(s->cfg);
    free(s->lslot);
    free(s);
    atomic_fetch_sub_explicit(&live, 1, memory_order_relaxed);
}
