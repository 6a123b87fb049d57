/* One truth for the config: the document the gateway runs, its version, and (when the config has
 * an admin section) its durable copy in the state directory. Every change — an API write, SIGHUP,
 * POST /reload — is applied here under one mutex, off the worker loops (the main thread or
 * libuv's thread pool): validate with the loader `check` uses, build the snapshot, test-bind,
 * store durably, then publish the finished snapshot to the workers. Versions only go up.
 *
 * The rule between the -c file and the stored state: the state records the SHA-256 of the file
 * text it came from. At start (and on SIGHUP) an unchanged file means the state is newer (changes
 * made through the API) and is used; a changed file means the operator edited it since, and the
 * file is used (as version state+1, and stored).
 *
 * The bottom of the module's config side: the resources (config.c, certs.c, allow.c) and
 * auto_reload (watch.c) call down into it; it calls none of them. watch.c learns of each applied
 * change through the callback it registers with tg__admin_state_on_change. */
#include "admin/internal.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "core/log.h"
#include "store/store.h"
#include "tls/tls.h"

atomic_uint_fast64_t tg__admin_reloads[2]; /* [0] ok, [1] failed */
atomic_uint_fast64_t tg__admin_store[TG_STORE_N];

static struct {
    uv_mutex_t mu;
    bool open;
    char *file;      /* -c path, or NULL for the embedded default */
    char *base_dir;  /* relative paths of the document resolve here */
    char *label;     /* name of the document in messages */
    char *state_dir; /* where the durable copy is kept */
    bool persist;    /* the config has an admin section: keep the durable copy */
    char file_sha[65];
    json_t *doc;
    uint64_t version;
    struct tg_net *net;
    struct tg_snapshot *snap; /* the current one (a reference), once started */
    tg_admin_applied_cb applied;
    void *applied_arg;
    void (*changed)(void); /* watch.c's, while auto_reload runs */
    tg_admin_guard_cb guard;
    void *guard_arg;
    /* store etcd: the instance file laid over the shared document, the store, and the
     * config key's revision and version as last seen there (a refused config included) */
    struct tg_config_instance *inst;
    struct tg_cluster *cluster;
    int64_t store_rev;
    uint64_t store_version;
    atomic_llong rev_seen; /* store_rev, for /metrics without the lock */
    uv_mutex_t wmu;        /* one write to etcd at a time, taken before mu */
    /* the version and revision the local copy (cluster.json) holds, when known to be written */
    bool local_known;
    uint64_t local_version;
    int64_t local_rev;
} S;

/* The config key's revision and version as last seen in etcd (S.mu held). */
static void set_store(int64_t rev, uint64_t version)
{
    S.store_rev = rev;
    S.store_version = version;
    atomic_store(&S.rev_seen, rev);
}

void tg__admin_log_errors(const char *prefix, const struct tg_err *err)
{
    for (size_t i = 0; i < err->n; i++) {
        char *s = tg_err_format(err, i);
        tg_log_error("%s%s", prefix, s);
        free(s);
    }
}

/* store etcd: writes the local copy a start while etcd is unreachable begins from (etcd stays
 * the truth), unless it holds this version and revision already (a reload of the same document
 * writes nothing, as with the file store). A failure is logged; the next apply tries again. */
static void save_local(json_t *doc, uint64_t version, int64_t rev)
{
    if (S.local_known && S.local_version == version && S.local_rev == rev)
        return;
    struct tg_store_doc nd = {.version = version, .revision = rev, .config = doc};
    struct tg_err serr;
    tg_err_init(&serr);
    S.local_known = tg_store_save_named(S.state_dir, "cluster.json", &nd, &serr) == 0;
    if (S.local_known) {
        S.local_version = version;
        S.local_rev = rev;
    } else {
        tg__admin_log_errors("store: local copy: ", &serr);
    }
    tg_err_close(&serr);
}

static char *dir_of(const char *file)
{
    const char *slash = strrchr(file, '/');
    if (slash == NULL)
        return tg_xstrdup(".");
    if (slash == file)
        return tg_xstrdup("/");
    return tg_xstrndup(file, (size_t)(slash - file));
}

