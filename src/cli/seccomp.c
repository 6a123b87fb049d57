/* The seccomp allow list of `tlsgate run`: the system calls the main thread, the workers and
 * libuv's thread pool make once started. Derived with `strace -f -c` over the whole integration
 * suite (docs/robustness.md "Sandbox" says how to do it again); any other call kills the process
 * (SCMP_ACT_KILL_PROCESS), which the kernel logs as a SECCOMP audit record. */
#include "cli/sandbox.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>

#include <seccomp.h>

#include "core/core.h"

/* clang-format off */
static const char *const allowed[] = {
    /* memory, threads, time */
    "brk", "mmap", "munmap", "mremap", "mprotect", "madvise", "futex", "futex_waitv",
    "clone", "clone3", "set_robust_list", "rseq", "exit", "exit_group", "sched_yield",
    "sched_getaffinity", "nanosleep", "clock_nanosleep", "clock_gettime", "clock_getres",
    "gettimeofday", "time", "getrandom", "membarrier", "prlimit64", "getrlimit", "sysinfo",
    "uname", "getrusage",
    /* identity (a reloaded config looks up its user; never a change) */
    "getpid", "gettid", "getppid", "getuid", "geteuid", "getgid", "getegid", "getresuid",
    "getresgid", "getgroups",
    /* signals: libuv's signal pipe, abort(), sanitizer reports */
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sigaltstack", "tgkill",
    "restart_syscall",
    /* event loops */
    "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait", "eventfd2", "pipe2", "poll",
    "ppoll", "select", "pselect6",
    /* files: the state directory, key material, logs, CRLs, staples, ticket keys */
    "read", "write", "pread64", "pwrite64", "readv", "writev", "openat", "close", "lseek",
    "newfstatat", "fstat", "statx", "faccessat", "faccessat2", "access", "readlink",
    "readlinkat", "getdents64", "getcwd", "fcntl", "ioctl", "dup", "dup2", "dup3", "fsync",
    "fdatasync", "ftruncate", "rename", "renameat", "renameat2", "mkdir", "mkdirat", "unlink",
    "unlinkat", "fchmod", "umask",
    /* sockets: listeners, clients, backends, health checks, OCSP/CRL/ACME fetches, DNS, the
     * etcd store, systemd's notify socket */
    "socket", "socketpair", "bind", "listen", "accept4", "connect", "getsockname",
    "getpeername", "getsockopt", "setsockopt", "sendto", "recvfrom", "sendmsg", "recvmsg",
    "sendmmsg", "recvmmsg", "shutdown",
};

#ifdef TG_SANITIZE
/* What ASan, UBSan and LeakSanitizer do at exit or in a report: LeakSanitizer stops the world
 * from a cloned tracer (ptrace, wait, its own getdents), a report may run llvm-symbolizer. */
static const char *const sanitizer[] = {
    "ptrace", "wait4", "waitid", "prctl", "kill", "tkill", "process_vm_readv", "execve",
    "fork", "vfork", "setpgid", "getpgid", "arch_prctl", "set_tid_address", "pipe", "open",
    "stat", "lstat", "mincore", "getdents", "rt_sigtimedwait",
};
#endif
/* clang-format on */

#ifndef TG_SANITIZE
/* Allowed with one value of their first argument only: questions the C library's modules ask.
 * A reloaded config naming a user or group that /etc/passwd or /etc/group lacks reaches
 * nss-systemd, whose libsystemd finds the last capability with PR_CAPBSET_READ (it may not
 * read /proc/sys); the sanitized build allows prctl whole. */
static const struct {
    const char *name;
    scmp_datum_t arg0;
} allowed_arg0[] = {
    {"prctl", PR_CAPBSET_READ},
};
#endif

size_t tg_cli_seccomp_count(void)
{
    size_t n = TG_ARRAY_SIZE(allowed);
#ifdef TG_SANITIZE
    n += TG_ARRAY_SIZE(sanitizer); /* prctl among them, whole */
#else
    n += TG_ARRAY_SIZE(allowed_arg0);
#endif
    return n;
}

static int allow_all(scmp_filter_ctx ctx, const char *const *names, size_t n, char *why,
                     size_t why_len)
{
    for (size_t i = 0; i < n; i++) {
        int nr = seccomp_syscall_resolve_name(names[i]);
        if (nr == __NR_SCMP_ERROR)
            continue; /* not a system call on this architecture */
        int rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
        if (rc != 0) {
            snprintf(why, why_len, "allowing %s: %s", names[i], strerror(-rc));
            return rc;
        }
    }
    return 0;
}

int tg_cli_seccomp_load(char *why, size_t why_len)
{
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
    if (ctx == NULL) {
        snprintf(why, why_len, "seccomp_init failed");
        return -ENOMEM;
    }
    int rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
    if (rc == 0)
        rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_LOG, 1); /* denials reach the kernel log */
    if (rc != 0)
        snprintf(why, why_len, "filter attributes: %s", strerror(-rc));
    if (rc == 0)
        rc = allow_all(ctx, allowed, TG_ARRAY_SIZE(allowed), why, why_len);
#ifdef TG_SANITIZE
    if (rc == 0)
        rc = allow_all(ctx, sanitizer, TG_ARRAY_SIZE(sanitizer), why, why_len);
#else
    for (size_t i = 0; rc == 0 && i < TG_ARRAY_SIZE(allowed_arg0); i++) {
        rc = seccomp_rule_add(
            ctx, SCMP_ACT_ALLOW, seccomp_syscall_resolve_name(allowed_arg0[i].name), 1,
            (struct scmp_arg_cmp){.arg = 0, .op = SCMP_CMP_EQ, .datum_a = allowed_arg0[i].arg0});
        if (rc != 0)
            snprintf(why, why_len, "allowing %s: %s", allowed_arg0[i].name, strerror(-rc));
    }
#endif
    if (rc == 0) {
        rc = seccomp_load(ctx);
        if (rc != 0)
            snprintf(why, why_len, "loading the filter on every thread: %s", strerror(-rc));
    }
    seccomp_release(ctx);
    return rc;
}
