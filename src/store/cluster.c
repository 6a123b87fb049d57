/* The etcd store of a cluster: reads and compare-and-swap writes of the shared config, and the
 * store's own control thread, which watches the prefix (resuming from the last revision seen,
 * re-reading everything after a compaction), hands each change to the instance through the same
 * path as a local write, rotates the shared session ticket keys under a lease-held lock (one
 * instance at a time) and records what each instance applied. */
#include "store/internal.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <uv.h>

#include "core/core.h"
#include "core/log.h"

#define KEY_LEN  80
#define KEYS_MAX 16
#define LOCK_TTL 10 /* seconds a crashed rotator holds the lock */

struct tg_cluster {
    struct tg_etcd *etcd;
    char *prefix;
    char *instance;
    struct tg_cluster_cbs cbs;
    uv_thread_t thread;
    bool running;
    atomic_bool stop;
    atomic_uint rotate_seconds, keep;
    int64_t rev;         /* the last revision handled (thread) */
    int64_t tickets_rev; /* mod revision of the ring handed over last (thread) */
    int64_t rotated_at;  /* of the ring in the store (thread) */
    uv_mutex_t mu;       /* guards why */
    bool reachable;
    char why[512];
};

static char *key_of(struct tg_cluster *c, const char *name)
{
    return tg_xasprintf("%s%s", c->prefix, name);
}

static json_t *b64_str(const char *s)
{
    char *b = tg_store__b64(s, strlen(s));
    json_t *j = json_string(b);
    free(b);
    return j;
}

/* The end of the range of keys under prefix (the prefix with its last byte incremented). */
static json_t *range_end(const char *prefix)
{
    char *e = tg_xstrdup(prefix);
    e[strlen(e) - 1]++;
    json_t *j = b64_str(e);
    free(e);
    return j;
}

static void set_reachable(struct tg_cluster *c, bool ok, const char *why)
{
    uv_mutex_lock(&c->mu);
    bool was = c->reachable;
    c->reachable = ok;
    snprintf(c->why, sizeof(c->why), "%s", ok ? "" : why);
    uv_mutex_unlock(&c->mu);
    if (was && !ok)
        tg_log_warn("store: etcd unreachable (%s): serving the last applied config", why);
    else if (!was && ok)
        tg_log_info("store: etcd reached again");
}

bool tg_cluster_reachable(struct tg_cluster *c, char *why, size_t why_len)
{
    uv_mutex_lock(&c->mu);
    bool ok = c->reachable;
    snprintf(why, why_len, "%s", c->why);
    uv_mutex_unlock(&c->mu);
    return ok;
}

int tg_cluster_new(const struct tg_store_conf *sc, const char *instance, struct tg_cluster **out,
                   struct tg_err *err)
{
    struct tg_cluster *c = tg_xcalloc(1, sizeof(*c));
    if (tg_etcd_new(sc, &c->etcd, err) != 0) {
        free(c);
        return -EINVAL;
    }
    c->prefix = tg_xstrdup(sc->prefix ? sc->prefix : "/tlsgate/default/");
    c->instance = tg_xstrdup(instance);
    c->reachable = true;
    uv_mutex_init(&c->mu);
    *out = c;
    return 0;
}

struct tg_etcd *tg_cluster_etcd(struct tg_cluster *c)
{
    return c->etcd;
}

/* Range of one key: 0 with *kv (absent: -ENOENT), *header_rev. */
static int get_key(struct tg_cluster *c, const char *name, struct tg_store__kv *kv,
                   int64_t *header_rev, char *why, size_t why_len)
{
    char *k = key_of(c, name);
    json_t *req = json_pack("{s:o,s:b}", "key", b64_str(k), "serializable", 0);
    free(k);
    json_t *resp = NULL;
    int rc = tg_etcd_call(c->etcd, "/v3/kv/range", req, &resp, why, why_len);
    json_decref(req);
    if (rc != 0)
        return rc;
    if (header_rev != NULL)
        *header_rev = tg_store__int(json_object_get(json_object_get(resp, "header"), "revision"));
    json_t *kvs = json_object_get(resp, "kvs");
    if (json_array_size(kvs) == 0)
        rc = -ENOENT;
    else if (tg_store__kv(json_array_get(kvs, 0), kv) != 0) {
        snprintf(why, why_len, "etcd answered a key-value record that does not decode");
        rc = -EPROTO;
    }
    json_decref(resp);
    return rc;
}