/* The text the config was loaded from, or NULL with err. */
static char *source_text(const char *file, size_t *len, struct tg_err *err)
{
    if (file == NULL) {
        *len = strlen(tg_config_default_json);
        return tg_xstrdup(tg_config_default_json);
    }
    char *text = NULL;
    int rc = tg_read_file(file, &text, len);
    if (rc != 0) {
        struct tg_loc loc = {file, 0, 0};
        tg_err_error(err, &loc, NULL, "cannot read the config file: %s", strerror(-rc));
        return NULL;
    }
    return text;
}

static void cleanse_free(char *s)
{
    if (s != NULL)
        OPENSSL_cleanse(s, strlen(s));
    free(s);
}

/* Validates doc as a config (the loader `check` uses). */
static int load_doc(json_t *doc, struct tg_config **out, struct tg_err *err)
{
    json_t *merged = S.inst ? tg_config_instance_apply(S.inst, doc, NULL) : json_incref(doc);
    char *text = json_dumps(merged, JSON_INDENT(2));
    json_decref(merged);
    if (text == NULL) {
        tg_err_error(err, NULL, NULL, "the config cannot be serialised");
        return -EINVAL;
    }
    int rc = tg_config_load_string(text, strlen(text), S.label, S.base_dir, out, err);
    cleanse_free(text);
    if (rc == 0 && S.inst != NULL)
        (*out)->tickets.keys_shared = true; /* session_tickets.client_auth's default */
    return rc;
}

static int decide(const char *file, struct tg_config **cfg, uint64_t *version, struct tg_err *err,
                  bool dry, char *what, size_t what_len)
{
    if ((*cfg)->store.type == TG_STORE_ETCD) {
        struct tg_loc loc = {file ? file : "<config>", 0, 0};
        tg_err_error(err, &loc, "/store",
                     "a whole config with a store of type \"etcd\" is what `tlsgate store push "
                     "-c FILE` seeds etcd with; each instance runs with an instance file (store, "
                     "state_dir, workers, admin.address, listener addresses; no \"version\")");
        return -EINVAL;
    }
    uv_mutex_init(&S.mu);
    S.open = true;
    S.file = file ? tg_xstrdup(file) : NULL;
    S.base_dir = file ? dir_of(file) : tg_xstrdup((*cfg)->base_dir);
    S.label = tg_xstrdup(file ? file : "<embedded default>");
    S.state_dir = tg_xstrdup((*cfg)->state_dir);
    S.persist = (*cfg)->admin.enabled;
    size_t len = 0;
    char *text = source_text(file, &len, err);
    if (text == NULL)
        return -EINVAL;
    tg_store_sha256_hex(text, len, S.file_sha);
    json_error_t je;
    S.doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    OPENSSL_cleanse(text, len);
    free(text);
    if (S.doc == NULL) { /* it loaded a moment ago: changed under us */
        tg_err_error(err, NULL, NULL, "%s changed while it was read", S.label);
        return -EINVAL;
    }
    S.version = 1;
    if (!S.persist) {
        *version = S.version;
        snprintf(what, what_len, "%s (version 1; no admin section, so no state is kept)", S.label);
        return 0;
    }
    struct tg_store_doc sd;
    struct tg_err serr;
    tg_err_init(&serr);
    int rc = tg_store_load(S.state_dir, &sd, &serr);
    if (rc == 0 && strcmp(sd.file_sha256, S.file_sha) == 0) {
        struct tg_config *stored = NULL;
        if (load_doc(sd.config, &stored, &serr) == 0) {
            tg_config_free(*cfg);
            *cfg = stored;
            json_decref(S.doc);
            S.doc = json_incref(sd.config);
            S.version = sd.version;
            *version = S.version;
            snprintf(what, what_len,
                     "the stored state %s/config.json, version %llu (changes made through the "
                     "admin API; %s is unchanged since)",
                     S.state_dir, (unsigned long long)S.version, S.label);
            tg_store_doc_clear(&sd);
            tg_err_close(&serr);
            return 0;
        }
        tg__admin_log_errors("stored state: ", &serr);
        tg_log_error("config: the stored state %s/config.json does not load: using %s", S.state_dir,
                     S.label);
    } else if (rc != 0 && rc != -ENOENT) {
        tg__admin_log_errors("stored state: ", &serr);
    }
    S.version = rc == 0 ? sd.version + 1 : 1;
    if (rc == 0)
        snprintf(what, what_len,
                 "%s, version %llu (it changed since the stored state, version %llu, was "
                 "written: the file wins)",
                 S.label, (unsigned long long)S.version, (unsigned long long)sd.version);
    else
        snprintf(what, what_len, "%s, version %llu (no stored state yet)", S.label,
                 (unsigned long long)S.version);
    tg_store_doc_clear(&sd);
    tg_err_close(&serr);
    *version = S.version;
    if (dry)
        return 0;
    struct tg_store_doc nd = {.version = S.version, .config = S.doc};
    snprintf(nd.file_sha256, sizeof(nd.file_sha256), "%s", S.file_sha);
    rc = tg_store_save(S.state_dir, &nd, err);
    return rc == 0 ? 0 : -EINVAL;
}

