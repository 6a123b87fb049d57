/* The sandbox of `tlsgate run`: the paths the config names (Landlock), the user it becomes and the
 * reload check that keeps a running sandbox and a new config consistent (docs/robustness.md). */
#include "cli/sandbox.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <linux/landlock.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "config/config.h"
#include "core/core.h"
#include "core/log.h"
#include "net/net.h"

/* Landlock rights newer than Debian 12's <linux/landlock.h> (ABI 3 and 5). */
#ifndef LANDLOCK_ACCESS_FS_REFER
#define LANDLOCK_ACCESS_FS_REFER (1ULL << 13)
#endif
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)
#endif
#ifndef LANDLOCK_ACCESS_FS_IOCTL_DEV
#define LANDLOCK_ACCESS_FS_IOCTL_DEV (1ULL << 15)
#endif

#define LL_READ (LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR)
#define LL_LOG                                                                                     \
    (LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_MAKE_REG | LANDLOCK_ACCESS_FS_TRUNCATE)
#define LL_RW                                                                                      \
    (LL_READ | LL_LOG | LANDLOCK_ACCESS_FS_REMOVE_DIR | LANDLOCK_ACCESS_FS_REMOVE_FILE |           \
     LANDLOCK_ACCESS_FS_MAKE_DIR | LANDLOCK_ACCESS_FS_REFER)
#define LL_DEV                                                                                     \
    (LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_IOCTL_DEV)
/* Rights that only make sense on a directory (a rule on a file must not carry them). */
#define LL_DIR_ONLY                                                                                \
    (LANDLOCK_ACCESS_FS_READ_DIR | LANDLOCK_ACCESS_FS_REMOVE_DIR |                                 \
     LANDLOCK_ACCESS_FS_REMOVE_FILE | LANDLOCK_ACCESS_FS_MAKE_CHAR | LANDLOCK_ACCESS_FS_MAKE_DIR | \
     LANDLOCK_ACCESS_FS_MAKE_REG | LANDLOCK_ACCESS_FS_MAKE_SOCK | LANDLOCK_ACCESS_FS_MAKE_FIFO |   \
     LANDLOCK_ACCESS_FS_MAKE_BLOCK | LANDLOCK_ACCESS_FS_MAKE_SYM | LANDLOCK_ACCESS_FS_REFER)

struct rule {
    char *path;     /* resolved (realpath) when it exists */
    uint64_t allow; /* LL_* rights */
    const char *why;
    char *ptr;         /* JSON pointer of the config key that named it, or NULL (system path) */
    char *file;        /* the file the key names (path is then its directory), or NULL */
    bool target;       /* path is the directory of the file a symbolic link file points to */
    struct tg_loc loc; /* of the key, for the reload check's messages, or file NULL */
};

struct tg_sandbox {
    const struct tg_config *cfg; /* borrowed: the config run started with */
    struct rule *v;
    size_t n;
    int abi;         /* Landlock ABI the kernel offers, or -errno */
    bool fs_applied; /* no_new_privs and Landlock in force */
    bool dropped;    /* the ids were switched */
};

/* The system paths the process still reads after start: libraries loaded late (NSS modules,
 * OpenSSL providers), the system trust and OpenSSL's config, name resolution for backends, OCSP,
 * CRL and ACME fetches, user and group names of a reloaded config, the CPU count of
 * "workers": "auto", and what the C library reads from /proc/self. */
static const char *const system_read[] = {
    "/etc/ssl/certs",
    "/etc/ssl/openssl.cnf",
    "/usr/lib/ssl/openssl.cnf",
    "/usr/share/ca-certificates",
    "/usr/local/share/ca-certificates",
    "/usr/lib",
    "/lib",
    "/lib64",
    "/usr/lib64",
    "/etc/ld.so.cache",
    "/etc/hosts",
    "/etc/resolv.conf",
    "/etc/nsswitch.conf",
    "/etc/host.conf",
    "/etc/gai.conf",
    "/etc/services",
    "/etc/protocols",
    "/etc/passwd",
    "/etc/group",
    "/etc/localtime",
    "/usr/share/zoneinfo",
    "/dev/urandom",
    "/dev/random",
    "/proc/self",
    "/sys/devices/system/cpu",
};