int tg_cluster_read(struct tg_cluster *c, json_t **doc, uint64_t *version, int64_t *revision,
                    char *why, size_t why_len)
{
    struct tg_store__kv kv;
    int64_t hrev = 0;
    int rc = get_key(c, "config", &kv, &hrev, why, why_len);
    if (rc == -ENOENT) {
        snprintf(why, why_len,
                 "the store holds no config under %sconfig (seed it with "
                 "`tlsgate store push -c FILE`)",
                 c->prefix);
        *revision = hrev;
        return rc;
    }
    if (rc != 0)
        return rc;
    if (tg_store__config_value(kv.value, kv.value_len, doc, version) != 0) {
        snprintf(why, why_len, "%sconfig is not {\"version\": N, \"config\": {...}}", c->prefix);
        rc = -EPROTO;
    }
    *revision = kv.mod_revision;
    tg_store__kv_clear(&kv);
    return rc;
}

/* A txn: if compare holds, put key=value (lease 0: none); 0 when it did (*rev set), -ESTALE
 * when the compare failed. */
static int txn_put(struct tg_cluster *c, json_t *compare, const char *key, const char *value,
                   size_t value_len, const char *lease, int64_t *rev, char *why, size_t why_len)
{
    char *vb = tg_store__b64(value, value_len);
    json_t *put = json_pack("{s:o,s:s}", "key", b64_str(key), "value", vb);
    if (lease != NULL)
        json_object_set_new(put, "lease", json_string(lease));
    OPENSSL_cleanse(vb, strlen(vb));
    free(vb);
    json_t *req = json_pack("{s:[o],s:[{s:o}]}", "compare", compare, "success", "request_put", put);
    json_t *resp = NULL;
    int rc = tg_etcd_call(c->etcd, "/v3/kv/txn", req, &resp, why, why_len);
    json_t *vals = json_object_get(
        json_object_get(json_array_get(json_object_get(req, "success"), 0), "request_put"),
        "value");
    if (vals != NULL) /* the value may hold passwords or keys */
        OPENSSL_cleanse((char *)json_string_value(vals), json_string_length(vals));
    json_decref(req);
    if (rc != 0)
        return rc;
    if (!json_is_true(json_object_get(resp, "succeeded")))
        rc = -ESTALE;
    else if (rev != NULL)
        *rev = tg_store__int(json_object_get(json_object_get(resp, "header"), "revision"));
    json_decref(resp);
    return rc;
}

static json_t *cmp_mod(const char *key, int64_t rev)
{
    char r[32];
    snprintf(r, sizeof(r), "%lld", (long long)rev);
    /* create_revision 0 says "absent"; a mod_revision compare with 0 would match nothing */
    return rev == 0 ? json_pack("{s:o,s:s,s:s,s:s}", "key", b64_str(key), "target", "CREATE",
                                "result", "EQUAL", "create_revision", "0")
                    : json_pack("{s:o,s:s,s:s,s:s}", "key", b64_str(key), "target", "MOD", "result",
                                "EQUAL", "mod_revision", r);
}

int tg_cluster_put(struct tg_cluster *c, json_t *doc, uint64_t version, int64_t expect,
                   int64_t *revision, char *why, size_t why_len)
{
    json_t *v = json_pack("{s:I,s:O}", "version", (json_int_t)version, "config", doc);
    char *text = json_dumps(v, JSON_COMPACT);
    json_decref(v);
    char *k = key_of(c, "config");
    int rc = txn_put(c, cmp_mod(k, expect), k, text, strlen(text), NULL, revision, why, why_len);
    if (rc == -ESTALE)
        snprintf(why, why_len, "the store's config changed since revision %lld", (long long)expect);
    free(k);
    OPENSSL_cleanse(text, strlen(text));
    free(text);
    if (rc == 0 || rc == -ESTALE)
        set_reachable(c, true, "");
    else if (rc == -ECONNREFUSED || rc == -ETIMEDOUT)
        set_reachable(c, false, why);
    return rc;
}