/* A name for this instance in the store's applied/ records: host and admin address. */
static char *instance_name(void)
{
    char host[256] = "";
    gethostname(host, sizeof(host) - 1);
    const char *aa = json_string_value(json_object_get(S.inst->over, "admin_address"));
    return aa ? tg_xasprintf("%s/%s", host, aa) : tg_xasprintf("%s/pid-%ld", host, (long)getpid());
}

/* store etcd: the shared document from etcd (or, when etcd cannot be reached, the local copy
 * of the last one applied), with the instance file laid over it. */
static int decide_cluster(const char *file, struct tg_config **cfg, uint64_t *version,
                          struct tg_err *err, bool dry, char *what, size_t what_len)
{
    uv_mutex_init(&S.mu);
    uv_mutex_init(&S.wmu);
    S.open = true;
    S.file = tg_xstrdup(file);
    S.base_dir = dir_of(file);
    if (tg_config_instance_load(file, &S.inst, err) != 0)
        return -EINVAL;
    const struct tg_store_conf *sc = &S.inst->cfg->store;
    S.label = tg_xasprintf("etcd:%sconfig", sc->prefix);
    S.state_dir = tg_xstrdup(S.inst->cfg->state_dir);
    char *name = instance_name();
    int rc = tg_cluster_new(sc, name, &S.cluster, err);
    free(name);
    if (rc != 0)
        return -EINVAL;
    char why[512] = "";
    json_t *doc = NULL;
    uint64_t ver = 0;
    int64_t rev = 0;
    char *from = NULL;
    rc = tg_cluster_read(S.cluster, &doc, &ver, &rev, why, sizeof(why));
    struct tg_config *loaded = NULL;
    if (rc == 0 && load_doc(doc, &loaded, err) != 0) {
        tg_log_error("store: the config in etcd (version %llu, revision %lld) does not load",
                     (unsigned long long)ver, (long long)rev);
        json_decref(doc);
        return -EINVAL;
    }
    if (rc == 0) {
        json_decref(tg_config_instance_apply(S.inst, doc, &from));
        snprintf(what, what_len,
                 "the shared config from etcd %sconfig, version %llu (revision %lld); "
                 "per-instance keys %s",
                 sc->prefix, (unsigned long long)ver, (long long)rev, from);
    } else {
        struct tg_store_doc sd;
        struct tg_err serr;
        tg_err_init(&serr);
        int lrc = tg_store_load_named(S.state_dir, "cluster.json", &sd, &serr);
        tg_err_close(&serr);
        if (lrc != 0 || load_doc(sd.config, &loaded, err) != 0) {
            tg_err_error(err, NULL, "/store",
                         "cannot start: %s, and %s/cluster.json holds no config applied "
                         "before (run once with etcd reachable, or seed it with `tlsgate "
                         "store push`)",
                         why, S.state_dir);
            if (lrc == 0)
                tg_store_doc_clear(&sd);
            return -EINVAL;
        }
        doc = json_incref(sd.config);
        ver = sd.version;
        rev = sd.revision;
        tg_store_doc_clear(&sd);
        S.local_known = true;
        S.local_version = ver;
        S.local_rev = rev;
        json_decref(tg_config_instance_apply(S.inst, doc, &from));
        snprintf(what, what_len,
                 "the last local copy %s/cluster.json, version %llu (etcd revision %lld), "
                 "because etcd is unreachable (%s); per-instance keys %s; changes in etcd "
                 "are applied once it answers",
                 S.state_dir, (unsigned long long)ver, (long long)rev, why, from);
    }
    free(from);
    tg_config_free(*cfg);
    *cfg = loaded;
    S.doc = doc;
    S.version = ver;
    set_store(rev, ver);
    S.persist = true;
    *version = ver;
    if (!dry && rc == 0) {
        struct tg_store_doc sd;
        struct tg_err serr;
        tg_err_init(&serr);
        if (tg_store_load_named(S.state_dir, "cluster.json", &sd, &serr) == 0) {
            /* a restart with the copy up to date rewrites nothing */
            S.local_known = sd.version == ver && sd.revision == rev && json_equal(sd.config, doc);
            S.local_version = ver;
            S.local_rev = rev;
            tg_store_doc_clear(&sd);
        }
        tg_err_close(&serr);
        save_local(doc, ver, rev);
    }
    return 0;
}