static void add(struct tg_sandbox *sb, const char *path, uint64_t allow, const char *why,
                const char *ptr, const char *file)
{
    char real[PATH_MAX];
    sb->v = tg_xrealloc(sb->v, (sb->n + 1) * sizeof(*sb->v));
    struct rule *r = &sb->v[sb->n++];
    /* /proc/self stays as written: Landlock resolves it when the rule is made, and check would
     * otherwise print its own process id. */
    bool keep = strncmp(path, "/proc/", 6) == 0 || realpath(path, real) == NULL;
    r->path = tg_xstrdup(keep ? path : real);
    r->allow = allow;
    r->why = why;
    r->ptr = ptr ? tg_xstrdup(ptr) : NULL;
    r->file = file ? tg_xstrdup(file) : NULL;
    r->target = false;
    r->loc = (struct tg_loc){NULL, 0, 0};
}

/* Gives the rules added since rule first the location of the key that named them. */
static void locate(struct tg_sandbox *sb, size_t first, const struct tg_loc *loc)
{
    for (size_t i = first; i < sb->n; i++)
        sb->v[i].loc = *loc;
}

/* The directory part of file: ".", "/" or a new string. */
static char *dir_of(const char *file)
{
    const char *slash = strrchr(file, '/');
    return slash == NULL   ? tg_xstrdup(".")
           : slash == file ? tg_xstrdup("/")
                           : tg_xasprintf("%.*s", (int)(slash - file), file);
}

/* The directory of real (a file reached through links) unless rules since first have it. */
static void add_target(struct tg_sandbox *sb, size_t first, const char *real, uint64_t allow,
                       const char *why, const char *ptr, const char *file)
{
    char *target = dir_of(real);
    bool have = false;
    for (size_t i = first; i < sb->n && !have; i++)
        have = strcmp(sb->v[i].path, target) == 0;
    if (!have) {
        add(sb, target, allow, why, ptr, file);
        sb->v[sb->n - 1].target = true;
    }
    free(target);
}

/* The directory of file (a directory itself when it is one: a truststore of PEM files). A file
 * reached through symbolic links (certbot's live/ pointing into archive/) is read where they
 * lead: that directory is added too, so a reload can read the file again. */
static void add_file(struct tg_sandbox *sb, const char *file, uint64_t allow, const char *why,
                     const char *ptr_base, const char *key)
{
    if (file == NULL)
        return;
    char *ptr = key ? tg_xasprintf("%s/%s", ptr_base, key) : tg_xstrdup(ptr_base);
    struct stat st;
    bool is_dir = stat(file, &st) == 0 && S_ISDIR(st.st_mode);
    char *dir = is_dir ? tg_xstrdup(file) : dir_of(file);
    size_t first = sb->n;
    add(sb, dir, allow, why, ptr, file);
    char real[PATH_MAX];
    if (!is_dir && realpath(file, real) != NULL)
        add_target(sb, first, real, allow, why, ptr, file);
    /* A truststore directory's files may be links too (a c_rehash directory, a hand-made one). */
    DIR *d = is_dir ? opendir(file) : NULL;
    struct dirent *de;
    while (d != NULL && (de = readdir(d)) != NULL) {
        char *entry = tg_xasprintf("%s/%s", file, de->d_name);
        struct stat lst;
        if (de->d_name[0] != '.' && lstat(entry, &lst) == 0 && S_ISLNK(lst.st_mode) &&
            realpath(entry, real) != NULL)
            add_target(sb, first, real, allow, why, ptr, file);
        free(entry);
    }
    if (d != NULL)
        closedir(d);
    free(dir);
    free(ptr);
}

static bool is_stdio(const char *spec)
{
    return strcmp(spec, "stdout") == 0 || strcmp(spec, "stderr") == 0;
}