/* ---- Session ticket keys ---- */

static void hand_tickets(struct tg_cluster *c, const struct tg_store__kv *kv)
{
    json_t *j = json_loadb(kv->value, kv->value_len, 0, NULL);
    const char *b = json_string_value(json_object_get(j, "keys"));
    unsigned char *keys = NULL;
    size_t n = 0;
    if (b == NULL || tg_store__unb64(b, &keys, &n) != 0 || n == 0 || n % KEY_LEN != 0 ||
        n / KEY_LEN > KEYS_MAX) {
        tg_log_error("store: %stickets is not a ticket key ring: keeping the keys in use",
                     c->prefix);
    } else {
        c->tickets_rev = kv->mod_revision;
        c->rotated_at = tg_store__int(json_object_get(j, "rotated_at"));
        if (c->cbs.tickets != NULL)
            c->cbs.tickets(keys, n / KEY_LEN, c->cbs.arg);
        tg_log_debug("store: session ticket keys from the store (%zu, rotated at %lld)",
                     n / KEY_LEN, (long long)c->rotated_at);
    }
    if (keys != NULL)
        OPENSSL_cleanse(keys, n);
    free(keys);
    json_decref(j);
}

/* Rotates the ring if it is due and no other instance is at it: the lock is a key created
 * under a short lease (a crashed rotator's lock expires), then the ring is replaced by a
 * compare-and-swap on its revision. */
static void maybe_rotate(struct tg_cluster *c)
{
    int64_t now = (int64_t)time(NULL);
    unsigned period = atomic_load(&c->rotate_seconds);
    if (c->tickets_rev != 0 && now < c->rotated_at + (int64_t)period)
        return;
    char why[512];
    json_t *req = json_pack("{s:i}", "TTL", LOCK_TTL), *resp = NULL;
    int rc = tg_etcd_call(c->etcd, "/v3/lease/grant", req, &resp, why, sizeof(why));
    json_decref(req);
    const char *lease = json_string_value(json_object_get(resp, "ID"));
    if (rc != 0 || lease == NULL) {
        json_decref(resp);
        return;
    }
    char *lk = key_of(c, "lock/tickets");
    rc = txn_put(c, cmp_mod(lk, 0), lk, c->instance, strlen(c->instance), lease, NULL, why,
                 sizeof(why));
    json_decref(resp);
    if (rc != 0) {
        free(lk);
        return; /* another instance rotates: its ring arrives through the watch */
    }
    struct tg_store__kv kv;
    int64_t cur_rev = 0;
    unsigned char ring[KEYS_MAX * KEY_LEN];
    size_t n = 1;
    if (RAND_bytes(ring, KEY_LEN) != 1)
        abort();
    rc = get_key(c, "tickets", &kv, NULL, why, sizeof(why));
    if (rc == 0) {
        json_t *j = json_loadb(kv.value, kv.value_len, 0, NULL);
        unsigned char *old = NULL;
        size_t olen = 0;
        const char *b = json_string_value(json_object_get(j, "keys"));
        int64_t at = tg_store__int(json_object_get(j, "rotated_at"));
        cur_rev = kv.mod_revision;
        if (now < at + (int64_t)period) {
            rc = 1; /* rotated meanwhile */
        } else if (b != NULL && tg_store__unb64(b, &old, &olen) == 0 && olen % KEY_LEN == 0) {
            size_t keep = atomic_load(&c->keep);
            for (size_t i = 0; i < olen / KEY_LEN && n < keep && n < KEYS_MAX; i++, n++)
                memcpy(ring + n * KEY_LEN, old + i * KEY_LEN, KEY_LEN);
        }
        if (old != NULL)
            OPENSSL_cleanse(old, olen);
        free(old);
        json_decref(j);
        tg_store__kv_clear(&kv);
    }
    if (rc == 0 || rc == -ENOENT) {
        char *b = tg_store__b64(ring, n * KEY_LEN);
        char *val = tg_xasprintf("{\"rotated_at\": %lld, \"keys\": \"%s\"}", (long long)now, b);
        char *tk = key_of(c, "tickets");
        rc = txn_put(c, cmp_mod(tk, cur_rev), tk, val, strlen(val), NULL, NULL, why, sizeof(why));
        if (rc == 0)
            tg_log_info("store: session ticket keys rotated for the cluster (%zu in the ring)", n);
        else if (rc != -ESTALE)
            tg_log_warn("store: the ticket key rotation was not stored (%s); the ring in use "
                        "stays",
                        why);
        free(tk);
        OPENSSL_cleanse(b, strlen(b));
        OPENSSL_cleanse(val, strlen(val));
        free(b);
        free(val);
    }
    OPENSSL_cleanse(ring, sizeof(ring));
    req = json_pack("{s:o}", "key", b64_str(lk));
    if (tg_etcd_call(c->etcd, "/v3/kv/deleterange", req, &resp, why, sizeof(why)) == 0)
        json_decref(resp);
    else
        tg_log_warn("store: cannot release the ticket rotation lock (%s); it ends with its "
                    "%d s lease",
                    why, LOCK_TTL);
    json_decref(req);
    free(lk);
}