static int state_cb(json_t *doc, uint64_t version, int64_t revision, void *arg)
{
    (void)arg;
    return tg__admin_state_remote(doc, version, revision);
}

void tg__admin_store_metrics(FILE *f)
{
    if (S.cluster == NULL)
        return;
    char why[512];
    bool up = tg_cluster_reachable(S.cluster, why, sizeof(why));
    long long rev = (long long)atomic_load(&S.rev_seen);
    static const char *const what[] = {"applied", "refused"};
    fprintf(f, "# HELP tlsgate_store_configs_total Configs from etcd, by result.\n"
               "# TYPE tlsgate_store_configs_total counter\n");
    for (int k = 0; k < 2; k++)
        fprintf(f, "tlsgate_store_configs_total{result=\"%s\"} %llu\n", what[k],
                (unsigned long long)atomic_load(&tg__admin_store[k]));
    fprintf(f,
            "# HELP tlsgate_store_write_failures_total Admin writes etcd did not take, by reason "
            "(conflict: 409; unavailable: 503).\n"
            "# TYPE tlsgate_store_write_failures_total counter\n"
            "tlsgate_store_write_failures_total{reason=\"conflict\"} %llu\n"
            "tlsgate_store_write_failures_total{reason=\"unavailable\"} %llu\n"
            "# HELP tlsgate_store_up Whether etcd answered the last request (1) or not (0).\n"
            "# TYPE tlsgate_store_up gauge\ntlsgate_store_up %d\n"
            "# HELP tlsgate_store_revision etcd revision of the config last seen.\n"
            "# TYPE tlsgate_store_revision gauge\ntlsgate_store_revision %lld\n",
            (unsigned long long)atomic_load(&tg__admin_store[TG_STORE_CONFLICT]),
            (unsigned long long)atomic_load(&tg__admin_store[TG_STORE_UNAVAILABLE]), up ? 1 : 0,
            rev);
}

bool tg_admin_state_clustered(void)
{
    return S.cluster != NULL;
}

int tg_admin_state_follow(void (*tickets)(const unsigned char *keys, size_t n, void *arg),
                          void *arg)
{
    if (S.cluster == NULL)
        return 0;
    struct tg_cluster_cbs cbs = {.config = state_cb, .tickets = tickets, .arg = arg};
    uv_mutex_lock(&S.mu);
    int64_t rev = S.store_rev;
    uint32_t rot = S.snap ? S.snap->cfg->tickets.rotate_seconds : 3600;
    uint32_t keep = S.snap ? S.snap->cfg->tickets.keep : 3;
    uv_mutex_unlock(&S.mu);
    return tg_cluster_start(S.cluster, rev, &cbs, rot, keep);
}

void tg_admin_state_unfollow(void)
{
    if (S.cluster != NULL)
        tg_cluster_stop(S.cluster);
}

int tg_admin_state_open(const char *file, struct tg_config **cfg, uint64_t *version,
                        struct tg_err *err)
{
    char what[2048];
    bool cluster = file != NULL && tg_config_is_instance_file(file);
    int rc = cluster ? decide_cluster(file, cfg, version, err, false, what, sizeof(what))
                     : decide(file, cfg, version, err, false, what, sizeof(what));
    if (rc == 0)
        tg_log_info("config: %s", what);
    return rc;
}

int tg_admin_state_check(const char *file, struct tg_config **cfg, char *what, size_t what_len,
                         struct tg_err *err)
{
    uint64_t version = 0;
    bool cluster = file != NULL && tg_config_is_instance_file(file);
    int rc = cluster ? decide_cluster(file, cfg, &version, err, true, what, what_len)
                     : decide(file, cfg, &version, err, true, what, what_len);
    tg_admin_state_close();
    return rc;
}