/* The paths cfg itself names: the same function serves the plan and the reload check. */
static void add_config(struct tg_sandbox *sb, const struct tg_config *cfg, const char *config_file)
{
    if (config_file != NULL)
        add_file(sb, config_file, LL_READ, "config file", "", NULL);
    size_t first = sb->n;
    add(sb, cfg->state_dir, LL_RW, "state directory", "/state_dir", NULL);
    locate(sb, first, &cfg->state_dir_loc);
    first = sb->n;
    if (cfg->log.access_log != NULL && !is_stdio(cfg->log.access_log))
        add_file(sb, cfg->log.access_log, LL_LOG, "access log", "/log/access_log", NULL);
    locate(sb, first, &cfg->log.access_log_loc);
    for (size_t i = 0; i < cfg->n_keystores; i++) {
        const struct tg_keystore_conf *ks = &cfg->keystores[i];
        first = sb->n;
        add_file(sb, ks->cert_file, LL_READ, "certificate", ks->path, "cert");
        add_file(sb, ks->key_file, LL_READ, "private key", ks->path, "key");
        add_file(sb, ks->file, LL_READ, "keystore", ks->path, "file");
        locate(sb, first, &ks->loc);
    }
    for (size_t i = 0; i < cfg->n_truststores; i++) {
        const struct tg_truststore_conf *ts = &cfg->truststores[i];
        first = sb->n;
        add_file(sb, ts->file, LL_READ, "truststore", ts->path, "file");
        locate(sb, first, &ts->loc);
    }
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        const struct tg_listener_conf *lc = &cfg->listeners[i];
        const struct tg_client_auth_conf *ca = &lc->tls.client_auth;
        for (size_t j = 0; j < ca->n_crl_files; j++) {
            char *p = tg_xasprintf("%s/revocation/crl/%zu", ca->path ? ca->path : lc->path, j);
            first = sb->n;
            add_file(sb, ca->crl_files[j], LL_READ, "CRL", p, NULL);
            if (ca->crl_locs != NULL)
                locate(sb, first, &ca->crl_locs[j]);
            free(p);
        }
        first = sb->n;
        if (lc->tls.ocsp.file != NULL)
            add_file(sb, lc->tls.ocsp.file, LL_READ, "OCSP response", lc->tls.ocsp.path, "file");
        locate(sb, first, &lc->tls.ocsp.loc);
    }
    if (cfg->tickets.key_file != NULL)
        add_file(sb, cfg->tickets.key_file, LL_READ, "session ticket keys",
                 cfg->tickets.key_file_path, NULL);
    for (size_t i = 0; i < cfg->n_secret_files; i++)
        add_file(sb, cfg->secret_files[i].file, LL_READ, "password file", cfg->secret_files[i].ptr,
                 NULL);
}

struct tg_sandbox *tg_cli_sandbox_new(const struct tg_config *cfg, const char *config_file)
{
    struct tg_sandbox *sb = tg_xcalloc(1, sizeof(*sb));
    sb->cfg = cfg;
    long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
    sb->abi = abi < 0 ? -errno : (int)abi;
    add_config(sb, cfg, config_file);
    for (size_t i = 0; i < TG_ARRAY_SIZE(system_read); i++)
        if (access(system_read[i], F_OK) == 0)
            add(sb, system_read[i], LL_READ, "system", NULL, NULL);
    add(sb, "/dev/null", LL_DEV, "system", NULL, NULL);
#ifdef TG_SANITIZE
    /* A sanitizer report reads the binary and may run llvm-symbolizer. */
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
        exe[n] = '\0';
        add(sb, exe, LANDLOCK_ACCESS_FS_READ_FILE, "sanitizer", NULL, NULL);
    }
    add(sb, "/usr/bin", LL_READ | LANDLOCK_ACCESS_FS_EXECUTE, "sanitizer", NULL, NULL);
    add(sb, "/usr/lib", LL_READ | LANDLOCK_ACCESS_FS_EXECUTE, "sanitizer", NULL, NULL);
#endif
    return sb;
}

