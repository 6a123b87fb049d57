/* The admin API: a control plane served as a stream handler on the admin listener (the data
 * listeners' HTTP code, limits, timeouts and access log). Slow work (password hashes, config
 * validation, snapshots, state writes) runs in libuv's thread pool; workers only ever receive
 * finished snapshots. */
#ifndef TG_ADMIN_ADMIN_H
#define TG_ADMIN_ADMIN_H

#include <stdio.h>

#include <jansson.h>

#include "net/net.h"

/* Registers the admin API with the proxy (once, before workers start). */
void tg_admin_init(void);
/* Frees what the admin API keeps process-wide (after the workers ended). */
void tg_admin_cleanup(void);

/* Makes <state_dir>/admin.hash at first start: a random password for user "admin", printed once
 * to out, and only its hash stored (0600). 0 when it exists or was made, else -errno with err. */
int tg_admin_ensure_password(const char *state_dir, FILE *out, struct tg_err *err);

/* ---- The config truth (state.c; docs/admin.md "One truth") ---- */

/* Called under the state's lock, on whichever thread applied a change, before workers see it. */
typedef void (*tg_admin_applied_cb)(const struct tg_config *old, const struct tg_config *cur,
                                    void *arg);
/* At start, with *cfg loaded from file (NULL: the embedded default): decides between it and the
 * state stored in cfg->state_dir (only for a config with an admin section), may replace *cfg with
 * the stored one, logs which is used and stores the choice. Sets *version. 0 or -EINVAL. */
int tg_admin_state_open(const char *file, struct tg_config **cfg, uint64_t *version,
                        struct tg_err *err);
/* As tg_admin_state_open for `check`: nothing is written; *cfg becomes what `run` would use,
 * described in what. */
int tg_admin_state_check(const char *file, struct tg_config **cfg, char *what, size_t what_len,
                         struct tg_err *err);
/* The workers run snap: later changes are published to net. */
void tg_admin_state_started(struct tg_net *net, struct tg_snapshot *snap,
                            tg_admin_applied_cb applied, void *arg);
/* Checks a config about to be applied (after it validated, before anything is built): 0 lets it
 * through; otherwise the problems are in err and nothing changes. Warnings may be added too.
 * Also called with next NULL when the config did not load, to reword the problems in err. */
typedef int (*tg_admin_guard_cb)(const struct tg_config *next, struct tg_err *err, void *arg);
/* Sets the check every later change (SIGHUP, API, POST /reload, auto_reload) passes; NULL: none. */
void tg_admin_state_set_guard(tg_admin_guard_cb guard, void *arg);
/* store etcd (the -c file is an instance file): whether the state is shared through etcd. */
bool tg_admin_state_clustered(void);
/* store etcd, after tg_admin_state_started: follows the store (its own thread applies changes,
 * rotates the shared ticket keys). tickets gets each ring the store holds, n keys of 80 bytes,
 * newest first, on the store's thread (the first soon after this returns; until then the caller
 * uses keys of its own). 0 or -errno. Without etcd, does nothing. */
int tg_admin_state_follow(void (*tickets)(const unsigned char *keys, size_t n, void *arg),
                          void *arg);
/* Stops following the store (at shutdown, before the main loop's handles close). */
void tg_admin_state_unfollow(void);
/* SIGHUP: the file if it changed since (it wins), else the current document, applied again
 * (key material and CRL files read anew). A document that differs from the current one is stored
 * as the next version first; the same document (*same) keeps its version and writes nothing. On
 * failure nothing changes. */
int tg_admin_state_reload(struct tg_err *err, uint64_t *version, bool *same);
/* The snapshot now running (a new reference), or NULL before start. */
struct tg_snapshot *tg_admin_state_current(void);
void tg_admin_state_close(void);

/* Replaces every secret of a config document by "***" (in place), as GET /api/v1/config shows
 * it. */
void tg_admin_redact(json_t *doc);

/* auto_reload (watch.c), on the main thread's loop: watches the config, key, certificate,
 * truststore and CRL files of the config in use (when it says "auto_reload": true) and reloads
 * as SIGHUP does when one changes. Stop closes its handles (before the loop is to end). */
void tg_admin_watch_start(uv_loop_t *loop);
void tg_admin_watch_stop(void);

#endif