/* ---- The watch ---- */

static void record_apply(struct tg_cluster *c, uint64_t version, int64_t rev, bool ok)
{
    char *k = tg_xasprintf("%sapplied/%s", c->prefix, c->instance);
    char *val = tg_xasprintf("{\"version\": %llu, \"revision\": %lld, \"at\": %lld, \"ok\": %s}",
                             (unsigned long long)version, (long long)rev, (long long)time(NULL),
                             ok ? "true" : "false");
    char *vb = tg_store__b64(val, strlen(val));
    json_t *req = json_pack("{s:o,s:s}", "key", b64_str(k), "value", vb), *resp = NULL;
    char why[256];
    if (tg_etcd_call(c->etcd, "/v3/kv/put", req, &resp, why, sizeof(why)) == 0)
        json_decref(resp);
    json_decref(req);
    free(vb);
    free(val);
    free(k);
}

static void handle_kv(struct tg_cluster *c, json_t *kvj)
{
    struct tg_store__kv kv;
    if (tg_store__kv(kvj, &kv) != 0) {
        tg_log_error("store: etcd sent a key-value record that does not decode: ignored");
        return;
    }
    size_t pl = strlen(c->prefix);
    const char *name = strncmp(kv.key, c->prefix, pl) == 0 ? kv.key + pl : "";
    if (strcmp(name, "config") == 0 && kv.mod_revision > c->rev) {
        json_t *doc = NULL;
        uint64_t version = 0;
        if (tg_store__config_value(kv.value, kv.value_len, &doc, &version) != 0) {
            tg_log_error("store: %sconfig (revision %lld) is not {\"version\": N, \"config\": "
                         "{...}}: refused, the running config stays",
                         c->prefix, (long long)kv.mod_revision);
        } else {
            int rc = c->cbs.config(doc, version, kv.mod_revision, c->cbs.arg);
            record_apply(c, version, kv.mod_revision, rc == 0);
        }
        json_decref(doc);
    } else if (strcmp(name, "tickets") == 0 && kv.mod_revision > c->tickets_rev) {
        hand_tickets(c, &kv);
    }
    if (kv.mod_revision > c->rev)
        c->rev = kv.mod_revision;
    tg_store__kv_clear(&kv);
}

/* Reads config and tickets afresh (at start, after a compaction). */
static void full_read(struct tg_cluster *c)
{
    char why[512];
    for (int i = 0; i < 2; i++) {
        struct tg_store__kv kv;
        int64_t hrev = 0;
        if (get_key(c, i == 0 ? "config" : "tickets", &kv, &hrev, why, sizeof(why)) != 0)
            continue;
        char *key = tg_store__b64(kv.key, strlen(kv.key));
        char *val = tg_store__b64(kv.value, kv.value_len);
        json_t *j = json_pack("{s:s,s:s,s:I,s:I}", "key", key, "value", val, "mod_revision",
                              (json_int_t)kv.mod_revision, "create_revision",
                              (json_int_t)kv.create_revision);
        if (i == 0)
            c->rev = TG_MIN(c->rev, kv.mod_revision - 1); /* make it count as new */
        handle_kv(c, j);
        json_decref(j);
        OPENSSL_cleanse(val, strlen(val));
        free(key);
        free(val);
        tg_store__kv_clear(&kv);
        if (hrev > c->rev)
            c->rev = hrev;
    }
}