void tg_cli_sandbox_free(struct tg_sandbox *sb)
{
    if (sb == NULL)
        return;
    for (size_t i = 0; i < sb->n; i++) {
        free(sb->v[i].path);
        free(sb->v[i].ptr);
        free(sb->v[i].file);
    }
    free(sb->v);
    free(sb);
}

static const char *rights_words(uint64_t allow)
{
    if ((allow & LL_RW) == LL_RW)
        return "read-write";
    if (allow & LANDLOCK_ACCESS_FS_EXECUTE)
        return "read, execute";
    if (allow & LANDLOCK_ACCESS_FS_WRITE_FILE)
        return (allow & LANDLOCK_ACCESS_FS_READ_FILE) ? "read-write" : "write (append, create)";
    return "read-only";
}

/* Whether uid/gid (no supplementary groups: they are cleared) has the rights need (mode bits:
 * 4 read, 2 write, 1 search) on path and may search every directory above it, by the mode bits
 * (ACLs aside). */
static bool allowed_to(const char *path, unsigned need_leaf, uint32_t uid, uint32_t gid, char *why,
                       size_t why_len)
{
    char *p = tg_xstrdup(path);
    bool ok = true, leaf = true;
    while (ok) {
        struct stat st;
        if (stat(p, &st) == 0 && uid != 0) {
            unsigned need = leaf ? need_leaf : 1;
            unsigned bits = st.st_uid == uid   ? (st.st_mode >> 6) & 7
                            : st.st_gid == gid ? (st.st_mode >> 3) & 7
                                               : st.st_mode & 7;
            if ((bits & need) != need) {
                snprintf(why, why_len, "%s is mode %04o, owner %u, group %u", p,
                         (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid, (unsigned)st.st_gid);
                ok = false;
            }
        }
        leaf = false;
        char *slash = strrchr(p, '/');
        if (slash == NULL || slash == p)
            break;
        *slash = '\0';
    }
    free(p);
    return ok;
}

static void print_unreadable(const struct tg_sandbox *sb, FILE *out)
{
    const struct tg_sandbox_conf *sc = &sb->cfg->sandbox;
    for (size_t i = 0; i < sb->n; i++) {
        const struct rule *r = &sb->v[i];
        char why[PATH_MAX + 64];
        if (r->ptr == NULL || r->file == NULL || r->target ||
            !(r->allow & LANDLOCK_ACCESS_FS_READ_FILE))
            continue;
        if (!allowed_to(r->file, 4, sc->uid, sc->gid, why, sizeof(why)))
            fprintf(out,
                    "  warning: uid %u cannot read %s (%s %s: %s): a reload after start would "
                    "fail on it\n",
                    sc->uid, r->file, r->why, r->ptr, why);
    }
    /* A rotated access log is made anew in its directory by SIGUSR1, as the user. */
    for (size_t i = 0; i < sb->n; i++) {
        const struct rule *r = &sb->v[i];
        char why[PATH_MAX + 64];
        if (r->allow != LL_LOG || r->target)
            continue;
        if (!allowed_to(r->path, 3, sc->uid, sc->gid, why, sizeof(why)))
            fprintf(out,
                    "  warning: uid %u cannot create files in %s (%s %s: %s): SIGUSR1 after the "
                    "log was rotated by renaming would keep writing to the renamed file\n",
                    sc->uid, r->path, r->why, r->ptr, why);
    }
}

void tg_cli_sandbox_print(const struct tg_sandbox *sb, FILE *out)
{
    const struct tg_sandbox_conf *sc = &sb->cfg->sandbox;
    fprintf(out, "\nsandbox (after the listeners are bound and the keys loaded):\n");
    if (sc->drop) {
        fprintf(out,
                "  user: %s (uid %u), group %s (gid %u); real, effective and saved ids on every "
                "thread, supplementary groups cleared; the state directory is made theirs. A "
                "reload can then read only files that user may read, and cannot bind a port "
                "under 1024 that was not bound at start\n",
                sc->user ? sc->user : "unchanged", sc->uid, sc->group ? sc->group : "the user's",
                sc->gid);
        print_unreadable(sb, out);
        struct tg_err ids;
        tg_err_init(&ids);
        if (tg_cli_sandbox_check_ids(sb->cfg, &ids) != 0)
            fprintf(out,
                    "  note: run as this process (uid %u) could not switch: `tlsgate run` must "
                    "start as root, or with CAP_SETUID and CAP_SETGID\n",
                    (unsigned)geteuid());
        tg_err_close(&ids);
    } else {
        fprintf(out, "  user: unchanged (no \"user\"/\"group\": runs with the ids it starts "
                     "with)\n");
    }
    if (!sc->enabled) {
        fprintf(out, "  sandbox: off (\"sandbox\": {\"enabled\": false}): no no_new_privs, no "
                     "Landlock, no seccomp\n");
        return;
    }
    fprintf(out, "  no_new_privs: on\n");
    if (sb->abi > 0)
        fprintf(out, "  landlock: ABI %d; the file system is limited to:\n", sb->abi);
    else
        fprintf(out,
                "  landlock: not available on this kernel (%s): the file system would not "
                "be limited; the paths it would allow:\n",
                strerror(-sb->abi));
    /* One line per path: its rights together, and every key that named it. */
    bool *done = tg_xcalloc(sb->n + 1, sizeof(*done));
    for (size_t i = 0; i < sb->n; i++) {
        if (done[i])
            continue;
        uint64_t allow = 0;
        for (size_t j = i; j < sb->n; j++)
            if (!done[j] && strcmp(sb->v[j].path, sb->v[i].path) == 0)
                allow |= sb->v[j].allow;
        fprintf(out, "    %-22s %s (", rights_words(allow), sb->v[i].path);
        const char *sep = "";
        for (size_t j = i; j < sb->n; j++) {
            const struct rule *r = &sb->v[j];
            if (done[j] || strcmp(r->path, sb->v[i].path) != 0)
                continue;
            done[j] = true;
            bool same_why = false; /* "system" once, not once per alias */
            for (size_t k = i; k < j && !same_why; k++)
                same_why = strcmp(sb->v[k].path, r->path) == 0 && sb->v[k].ptr == NULL &&
                           r->ptr == NULL && strcmp(sb->v[k].why, r->why) == 0;
            if (same_why)
                continue;
            fprintf(out, "%s%s%s%s%s", sep, r->why, r->ptr && r->ptr[0] ? " " : "",
                    r->ptr && r->ptr[0] ? r->ptr : "", r->target ? " through its link" : "");
            sep = "; ";
        }
        fprintf(out, ")\n");
    }
    free(done);
    fprintf(out,
            "  seccomp: on, %zu system calls allowed on every thread; any other kills the "
            "process (logged by the kernel: journalctl -k | grep -i seccomp)\n",
            tg_cli_seccomp_count());
    fprintf(out, "  a reload naming a file outside these paths is refused: restart to use it\n");
}

/* ---- Landlock ---- */

static uint64_t handled_rights(int abi)
{
    uint64_t h = (LANDLOCK_ACCESS_FS_MAKE_SYM << 1) - 1; /* ABI 1: bits 0..12 */
    if (abi >= 2)
        h |= LANDLOCK_ACCESS_FS_REFER;
    if (abi >= 3)
        h |= LANDLOCK_ACCESS_FS_TRUNCATE;
    if (abi >= 5)
        h |= LANDLOCK_ACCESS_FS_IOCTL_DEV;
    return h;
}

/* Applies the rules; *n_rules gets how many were added, *n_paths on how many distinct paths (the
 * lines of check's list: a path several keys name is one line). */
static int landlock_apply(struct tg_sandbox *sb, size_t *n_rules, size_t *n_paths)
{
    uint64_t handled = handled_rights(sb->abi);
    struct landlock_ruleset_attr attr = {.handled_access_fs = handled};
    /* Only the file-system field: older kernels take the short struct, and network ports
     * change with reloads. */
    int rfd = (int)syscall(SYS_landlock_create_ruleset, &attr, sizeof(attr.handled_access_fs), 0);
    if (rfd < 0)
        return -errno;
    int rc = 0;
    for (size_t i = 0; i < sb->n; i++) {
        const struct rule *r = &sb->v[i];
        int fd = open(r->path, O_PATH | O_CLOEXEC);
        if (fd < 0) {
            tg_log_debug("sandbox: %s (%s) not there: no rule", r->path, r->why);
            continue;
        }
        struct stat st;
        uint64_t allow = r->allow & handled;
        if (fstat(fd, &st) == 0 && !S_ISDIR(st.st_mode))
            allow &= ~(uint64_t)LL_DIR_ONLY;
        struct landlock_path_beneath_attr pb = {.allowed_access = allow, .parent_fd = fd};
        if (syscall(SYS_landlock_add_rule, rfd, LANDLOCK_RULE_PATH_BENEATH, &pb, 0) != 0) {
            rc = -errno;
            tg_log_error("sandbox: Landlock rule for %s: %s", r->path, strerror(errno));
        } else {
            (*n_rules)++;
            bool seen = false;
            for (size_t j = 0; j < i && !seen; j++)
                seen = strcmp(sb->v[j].path, r->path) == 0;
            if (!seen)
                (*n_paths)++;
        }
        close(fd);
    }
    if (rc == 0 && syscall(SYS_landlock_restrict_self, rfd, 0) != 0)
        rc = -errno;
    close(rfd);
    return rc;
}

/* Threads running now would escape Landlock (it binds the calling thread and later children). */
static int count_threads(void)
{
    int n = 0;
    FILE *f = fopen("/proc/self/status", "re");
    char line[256];
    while (f != NULL && fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, "Threads:", 8) == 0)
            n = (int)strtol(line + 8, NULL, 10);
    if (f != NULL)
        fclose(f);
    return n;
}

