/* The live heap, as the allocator in use counts it: glibc's malloc (mallinfo2) in a normal build,
 * the sanitizer's allocator in an ASan build. Read only when the status page or /metrics asks:
 * mallinfo2 takes each arena's lock in turn and walks its free blocks: about 0.1 ms with 5,000
 * free blocks, 10 ms with 50,000 (a microbenchmark on the 2-core test machine). */
#include "core/core.h"

#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#define TG_HEAP_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TG_HEAP_SANITIZER 1
#endif
#endif

#ifdef TG_HEAP_SANITIZER
#if defined(__has_include) && __has_include(<sanitizer/allocator_interface.h>)
#include <sanitizer/allocator_interface.h>
#else
/* GCC 12 ships the runtime (libasan) but not this header: the same declarations. */
size_t __sanitizer_get_current_allocated_bytes(void);
size_t __sanitizer_get_heap_size(void);
size_t __sanitizer_get_free_bytes(void);
size_t __sanitizer_get_unmapped_bytes(void);
#endif
#else
#include <malloc.h>
#endif

void tg_heap_stats(struct tg_heap *h)
{
    memset(h, 0, sizeof(*h));
#ifdef TG_HEAP_SANITIZER
    h->allocator = "sanitizer";
    h->allocated = __sanitizer_get_current_allocated_bytes();
    h->mapped = __sanitizer_get_heap_size();
    h->free = __sanitizer_get_free_bytes();
    h->unmapped = __sanitizer_get_unmapped_bytes();
#else
    struct mallinfo2 mi = mallinfo2();
    h->allocator = "glibc";
    /* uordblks: chunks in use in every arena; hblkhd: blocks served by mmap of their own */
    h->allocated = mi.uordblks + mi.hblkhd;
    h->mapped = mi.arena + mi.hblkhd;
    h->free = mi.fordblks;
#endif
}
