/* libFuzzer harness for tg_ppin_parse (PROXY v1/v2 headers from untrusted peers): never reads
 * past len, a complete header is no longer than the input, and an answer, once given for a
 * prefix, stays the same for every longer input (bytes after the header are not its business). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/net.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct tg_ppin whole, part;
    long all = tg_ppin_parse(data, size, &whole);
    if (all > (long)size || all > TG_PPIN_MAX || all < -(long)TG_PPIN_FAIL__COUNT)
        abort();
    if (all > 0 && !whole.local && whole.src.ss_family != AF_INET &&
        whole.src.ss_family != AF_INET6)
        abort();
    /* Exact-size copies of some prefixes, so ASan catches reads past n. */
    size_t step = size > 256 ? size / 64 : 1;
    for (size_t n = 0; n <= size; n += step) {
        uint8_t *p = malloc(n ? n : 1);
        if (p == NULL)
            abort();
        memcpy(p, data, n);
        long r = tg_ppin_parse(p, n, &part);
        free(p);
        if (r != 0 && r != all)
            abort(); /* decided early, then changed its mind */
        if (r > 0 &&
            (part.local != whole.local || memcmp(&part.src, &whole.src, sizeof(part.src)) != 0))
            abort();
    }
    return 0;
}