void tg_cli_sandbox_enter_fs(struct tg_sandbox *sb)
{
    if (!sb->cfg->sandbox.enabled) {
        tg_log_warn("sandbox: off (\"sandbox\": {\"enabled\": false}): no no_new_privs, Landlock "
                    "or seccomp");
        return;
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        tg_log_error("sandbox: no_new_privs: %s; no Landlock either", strerror(errno));
        return;
    }
    if (sb->abi <= 0) {
        tg_log_warn("sandbox: Landlock is not available (%s; Linux 5.13 or later with "
                    "lsm=landlock): the file system is not limited",
                    strerror(-sb->abi));
        return;
    }
    /* A state directory made later (ACME, the admin API) could not be granted: make it now. */
    if (mkdir(sb->cfg->state_dir, 0700) == 0)
        tg_log_info("sandbox: made the state directory %s", sb->cfg->state_dir);
    int threads = count_threads();
    if (threads > 1)
        tg_log_warn("sandbox: %d threads run before Landlock: only this one and later ones are "
                    "limited",
                    threads);
    size_t n_rules = 0, n_paths = 0;
    int rc = landlock_apply(sb, &n_rules, &n_paths);
    if (rc != 0) {
        tg_log_error("sandbox: Landlock not applied: %s; the file system is not limited",
                     strerror(-rc));
        return;
    }
    sb->fs_applied = true;
    tg_log_info("sandbox: no_new_privs; Landlock ABI %d with %zu path rules on %zu paths "
                "(tlsgate check lists them)",
                sb->abi, n_rules, n_paths);
}