void tg_admin_state_started(struct tg_net *net, struct tg_snapshot *snap,
                            tg_admin_applied_cb applied, void *arg)
{
    uv_mutex_lock(&S.mu);
    S.net = net;
    S.snap = tg_snapshot_ref(snap);
    S.applied = applied;
    S.applied_arg = arg;
    uv_mutex_unlock(&S.mu);
}

void tg_admin_state_set_guard(tg_admin_guard_cb guard, void *arg)
{
    uv_mutex_lock(&S.mu);
    S.guard = guard;
    S.guard_arg = arg;
    uv_mutex_unlock(&S.mu);
}

void tg__admin_state_on_change(void (*changed)(void))
{
    uv_mutex_lock(&S.mu);
    S.changed = changed;
    uv_mutex_unlock(&S.mu);
}

/* Whether a reload of doc is a new version: not when it equals the document that runs (the
 * one stored, compared as the state store keeps it: parsed JSON, so key order and spacing do not
 * count). Such a reload reads key material and files again and publishes a new snapshot under the
 * same version, and writes nothing: a full state disk does not stop a certificate renewal. With
 * an etcd store the version is the store's either way. */
static bool same_doc(const json_t *doc)
{
    return S.cluster == NULL && S.doc != NULL && json_equal(doc, S.doc);
}

/* Builds, binds, stores and publishes doc as version next (S.mu held); next == S.version (a
 * reload of the same document, or the etcd store's own version) stores nothing locally but the
 * etcd store's local copy. On failure nothing changes. Takes a reference to doc on success. */
static int apply_locked(json_t *doc, const char *file_sha, uint64_t next, struct tg_err *err)
{
    struct tg_config *cfg = NULL;
    struct tg_snapshot *snap = NULL;
    if (load_doc(doc, &cfg, err) != 0) {
        if (S.guard != NULL)
            S.guard(NULL, err, S.guard_arg);
        return -EINVAL;
    }
    if (S.guard != NULL && S.guard(cfg, err, S.guard_arg) != 0) {
        tg_config_free(cfg);
        return -EINVAL;
    }
    if (tg_snapshot_new(cfg, next, &snap, err) != 0) {
        tg_config_free(cfg);
        return -EINVAL;
    }
    tg_proxy_snapshot_init(snap);
    if (tg_net_check_bind(snap->cfg, err) != 0) {
        tg_snapshot_unref(snap);
        return -EINVAL;
    }
    if (S.cluster != NULL) {
        save_local(doc, next, S.store_rev);
    } else if (S.persist && next != S.version) {
        struct tg_store_doc nd = {.version = next, .config = doc};
        snprintf(nd.file_sha256, sizeof(nd.file_sha256), "%s", file_sha);
        if (tg_store_save(S.state_dir, &nd, err) != 0) {
            tg_snapshot_unref(snap);
            return -EIO;
        }
    }
    if (S.applied != NULL && S.snap != NULL)
        S.applied(S.snap->cfg, snap->cfg, S.applied_arg);
    tg_log_set_level((enum tg_log_level)snap->cfg->log.level);
    if (S.cluster != NULL) /* the cluster's ring follows session_tickets */
        tg_cluster_set_rotation(S.cluster, snap->cfg->tickets.rotate_seconds,
                                snap->cfg->tickets.keep);
    if (S.net != NULL)
        tg_net_publish(S.net, snap);
    tg_snapshot_unref(S.snap);
    S.snap = snap;
    json_decref(S.doc);
    S.doc = json_incref(doc);
    if (next != S.version && file_sha != S.file_sha) /* (the stored state's, as stored) */
        memcpy(S.file_sha, file_sha, sizeof(S.file_sha));
    S.version = next;
    if (S.changed != NULL)
        S.changed();
    return 0;
}

/* store etcd: validates doc, then writes it to etcd as the store's next version if the store
 * still holds the revision last seen, then applies it here. S.wmu held (one write at a time),
 * S.mu not: reads (GET /api/v1/config on a worker loop) never wait for etcd. */
