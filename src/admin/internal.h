/* Symbols shared only inside the admin module. */
#ifndef TG_ADMIN_INTERNAL_H
#define TG_ADMIN_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

#include "admin/admin.h"
#include "proxy/proxy.h"
#include "store/store.h"

/* auth.c: who may use the API */
enum tg_admin_auth {
    TG_AUTH_OK = 0,
    TG_AUTH_MISSING, /* no credentials: 401 */
    TG_AUTH_BAD,     /* wrong: 401, counted toward the peer's limit */
    TG_AUTH_LIMITED, /* too many failures from this peer: 429 */
};
/* Decides r's authentication and calls done(r, result, user) on the worker's thread, at once
 * (cached or refused) or after hashing in the thread pool. */
typedef void (*tg_admin_auth_cb)(struct tg_svc_req *r, enum tg_admin_auth res, const char *user);
void tg__admin_authenticate(struct tg_svc_req *r, tg_admin_auth_cb done);
/* Seconds until the peer may try again (for Retry-After). */
unsigned tg__admin_retry_after(const char *peer_ip);
void tg__admin_auth_cleanup(void);

/* state.c */
/* Applies doc (borrowed) as the next version if the current one is expect (0: any): 0,
 * -ESTALE (409), -EINVAL with err (400), -EIO (the state could not be stored). *version: the
 * version now current. */
int tg__admin_state_put(json_t *doc, uint64_t expect, struct tg_err *err, uint64_t *version);
/* store etcd: applies a config the store's watch delivered (version and revision as stored),
 * as a PUT would; one already seen is skipped. 0, or -EINVAL when refused (logged; the running
 * config stays). */
int tg__admin_state_remote(json_t *doc, uint64_t version, int64_t revision);
/* A deep copy of the document in use, and its version. */
json_t *tg__admin_state_get(uint64_t *version);

/* The current document applied again (key material and CRL files re-read) under its version
 * (nothing is stored: it is the same document). */
int tg__admin_state_reapply(struct tg_err *err, uint64_t *version);
/* The -c file (new string), or NULL for the embedded default. */
char *tg__admin_state_file(void);
/* store etcd: configs from the store applied and refused, writes that lost the compare (409)
 * and writes etcd could not take (503). */
enum { TG_STORE_APPLIED, TG_STORE_REFUSED, TG_STORE_CONFLICT, TG_STORE_UNAVAILABLE, TG_STORE_N };
extern atomic_uint_fast64_t tg__admin_store[TG_STORE_N];
/* The store's counters, whether etcd answered last and the revision seen (etcd store only). */
void tg__admin_store_metrics(FILE *f);
/* Reload counts: [0] ok, [1] failed. */
extern atomic_uint_fast64_t tg__admin_reloads[2];
/* changed (NULL: none) is called after each applied change, on the applying thread with the
 * state's lock held; auto_reload (watch.c) registers it at start, so state.c never calls up. */
void tg__admin_state_on_change(void (*changed)(void));
/* Logs each entry of err as an error, after prefix. */
void tg__admin_log_errors(const char *prefix, const struct tg_err *err);

/* certs.c */
json_t *tg__admin_inventory(struct tg_snapshot *snap);
void tg__admin_certificates(struct tg_svc_req *r);
void tg__admin_inventory_metrics(FILE *f);
void tg__admin_reload(struct tg_svc_req *r);
void tg__admin_backends(struct tg_svc_req *r);

/* config.c: the config resource */
void tg__admin_config(struct tg_svc_req *r);
/* The request body as JSON, or NULL after answering 400 with line and column. */
json_t *tg__admin_parse_body(struct tg_svc_req *r);
/* Replaces every secret of doc by "***" (in place). */
void tg__admin_redact(json_t *doc);

/* allow.c: /api/v1/listeners/{name}/allowed-client-certificate-subjects[/{subject}]; false when
 * path (plen bytes, no query) is not one of those. */
bool tg__admin_allow(struct tg_svc_req *r, const char *path, size_t plen);

/* session.c: console sessions */
#define TG_ADMIN_TOKEN_LEN 64 /* hex characters */
/* A new session for user: token (cookie) and csrf, TG_ADMIN_TOKEN_LEN + 1 bytes each. */
void tg__admin_session_new(const char *user, char *token, char *csrf);
/* The live session of token: its user and csrf token. */
bool tg__admin_session_find(const char *token, char *user, size_t user_len, char *csrf);
void tg__admin_session_end(const char *token);
/* The tg_session cookie of a Cookie header into token (TG_ADMIN_TOKEN_LEN + 1 bytes). */
bool tg__admin_cookie(const char *header, char *token);

/* The console's files, embedded at build time (cmake/embed.cmake); ends with a NULL name. */
struct tg_admin_asset {
    const char *name;
    const unsigned char *data;
    size_t len;
};
extern const struct tg_admin_asset tg__admin_assets[];

/* ---- Parsers of untrusted request bytes (fuzzed by tests/fuzz/fuzz_admin.c) ---- */
/* Decodes %XX in place; -1 for a malformed escape or an encoded NUL. */
int tg__admin_pct_decode(char *s);
/* Standard base64 (padding optional, trailing blanks ignored) into a new NUL-terminated string;
 * NULL if malformed or over 1024 characters. */
char *tg__admin_b64_decode(const char *s, size_t *out_len);
/* Splits /api/v1/listeners/{name}/allowed-client-certificate-subjects[/{subject}] (still
 * percent-encoded, new strings; *subject NULL for the list); false for any other path. */
bool tg__admin_allow_path(const char *path, size_t plen, char **listener, char **subject);
/* If-Match: "N", N or W/"N"; 0 when h is NULL, -1 when unreadable. */
int64_t tg__admin_if_match(const char *h);
/* RFC 7396: the patched value (a new reference); target (may be NULL) is consumed. */
json_t *tg__admin_merge_patch(json_t *target, json_t *patch);
/* Puts old's secret back wherever v says "***" at the same place; a "***" with nothing stored
 * there is an error at its JSON path (ptr: v's own path). */
void tg__admin_restore(json_t *v, json_t *old, const char *ptr, struct tg_err *err);

/* respond.c: answers, below admin.c (the router) and the resources it calls */
void tg__admin_json(struct tg_svc_req *r, int status, const char *body);
/* v (consumed) as JSON text dumped with flags. */
void tg__admin_json_value(struct tg_svc_req *r, int status, json_t *v, size_t flags);
void tg__admin_error(struct tg_svc_req *r, int status, const char *message);
/* 405 with Allow: allow and a JSON error naming the methods allowed. */
void tg__admin_not_allowed(struct tg_svc_req *r, const char *allow);

#endif