/* ---- user and group ---- */

static uint32_t chown_uid, chown_gid;

static int chown_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    if (lchown(path, chown_uid, chown_gid) != 0)
        tg_log_warn("sandbox: cannot give %s to uid %u: %s", path, chown_uid, strerror(errno));
    return 0;
}

/* Whether the process has capability cap in its effective set (/proc/self/status CapEff). */
static bool cap_effective(int cap)
{
    unsigned long long eff = 0;
    char line[256];
    FILE *f = fopen("/proc/self/status", "re");
    while (f != NULL && fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, "CapEff:", 7) == 0)
            eff = strtoull(line + 7, NULL, 16);
    if (f != NULL)
        fclose(f);
    return (eff >> cap) & 1;
}

int tg_cli_sandbox_check_ids(const struct tg_config *cfg, struct tg_err *err)
{
    const struct tg_sandbox_conf *sc = &cfg->sandbox;
    uid_t r, e, s;
    gid_t rg, eg, sg;
    if (!sc->drop || geteuid() == 0 || getresuid(&r, &e, &s) != 0 || getresgid(&rg, &eg, &sg) != 0)
        return 0;
    bool uid_ok = (r == sc->uid && e == sc->uid && s == sc->uid) || cap_effective(7);
    bool gid_ok = (rg == sc->gid && eg == sc->gid && sg == sc->gid) || cap_effective(6);
    if (uid_ok && gid_ok)
        return 0;
    tg_err_error(err, &sc->loc, sc->ptr,
                 "switching to uid %u gid %u (%s \"%s\") needs tlsgate to start as root (or with "
                 "CAP_SETUID and CAP_SETGID), and it runs as uid %u gid %u: start it as root, or "
                 "leave \"user\" and \"group\" out",
                 sc->uid, sc->gid, sc->ptr + 1, sc->ptr[1] == 'u' ? sc->user : sc->group,
                 (unsigned)e, (unsigned)eg);
    return -EPERM;
}

