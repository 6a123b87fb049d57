/* The admin API: a control plane served as a stream handler on the admin listener (the data
 * listeners' HTTP code, limits, timeouts and access log). Slow work (password hashes, config
 * validation, snapshots, state writes) runs in libuv's thread pool; workers only ever receive
 * finished snapshots. */
#ifndef TG_ADMIN_ADMIN_H
#define TG_ADMIN_ADMIN_H

#include "net/net.h"

/* Registers the admin API with the proxy (once, before workers start). */
void tg_admin_init(void);
/* Frees what the admin API keeps process-wide (after the workers ended). */
void tg_admin_cleanup(void);

/* Makes <state_dir>/admin.hash at first start: a random password for user "admin", printed once
 * to out, and only its hash stored (0600). 0 when it exists or was made, else -errno with err. */
int tg_admin_ensure_password(const char *state_dir, FILE *out, struct tg_err *err);

#endif
