/* The top-level "user", "group" and "sandbox" keys: whom `tlsgate run` becomes after binding and
 * whether it confines itself (cli/sandbox.c does both). Names are looked up here, so `check`
 * reports a user that does not exist. */
#include "config/internal.h"

#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/core.h"

static const struct tg_config__key sandbox_keys[] = {
    {"enabled", TG_J_BOOL, "true or false", "true",
     "true (no_new_privs, Landlock, seccomp after start) or false", 0},
    {NULL, 0, NULL, NULL, NULL, 0},
};

/* A decimal id ("65534"): true and *id set; anything else is a name. */
static bool parse_id(const char *s, uint32_t *id)
{
    if (s[0] < '0' || s[0] > '9')
        return false;
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || *end != '\0' || v >= UINT32_MAX)
        return false;
    *id = (uint32_t)v;
    return true;
}

static void lookup_user(struct tg_config__ctx *c, const char *name)
{
    struct tg_sandbox_conf *sb = &c->cfg->sandbox;
    uint32_t id;
    char buf[4096];
    struct passwd pw, *res = NULL;
    if (parse_id(name, &id)) {
        sb->uid = id;
        sb->gid = id; /* unless the id has an entry with its own primary group */
        if (getpwuid_r(id, &pw, buf, sizeof(buf), &res) == 0 && res != NULL)
            sb->gid = (uint32_t)pw.pw_gid;
        return;
    }
    if (name[0] == '\0') {
        tg_config__error(c, "/user", "must not be empty (leave \"user\" out to keep the ids)");
        return;
    }
    int e = getpwnam_r(name, &pw, buf, sizeof(buf), &res);
    if (e != 0 || res == NULL) {
        tg_config__error(c, "/user", "no user \"%s\" on this system%s%s", name, e ? ": " : "",
                         e ? strerror(e)
                           : " (allowed: a user name from the passwd database "
                             "or a number)");
        return;
    }
    sb->uid = (uint32_t)pw.pw_uid;
    sb->gid = (uint32_t)pw.pw_gid;
}

static void lookup_group(struct tg_config__ctx *c, const char *name)
{
    struct tg_sandbox_conf *sb = &c->cfg->sandbox;
    uint32_t id;
    if (parse_id(name, &id)) {
        sb->gid = id;
        return;
    }
    if (name[0] == '\0') {
        tg_config__error(c, "/group", "must not be empty (leave \"group\" out for the user's)");
        return;
    }
    char buf[4096];
    struct group gr, *res = NULL;
    int e = getgrnam_r(name, &gr, buf, sizeof(buf), &res);
    if (e != 0 || res == NULL) {
        tg_config__error(c, "/group", "no group \"%s\" on this system%s%s", name, e ? ": " : "",
                         e ? strerror(e) : " (allowed: a group name or a number)");
        return;
    }
    sb->gid = (uint32_t)gr.gr_gid;
}

/* With user or group, run gives the state directory and everything under it to that user: never
 * a directory other programs share. */
static void check_state_dir(struct tg_config__ctx *c)
{
    static const char *const shared[] = {
        "/",        "/bin",     "/boot",      "/dev",     "/etc",       "/home",
        "/lib",     "/media",   "/mnt",       "/opt",     "/proc",      "/root",
        "/run",     "/sbin",    "/srv",       "/sys",     "/tmp",       "/usr",
        "/var",     "/var/lib", "/var/log",   "/var/tmp", "/var/cache", "/var/spool",
        "/var/run", "/var/opt", "/usr/local", "/usr/lib", "/usr/share",
    };
    char real[PATH_MAX];
    const char *dir = realpath(c->cfg->state_dir, real) != NULL ? real : c->cfg->state_dir;
    for (size_t i = 0; i < sizeof(shared) / sizeof(shared[0]); i++)
        if (strcmp(dir, shared[i]) == 0) {
            tg_config__error(c, "/state_dir",
                             "\"%s\" is a directory other programs share, and with \"user\" or "
                             "\"group\" tlsgate gives its state directory and everything in it to "
                             "that user (allowed: a directory of tlsgate's own, e.g. "
                             "/var/lib/tlsgate)",
                             dir);
            return;
        }
}

void tg_config__parse_sandbox(struct tg_config__ctx *c, json_t *user, json_t *group, json_t *obj)
{
    struct tg_sandbox_conf *sb = &c->cfg->sandbox;
    sb->enabled = true;
    if (obj != NULL) {
        tg_config__check_keys(c, obj, "/sandbox", sandbox_keys);
        json_t *v = tg_config__get(obj, sandbox_keys, "enabled");
        if (v != NULL)
            sb->enabled = json_is_true(v);
    }
    if (user != NULL) {
        sb->user = tg_xstrdup(json_string_value(user));
        lookup_user(c, sb->user);
        sb->drop = true;
    }
    if (group != NULL) {
        sb->group = tg_xstrdup(json_string_value(group));
        lookup_group(c, sb->group);
        if (user == NULL) {
            sb->uid = (uint32_t)getuid(); /* only the group changes */
            sb->drop = true;
        }
    }
    if (sb->drop) {
        sb->ptr = user != NULL ? "/user" : "/group";
        tg_config__loc(c, sb->ptr, &sb->loc);
        check_state_dir(c);
    }
}