static int drop_ids(struct tg_sandbox *sb)
{
    const struct tg_sandbox_conf *sc = &sb->cfg->sandbox;
    if (geteuid() == 0) {
        /* What run keeps writing: the state directory and the access log file. */
        chown_uid = sc->uid;
        chown_gid = sc->gid;
        nftw(sb->cfg->state_dir, chown_one, 16, FTW_PHYS);
        const char *al = sb->cfg->log.access_log;
        if (al != NULL && !is_stdio(al) && chown(al, sc->uid, sc->gid) != 0)
            tg_log_warn("sandbox: cannot give %s to uid %u: %s", al, sc->uid, strerror(errno));
    }
    gid_t gid = (gid_t)sc->gid;
    /* glibc applies each of these to every thread of the process (its setxid broadcast). */
    /* Root (or CAP_SETGID) clears the supplementary groups; others cannot and have checked
     * (tg_cli_sandbox_check_ids) that their ids need no change. */
    if (setgroups(0, NULL) != 0 && geteuid() == 0)
        goto fail;
    if (setresgid(gid, gid, gid) != 0 || setresuid(sc->uid, sc->uid, sc->uid) != 0)
        goto fail;
    uid_t r, e, s;
    if (getresuid(&r, &e, &s) != 0 || r != sc->uid || e != sc->uid || s != sc->uid ||
        (sc->uid != 0 && setresuid(0, 0, 0) == 0)) {
        errno = EPERM;
        goto fail;
    }
#ifdef TG_SANITIZE
    /* A changed uid makes the process undumpable: LeakSanitizer could then not read
     * /proc/self or attach to the threads at exit. Sanitized builds only. */
    prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
#endif
    sb->dropped = true;
    tg_log_info("sandbox: running as uid %u gid %u (user %s) on every thread", sc->uid, sc->gid,
                sc->user ? sc->user : "unchanged");
    return 0;
fail:;
    int e2 = errno;
    tg_log_error("sandbox: cannot switch to uid %u gid %u: %s", sc->uid, sc->gid, strerror(e2));
    return -e2;
}

int tg_cli_sandbox_enter_rest(struct tg_sandbox *sb)
{
    if (sb->cfg->sandbox.drop) {
        int rc = drop_ids(sb);
        if (rc != 0)
            return rc;
    }
    if (!sb->cfg->sandbox.enabled)
        return 0;
    char why[256] = "";
    if (tg_cli_seccomp_load(why, sizeof(why)) != 0)
        tg_log_error("sandbox: seccomp filter not loaded: %s", why);
    else
        tg_log_info("sandbox: seccomp filter on every thread: %zu system calls allowed",
                    tg_cli_seccomp_count());
    return 0;
}

