/* Fuzz harness for config loading: any bytes must load or fail cleanly, never crash or leak. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "config/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct tg_config *cfg = NULL;
    struct tg_err err;
    char *copy = malloc(size ? size : 1);

    if (copy == NULL)
        return 0;
    if (size > 0)
        memcpy(copy, data, size);
    /* No DNS for arbitrary host names: only numeric addresses and "localhost" resolve. */
    tg_config__numeric_only = true;
    tg_err_init(&err);
    int rc =
        tg_config_load_string(copy, size, "fuzz.json", "/nonexistent-tlsgate-fuzz", &cfg, &err);
    if ((rc == 0) != (cfg != NULL) || (rc != 0 && tg_err_count(&err) == 0))
        abort();
    for (size_t i = 0; i < err.n; i++)
        free(tg_err_format(&err, i));
    tg_config_free(cfg);
    tg_err_close(&err);
    free(copy);
    return 0;
}