static void sleep_ms(struct tg_cluster *c, unsigned ms)
{
    for (unsigned t = 0; t < ms && !atomic_load(&c->stop); t += 50)
        usleep(50 * 1000);
}

static void run(void *arg)
{
    struct tg_cluster *c = arg;
    struct tg_etcd_watch *w = NULL;
    uint64_t next_rotate_check = 0;
    char *end_key = tg_xstrdup(c->prefix);
    /* The ring first (the caller never waits for etcd: its loop goes on serving). */
    struct tg_store__kv kv;
    char first_why[512];
    if (get_key(c, "tickets", &kv, NULL, first_why, sizeof(first_why)) == 0) {
        hand_tickets(c, &kv);
        tg_store__kv_clear(&kv);
    }
    while (!atomic_load(&c->stop)) {
        char why[512];
        if (w == NULL) {
            json_t *req = json_pack("{s:{s:o,s:o,s:I}}", "create_request", "key",
                                    b64_str(c->prefix), "range_end", range_end(c->prefix),
                                    "start_revision", (json_int_t)(c->rev + 1));
            int rc = tg_etcd_watch_open(c->etcd, req, &w, why, sizeof(why));
            json_decref(req);
            if (rc != 0) {
                set_reachable(c, false, why);
                sleep_ms(c, 500);
                continue;
            }
            set_reachable(c, true, "");
        }
        json_t *msg = NULL;
        int rc = tg_etcd_watch_next(w, 250, &msg);
        if (rc == 0) {
            json_t *res = json_object_get(msg, "result");
            int64_t compact = tg_store__int(json_object_get(res, "compact_revision"));
            json_t *events = json_object_get(res, "events");
            for (size_t i = 0; i < json_array_size(events); i++) {
                json_t *ev = json_array_get(events, i);
                if (json_string_value(json_object_get(ev, "type")) == NULL) /* PUT */
                    handle_kv(c, json_object_get(ev, "kv"));
            }
            if (compact > 0 || json_is_true(json_object_get(res, "canceled")) || res == NULL) {
                tg_log_warn("store: the watch ended%s: reading the store afresh",
                            compact > 0 ? " (revisions compacted)" : "");
                tg_etcd_watch_close(w);
                w = NULL;
                full_read(c);
            }
            json_decref(msg);
        } else if (rc != -EAGAIN) {
            tg_log_warn("store: the watch on etcd broke: resuming after revision %lld",
                        (long long)c->rev);
            tg_etcd_watch_close(w);
            w = NULL;
            sleep_ms(c, 200);
        }
        if (tg_now_ms() >= next_rotate_check) {
            maybe_rotate(c);
            next_rotate_check = tg_now_ms() + 1000;
        }
    }
    tg_etcd_watch_close(w);
    free(end_key);
}

int tg_cluster_start(struct tg_cluster *c, int64_t revision, const struct tg_cluster_cbs *cbs,
                     uint32_t rotate_seconds, uint32_t keep)
{
    c->cbs = *cbs;
    c->rev = revision;
    atomic_store(&c->rotate_seconds, rotate_seconds);
    atomic_store(&c->keep, keep);
    if (uv_thread_create(&c->thread, run, c) != 0)
        return -EAGAIN;
    c->running = true;
    return 0;
}

void tg_cluster_set_rotation(struct tg_cluster *c, uint32_t rotate_seconds, uint32_t keep)
{
    atomic_store(&c->rotate_seconds, rotate_seconds);
    atomic_store(&c->keep, keep);
}

void tg_cluster_stop(struct tg_cluster *c)
{
    atomic_store(&c->stop, true);
    if (c->running)
        uv_thread_join(&c->thread);
    c->running = false;
}

void tg_cluster_free(struct tg_cluster *c)
{
    if (c == NULL)
        return;
    tg_cluster_stop(c);
    tg_etcd_free(c->etcd);
    free(c->prefix);
    free(c->instance);
    uv_mutex_destroy(&c->mu);
    free(c);
}
