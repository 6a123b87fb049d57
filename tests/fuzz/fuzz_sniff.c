/* libFuzzer harness for tg_tls_sniff: any prefix of any bytes must classify without reading past n.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tls/tls.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Copy each prefix into an exact-size buffer so ASan catches reads past n. */
    for (size_t n = 0; n <= size && n <= 16; n++) {
        uint8_t *p = malloc(n ? n : 1);
        if (p == NULL)
            abort();
        memcpy(p, data, n);
        enum tg_tls_sniff s = tg_tls_sniff(p, n);
        if (s > TG_SNIFF_OTHER)
            abort();
        /* Once decided, more bytes must not change the answer. */
        if (s != TG_SNIFF_NEED_MORE && n < size && tg_tls_sniff(data, size) != s)
            abort();
        free(p);
    }
    return 0;
}
