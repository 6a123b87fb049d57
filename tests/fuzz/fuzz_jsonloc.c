/* Fuzz harness for config/jsonloc.c: any bytes must index without crashing or reading out of
 * bounds. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct tg_config__jsonloc jl;
    /* An exact-size copy lets ASan catch any read past the end. */
    char *copy = malloc(size ? size : 1);
    int line, col;

    if (copy == NULL)
        return 0;
    if (size > 0)
        memcpy(copy, data, size);
    (void)tg_config__jsonloc_build(&jl, copy, size);
    /* Every recorded pointer must be found again at its own position. */
    for (size_t i = 0; i < jl.n; i++) {
        if (tg_config__jsonloc_find(&jl, jl.v[i].ptr, jl.v[i].is_key, &line, &col) != 0 ||
            line < 1 || col < 1)
            abort();
    }
    (void)tg_config__jsonloc_find(&jl, "/listeners/0/tls", false, &line, &col);
    tg_config__jsonloc_free(&jl);
    free(copy);
    return 0;
}