/* ---- the reload check ---- */

static bool beneath(const char *path, const char *dir)
{
    size_t n = strlen(dir);
    if (strcmp(dir, "/") == 0)
        return path[0] == '/';
    return strncmp(path, dir, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

static bool covered(const struct tg_sandbox *sb, const struct rule *need)
{
    for (size_t i = 0; i < sb->n; i++)
        if ((sb->v[i].allow & need->allow) == need->allow && beneath(need->path, sb->v[i].path))
            return true;
    return false;
}

static void check_ports(const struct tg_sandbox *sb, const struct tg_config *next,
                        struct tg_err *err)
{
    if (!sb->dropped || sb->cfg->sandbox.uid == 0)
        return;
    for (size_t i = 0; i < next->n_listeners; i++) {
        const struct tg_listener_conf *lc = &next->listeners[i];
        const struct sockaddr_in *in = (const struct sockaddr_in *)&lc->addr;
        unsigned port = ntohs(in->sin_port); /* same offset for IPv6 */
        /* Kept bound since start (a listener dropped by a reload in between was closed). */
        if (port < 1024 && !tg_net_bound_since_start(&lc->addr))
            tg_err_error(err, &lc->loc, lc->path,
                         "port %u is under 1024 and tlsgate dropped root at start (user %s): "
                         "restart tlsgate to bind it",
                         port, sb->cfg->sandbox.user ? sb->cfg->sandbox.user : "unchanged");
    }
}

/* A read the loader was denied: Landlock (outside the paths of the start config) or, after a
 * switch to another user, file permissions. Either way only a restart gets past it. */
static void explain_denials(const struct tg_sandbox *sb, struct tg_err *err)
{
    if (!sb->fs_applied && !sb->dropped)
        return;
    const char *denied = strerror(EACCES);
    for (size_t i = 0; i < err->n; i++) {
        char *msg = err->v[i].msg;
        if (strstr(msg, denied) == NULL)
            continue;
        err->v[i].msg =
            tg_xasprintf("%s (%s%s%s): restart tlsgate to use it", msg,
                         sb->fs_applied ? "outside what the sandbox allows since start" : "",
                         sb->fs_applied && sb->dropped ? ", or " : "",
                         sb->dropped ? "not readable by the user tlsgate switched to" : "");
        free(msg);
    }
}

int tg_cli_sandbox_guard(const struct tg_config *next, struct tg_err *err, void *arg)
{
    struct tg_sandbox *sb = arg;
    if (next == NULL) {
        explain_denials(sb, err);
        return -EACCES;
    }
    size_t before = tg_err_count(err);
    check_ports(sb, next, err);
    if (sb->fs_applied) {
        struct tg_sandbox *need = tg_xcalloc(1, sizeof(*need));
        add_config(need, next, NULL);
        for (size_t i = 0; i < need->n; i++) {
            const struct rule *r = &need->v[i];
            if (covered(sb, r))
                continue;
            struct tg_loc loc = r->loc.file != NULL ? r->loc : (struct tg_loc){next->name, 0, 0};
            tg_err_error(err, &loc, r->ptr && r->ptr[0] ? r->ptr : NULL,
                         "%s \"%s\" is outside what the sandbox allows since start (%s %s): "
                         "restart tlsgate to use it",
                         r->why, r->file ? r->file : r->path, rights_words(r->allow), r->path);
        }
        tg_cli_sandbox_free(need);
    }
    const struct tg_sandbox_conf *a = &sb->cfg->sandbox, *b = &next->sandbox;
    if (a->enabled != b->enabled || a->drop != b->drop || a->uid != b->uid || a->gid != b->gid)
        tg_err_warning(err, b->drop ? &b->loc : NULL, b->drop ? b->ptr : "/sandbox",
                       "user, group and sandbox changes take effect at the next restart");
    return tg_err_count(err) > before ? -EPERM : 0;
}
