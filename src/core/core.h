/* Core helpers shared by every module: allocation that never returns NULL, small string utils. */
#ifndef TG_CORE_CORE_H
#define TG_CORE_CORE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TG_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define TG_MIN(a, b)     ((a) < (b) ? (a) : (b))
#define TG_MAX(a, b)     ((a) > (b) ? (a) : (b))

#if defined(__GNUC__)
#define TG_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define TG_PRINTF(f, a)
#endif

/* Allocation: abort with a message on out-of-memory, so callers never check for NULL. */
void *tg_xmalloc(size_t n);
void *tg_xcalloc(size_t n, size_t size);
void *tg_xrealloc(void *p, size_t n);
char *tg_xstrdup(const char *s);
char *tg_xstrndup(const char *s, size_t n);
/* Returns a newly allocated formatted string. */
char *tg_xasprintf(const char *fmt, ...) TG_PRINTF(1, 2);
char *tg_xvasprintf(const char *fmt, va_list ap) TG_PRINTF(1, 0);

/* Reads a whole file into a NUL-terminated buffer; returns 0 or -errno. *out owned by caller. */
int tg_read_file(const char *path, char **out, size_t *len);
/* Writes data to path atomically: write a temp file, fsync, rename, fsync the directory. */
int tg_write_file_atomic(const char *path, const void *data, size_t len, unsigned mode);
/* Creates a directory and its parents (mode 0700 for new ones); returns 0 or -errno. */
int tg_mkdir_p(const char *path);

/* ASCII case-insensitive compare of n bytes / whole strings. */
bool tg_strncaseeq(const char *a, const char *b, size_t n);
/* Value of a hex digit (either case), or -1. */
int tg_hexval(char c);
bool tg_strcaseeq(const char *a, const char *b);
/* Levenshtein distance, for did-you-mean suggestions. */
size_t tg_edit_distance(const char *a, const char *b);

/* The heap as the allocator counts it (core/heap.c): glibc's malloc in a normal build
 * (mallinfo2, every arena), the sanitizer's allocator in an ASan build. Not free (glibc
 * takes each arena's lock and walks its free lists): for the status page and /metrics only. */
struct tg_heap {
    const char *allocator; /* "glibc" or "sanitizer" */
    uint64_t allocated;    /* bytes in live allocations (what the program holds) */
    uint64_t mapped;       /* bytes the allocator holds from the system (live, free, overhead) */
    uint64_t free;         /* of those, free for reuse (glibc: in the arenas' free lists; the
                            * sanitizer's estimate counts redzones as used and often reads 1) */
    uint64_t unmapped;     /* sanitizer only: bytes it returned to the system; 0 with glibc */
};
void tg_heap_stats(struct tg_heap *h);

/* Monotonic milliseconds. */
uint64_t tg_now_ms(void);

/* Test-only fault injection (core/fault.c): tg_fault_init reads $TLSGATE_TEST_FAULT (a comma-
 * separated list of sites) and logs what it does with it; tg_fault(site) is true when that site
 * must fail. Only a TG_FAULT_INJECTION build honours the variable; others log that they ignore
 * it and tg_fault is always false. Sites: "tls_accept" (a client's TLS handshake), "tls_connect"
 * (a backend's): the handshake step reports an OpenSSL internal error; "seccomp_probe": SIGUSR1
 * makes a system call the sandbox does not allow (getcpu), to show the kill and its log line. */
bool tg_fault_available(void);
void tg_fault_init(void);
bool tg_fault(const char *site);

#endif