static int cluster_put(json_t *doc, uint64_t expect, struct tg_err *err, uint64_t *version)
{
    uv_mutex_lock(&S.mu);
    uint64_t running = S.version, next = TG_MAX(S.store_version, S.version) + 1;
    int64_t seen = S.store_rev;
    uv_mutex_unlock(&S.mu);
    *version = running;
    if (expect != 0 && expect != running)
        return -ESTALE;
    struct tg_config *cfg = NULL;
    if (load_doc(doc, &cfg, err) != 0) /* S.inst, S.label and S.base_dir never change */
        return -EINVAL;
    tg_config_free(cfg);
    char why[512] = "";
    int64_t rev = 0;
    int rc = tg_cluster_put(S.cluster, doc, next, seen, &rev, why, sizeof(why));
    if (rc != 0 && rc != -ESTALE)
        atomic_fetch_add(&tg__admin_store[TG_STORE_UNAVAILABLE], 1);
    if (rc == -ESTALE) {
        tg_log_info("store: a write lost to another one (%s): 409", why);
        return rc;
    }
    if (rc == -ECONNREFUSED) {
        tg_log_warn("store: a write refused with 503: etcd is unreachable (%s)", why);
        tg_err_error(err, NULL, NULL, "etcd is unreachable (%s): nothing was written", why);
        return -EAGAIN;
    }
    if (rc != 0) {
        tg_log_warn("store: a write answered 503: etcd did not confirm it (%s); its outcome is "
                    "unknown",
                    why);
        tg_err_error(err, NULL, NULL,
                     "etcd did not confirm the write (%s): its outcome is unknown (etcd may "
                     "still commit it once it has quorum again; GET /api/v1/config shows what "
                     "is applied)",
                     why);
        return -ETIMEDOUT;
    }
    uv_mutex_lock(&S.mu);
    if (rev > S.store_rev) { /* else the watch brought it already (or something newer) */
        set_store(rev, next);
        rc = apply_locked(doc, S.file_sha, next, err);
        if (rc != 0) /* stored but not applicable here (a bind failed): the watch skips it */
            tg__admin_log_errors("store: a config written to etcd does not apply here: ", err);
    }
    *version = S.version;
    uv_mutex_unlock(&S.mu);
    return rc;
}

int tg__admin_state_remote(json_t *doc, uint64_t version, int64_t revision)
{
    uv_mutex_lock(&S.mu);
    int rc = 0;
    if (revision <= S.store_rev) { /* this instance's own write, already applied */
        uv_mutex_unlock(&S.mu);
        return 0;
    }
    set_store(revision, version);
    struct tg_err err;
    tg_err_init(&err);
    uint64_t running = S.version;
    rc = apply_locked(doc, S.file_sha, version, &err);
    uv_mutex_unlock(&S.mu);
    if (rc == 0) {
        tg_log_info("store: config version %llu (etcd revision %lld) applied from the store",
                    (unsigned long long)version, (long long)revision);
    } else {
        tg__admin_log_errors("store: ", &err);
        tg_log_error("store: config version %llu (etcd revision %lld) refused with %zu "
                     "error(s): still running version %llu",
                     (unsigned long long)version, (long long)revision, tg_err_count(&err),
                     (unsigned long long)running);
    }
    atomic_fetch_add(&tg__admin_store[rc == 0 ? TG_STORE_APPLIED : TG_STORE_REFUSED], 1);
    tg_err_close(&err);
    return rc == 0 ? 0 : -EINVAL;
}

int tg__admin_state_put(json_t *doc, uint64_t expect, struct tg_err *err, uint64_t *version)
{
    int rc;
    if (S.cluster != NULL) {
        uv_mutex_lock(&S.wmu);
        rc = cluster_put(doc, expect, err, version);
        uv_mutex_unlock(&S.wmu);
        if (rc == -ESTALE) /* lost the compare in etcd, or the winner arrived first */
            atomic_fetch_add(&tg__admin_store[TG_STORE_CONFLICT], 1);
    } else {
        uv_mutex_lock(&S.mu);
        if (expect != 0 && expect != S.version)
            rc = -ESTALE;
        else
            rc = apply_locked(doc, S.file_sha, S.version + 1, err);
        *version = S.version;
        uv_mutex_unlock(&S.mu);
    }
    if (rc == 0)
        tg_log_info("config version %llu applied through the admin API",
                    (unsigned long long)*version);
    return rc;
}

