/* malloc_count.so — LD_PRELOAD allocation counter for bench/profile.sh.
 *
 * Counts calls to malloc, calloc, realloc (non-NULL size), posix_memalign, memalign,
 * aligned_alloc, valloc and the bytes they were asked for, and calls to free with a non-NULL
 * pointer, and forwards every call to glibc's own allocator (__libc_malloc & co), so the process
 * allocates exactly as without it. The counters live in a MAP_SHARED mapping of the file named by
 * MALLOC_COUNT_FILE (created by the caller, at least one page): a forked child (nginx's workers)
 * adds to the same counters, and the profiler reads the file at any moment, between the phases of
 * its load, without signalling the process. Without MALLOC_COUNT_FILE it counts nothing.
 *
 * File layout: seven little-endian uint64: allocations, bytes asked for, reallocs, frees, magic,
 * usable bytes handed out and usable bytes given back (malloc_usable_size, so their difference is
 * the live heap, chunk rounding included).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <malloc.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

struct counters {
    uint64_t allocs, bytes, reallocs, frees, magic, used, released;
};
static struct counters local_counters; /* until the constructor maps the file */
static struct counters *ctr = &local_counters;

__attribute__((constructor)) static void malloc_count_init(void)
{
    const char *path = getenv("MALLOC_COUNT_FILE");
    if (!path || !*path)
        return;
    int fd = open(path, O_RDWR);
    if (fd < 0)
        return;
    void *p = mmap(NULL, sizeof(struct counters), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED)
        return;
    ctr = p;
    __atomic_store_n(&ctr->magic, 0x6d636e74ULL, __ATOMIC_RELAXED);
}

static void count(size_t n)
{
    __atomic_fetch_add(&ctr->allocs, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&ctr->bytes, n, __ATOMIC_RELAXED);
}

static void *got(void *p)
{
    if (p)
        __atomic_fetch_add(&ctr->used, malloc_usable_size(p), __ATOMIC_RELAXED);
    return p;
}

static void gone(void *p)
{
    if (p)
        __atomic_fetch_add(&ctr->released, malloc_usable_size(p), __ATOMIC_RELAXED);
}

void *malloc(size_t n)
{
    count(n);
    return got(__libc_malloc(n));
}

void *calloc(size_t n, size_t m)
{
    count(n * m);
    return got(__libc_calloc(n, m));
}

void *realloc(void *p, size_t n)
{
    if (!p) {
        count(n);
    } else if (n) {
        __atomic_fetch_add(&ctr->reallocs, 1, __ATOMIC_RELAXED);
        __atomic_fetch_add(&ctr->bytes, n, __ATOMIC_RELAXED);
    } else {
        __atomic_fetch_add(&ctr->frees, 1, __ATOMIC_RELAXED);
    }
    gone(p);
    void *q = __libc_realloc(p, n);
    if (q == NULL && n != 0 && p != NULL) /* failed: the old block stays */
        got(p);
    return got(q);
}

void free(void *p)
{
    if (p)
        __atomic_fetch_add(&ctr->frees, 1, __ATOMIC_RELAXED);
    gone(p);
    __libc_free(p);
}

void *memalign(size_t a, size_t n)
{
    count(n);
    return got(__libc_memalign(a, n));
}

void *aligned_alloc(size_t a, size_t n)
{
    count(n);
    return got(__libc_memalign(a, n));
}

int posix_memalign(void **out, size_t a, size_t n)
{
    count(n);
    void *p = got(__libc_memalign(a, n));
    if (!p)
        return 12; /* ENOMEM */
    *out = p;
    return 0;
}

void *valloc(size_t n)
{
    count(n);
    return got(__libc_memalign((size_t)sysconf(_SC_PAGESIZE), n));
}
