/* The sandbox of `tlsgate run` (sandbox.c, seccomp.c): after the listeners are bound and the key
 * material is loaded it switches to `user`/`group`, sets no_new_privs, limits the file system
 * with Landlock to what the config names and allows only the system calls the gateway makes. */
#ifndef TG_CLI_SANDBOX_H
#define TG_CLI_SANDBOX_H

#include <stdbool.h>
#include <stdio.h>

struct tg_config;
struct tg_err;
struct tg_sandbox;

/* What the sandbox of cfg allows (config_file NULL: the embedded default); newly allocated, free
 * with tg_cli_sandbox_free (accepts NULL). Nothing is applied yet. */
struct tg_sandbox *tg_cli_sandbox_new(const struct tg_config *cfg, const char *config_file);
void tg_cli_sandbox_free(struct tg_sandbox *sb);

/* `tlsgate check`: the user, the paths read and written, Landlock's ABI and seccomp. */
void tg_cli_sandbox_print(const struct tg_sandbox *sb, FILE *out);

/* Before any other thread exists (threads inherit Landlock, which binds only the calling one):
 * no_new_privs and the Landlock ruleset. Best effort: a kernel without Landlock is logged. */
void tg_cli_sandbox_enter_fs(struct tg_sandbox *sb);

/* Before anything is bound: whether the process may switch to cfg's `user`/`group` (root, or
 * CAP_SETUID/CAP_SETGID, or the ids it has already). 0, or -EPERM with an error at the key. */
int tg_cli_sandbox_check_ids(const struct tg_config *cfg, struct tg_err *err);

/* Once the workers have bound their listeners: the state directory becomes the user's, then
 * groups, gid and uid (real, effective, saved) change on every thread; then the seccomp filter
 * is loaded on every thread. 0, or -errno after logging why (run must not go on). */
int tg_cli_sandbox_enter_rest(struct tg_sandbox *sb);

/* The reload check (tg_admin_guard_cb): refuses a config naming a file outside what the running
 * sandbox allows, or a port under 1024 after root was dropped, with a message to restart. With
 * next NULL (the config did not load), adds that advice to every "Permission denied". */
int tg_cli_sandbox_guard(const struct tg_config *next, struct tg_err *err, void *sb);

/* seccomp.c: loads the allow list on every thread (TSYNC); 0 or -errno. */
int tg_cli_seccomp_load(char *why, size_t why_len);
/* How many system calls the allow list names (for check). */
size_t tg_cli_seccomp_count(void);

#endif