json_t *tg__admin_state_get(uint64_t *version)
{
    uv_mutex_lock(&S.mu);
    json_t *copy = json_deep_copy(S.doc);
    *version = S.version;
    uv_mutex_unlock(&S.mu);
    return copy;
}

int tg_admin_state_reload(struct tg_err *err, uint64_t *version, bool *same)
{
    *same = false;
    if (S.cluster != NULL) { /* the config lives in etcd: read key material and CRLs again */
        *same = true;
        return tg__admin_state_reapply(err, version);
    }
    uv_mutex_lock(&S.mu);
    int rc = 0;
    json_t *doc = NULL;
    char sha[65];
    snprintf(sha, sizeof(sha), "%s", S.file_sha);
    size_t len = 0;
    if (S.file == NULL) {
        /* The embedded default's certificates are renewed on reload as at start. */
        struct tg_cert_default_info info;
        if (tg_cert_ensure_default(S.base_dir, &info, err) != 0 ||
            tg_cert_ensure_named(S.base_dir, "admin", NULL, err) != 0) {
            rc = -EINVAL;
            goto out;
        }
        if (info.found != TG_CERT_DEFAULT_OK)
            tg_log_info("default certificate %s/default.crt renewed with a new key, valid until %s",
                        S.base_dir, info.not_after);
    }
    char *text = source_text(S.file, &len, err);
    if (text == NULL) {
        rc = -EINVAL;
        goto out;
    }
    tg_store_sha256_hex(text, len, sha);
    if (strcmp(sha, S.file_sha) == 0) {
        /* The file is unchanged: what runs is still the truth; read key material again. */
        doc = json_incref(S.doc);
    } else {
        json_error_t je;
        doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
        if (doc == NULL) {
            struct tg_loc loc = {S.label, je.line, je.column};
            tg_err_error(err, &loc, NULL, "JSON syntax error: %s", je.text);
            rc = -EINVAL;
        }
    }
    OPENSSL_cleanse(text, len);
    free(text);
    if (rc == 0) {
        *same = same_doc(doc);
        rc = apply_locked(doc, sha, *same ? S.version : S.version + 1, err);
    }
out:
    json_decref(doc);
    *version = S.version;
    uv_mutex_unlock(&S.mu);
    atomic_fetch_add(&tg__admin_reloads[rc == 0 ? 0 : 1], 1);
    return rc;
}

int tg__admin_state_reapply(struct tg_err *err, uint64_t *version)
{
    uv_mutex_lock(&S.mu);
    json_t *doc = json_incref(S.doc);
    /* the same document (with an etcd store the version is the store's): key material read
     * again is not a new version */
    int rc = apply_locked(doc, S.file_sha, S.version, err);
    json_decref(doc);
    *version = S.version;
    uv_mutex_unlock(&S.mu);
    atomic_fetch_add(&tg__admin_reloads[rc == 0 ? 0 : 1], 1);
    if (rc == 0)
        tg_log_info("key material and CRL files read again (POST /api/v1/reload): the same "
                    "document, version %llu kept",
                    (unsigned long long)*version);
    else
        tg_log_error("POST /api/v1/reload failed with %zu error(s): nothing changed",
                     tg_err_count(err));
    return rc;
}

char *tg__admin_state_file(void)
{
    uv_mutex_lock(&S.mu);
    char *f = S.file ? tg_xstrdup(S.file) : NULL;
    uv_mutex_unlock(&S.mu);
    return f;
}

struct tg_snapshot *tg_admin_state_current(void)
{
    uv_mutex_lock(&S.mu);
    struct tg_snapshot *s = S.snap ? tg_snapshot_ref(S.snap) : NULL;
    uv_mutex_unlock(&S.mu);
    return s;
}

void tg_admin_state_close(void)
{
    if (!S.open)
        return;
    if (S.cluster != NULL)
        uv_mutex_destroy(&S.wmu);
    tg_cluster_free(S.cluster); /* its thread may be applying: joined before S goes */
    tg_config_instance_free(S.inst);
    tg_snapshot_unref(S.snap);
    json_decref(S.doc);
    free(S.file);
    free(S.base_dir);
    free(S.label);
    free(S.state_dir);
    uv_mutex_destroy(&S.mu);
    memset(&S, 0, sizeof(S));
}
