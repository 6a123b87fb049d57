/* Durable config state: the config document the gateway runs, its version and the fingerprint of
 * the file it came from. The file store keeps it at <state_dir>/config.json, written with
 * write-temp, fsync, rename, fsync of the directory, so a crash at any moment leaves the old or
 * the new state, never a torn one. The etcd store (etcd.c, cluster.c) shares the config and the
 * session ticket keys between instances; the state directory then keeps the last copy applied
 * (cluster.json), for a start while etcd is unreachable. */
#ifndef TG_STORE_STORE_H
#define TG_STORE_STORE_H

#include <stdint.h>

#include <jansson.h>

#include "config/config.h"
#include "core/err.h"

struct tg_store_doc {
    uint64_t version;
    int64_t revision;     /* etcd's revision of the config key (cluster.json), else 0 */
    char file_sha256[65]; /* hex SHA-256 of the -c file's text it was derived from, or "" */
    json_t *config;       /* the config document (a reference) */
};

/* Reads <state_dir>/config.json into doc (temp files of interrupted writes are removed first)
 * (doc->config a new reference). 0, -ENOENT when there is none, or -EINVAL/-errno with the reason
 * in err (a state that does not parse). */
int tg_store_load(const char *state_dir, struct tg_store_doc *doc, struct tg_err *err);
/* As tg_store_load / tg_store_save for <state_dir>/<name> (the etcd store's local copy is
 * "cluster.json"). */
int tg_store_load_named(const char *state_dir, const char *name, struct tg_store_doc *doc,
                        struct tg_err *err);
int tg_store_save_named(const char *state_dir, const char *name, const struct tg_store_doc *doc,
                        struct tg_err *err);
/* Writes doc atomically and durably (mode 0600; the directory is made 0700 if missing). */
int tg_store_save(const char *state_dir, const struct tg_store_doc *doc, struct tg_err *err);
void tg_store_doc_clear(struct tg_store_doc *doc);
/* Hex SHA-256 of len bytes into out[65]. */
void tg_store_sha256_hex(const void *p, size_t len, char out[65]);

/* ---- etcd v3 through its JSON gateway (etcd.c): blocking, for control threads only ---- */

struct tg_etcd;
struct tg_etcd_watch;
/* etcd's keys and values travel as standard base64: a new string; and back (a new
 * NUL-terminated buffer; -EINVAL if malformed). */
char *tg_store_b64(const void *p, size_t len);
int tg_store_unb64(const char *s, unsigned char **out, size_t *out_len);
/* A client for sc's endpoints (the TLS context is made here: a truststore or client
 * certificate that does not load is an error). */
int tg_etcd_new(const struct tg_store_conf *sc, struct tg_etcd **out, struct tg_err *err);
void tg_etcd_free(struct tg_etcd *e);
size_t tg_etcd_endpoints(const struct tg_etcd *e);
/* "host:port" of endpoint i. */
const char *tg_etcd_endpoint(const struct tg_etcd *e, size_t i);
/* POSTs req to path ("/v3/kv/range"...) on the first endpoint that answers; *resp a new JSON
 * object. 0; -ECONNREFUSED: no endpoint took the request (nothing was sent, or each member that
 * answered had no leader); -ETIMEDOUT: sent but not confirmed (a write's outcome is unknown);
 * -EACCES: authentication refused; -EIO or -EPROTO: etcd answered an error (why says which).
 * why never holds a password or token. */
int tg_etcd_call(struct tg_etcd *e, const char *path, json_t *req, json_t **resp, char *why,
                 size_t why_len);
/* As tg_etcd_call, on endpoint i only. */
int tg_etcd_call_at(struct tg_etcd *e, size_t i, const char *path, json_t *req, json_t **resp,
                    char *why, size_t why_len);
/* Opens a watch (req: {"create_request": {...}}); its first message is read by watch_next. */
int tg_etcd_watch_open(struct tg_etcd *e, json_t *req, struct tg_etcd_watch **out, char *why,
                       size_t why_len);
/* The next message within ms: 0 with *msg (a new reference), -EAGAIN for none yet, or
 * another -errno when the stream ended (close it and open another). */
int tg_etcd_watch_next(struct tg_etcd_watch *w, int ms, json_t **msg);
void tg_etcd_watch_close(struct tg_etcd_watch *w);

/* ---- The shared state of a cluster of instances (cluster.c) ---- */

/* Keys under the prefix: "config" = {"version": N, "config": {...}}; "tickets" =
 * {"rotated_at": unix seconds, "keys": base64 of 80-byte keys, newest first}; "lock/tickets"
 * (held under a lease while one instance rotates); "applied/<instance>" = the last config an
 * instance applied. */
struct tg_cluster;
struct tg_cluster_cbs {
    /* A config from the store newer than the last one seen: validate and apply as a local PUT
     * does; 0, or -EINVAL (refused: the running one stays). On the store's thread. */
    int (*config)(json_t *doc, uint64_t version, int64_t revision, void *arg);
    /* The ticket key ring the store holds: n keys of 80 bytes, newest first. */
    void (*tickets)(const unsigned char *keys, size_t n, void *arg);
    void *arg;
};
/* A cluster client for sc (no I/O yet). instance names this instance in applied/ records. */
int tg_cluster_new(const struct tg_store_conf *sc, const char *instance, struct tg_cluster **out,
                   struct tg_err *err);
/* Reads the config the store holds: 0 with *doc (new reference), *version and *revision;
 * -ENOENT when the store holds none; else -errno with why (unreachable, refused). */
int tg_cluster_read(struct tg_cluster *c, json_t **doc, uint64_t *version, int64_t *revision,
                    char *why, size_t why_len);
/* Writes doc as version if the config key's revision is still expect (0: the key must not
 * exist): 0 with *revision; -ESTALE (another write came first); -ECONNREFUSED (nothing
 * written); -ETIMEDOUT (sent, unconfirmed: may still be committed); else -errno. */
int tg_cluster_put(struct tg_cluster *c, json_t *doc, uint64_t version, int64_t expect,
                   int64_t *revision, char *why, size_t why_len);
/* Starts the store's thread (no I/O on the caller's): reads the ticket ring, then watches the
 * prefix from after revision, hands changes to cbs,
 * rotates the ticket keys every rotate_seconds (one instance at a time, under a lease), and
 * records each apply. */
int tg_cluster_start(struct tg_cluster *c, int64_t revision, const struct tg_cluster_cbs *cbs,
                     uint32_t rotate_seconds, uint32_t keep);
/* Changes the rotation period and ring size (a config change). */
void tg_cluster_set_rotation(struct tg_cluster *c, uint32_t rotate_seconds, uint32_t keep);
/* Whether the last exchange with etcd worked, and why not. */
bool tg_cluster_reachable(struct tg_cluster *c, char *why, size_t why_len);
/* Stops the thread and waits for it (no callback runs after). */
void tg_cluster_stop(struct tg_cluster *c);
/* Stops the thread (waits for it) and frees c (accepts NULL). */
void tg_cluster_free(struct tg_cluster *c);
struct tg_etcd *tg_cluster_etcd(struct tg_cluster *c);

#endif
