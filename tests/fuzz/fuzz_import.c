/* Fuzz harness for `tlsgate import` (cli/import*.c): the first byte picks the source kind
 * (krakend, corda, mgw, apim, kaazing), the rest is the source file. Any bytes must give exit
 * 0, 1 or 2 with report lines, a config exactly when not 2, and no crash or leak. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli/import.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const kinds[] = {"krakend", "corda", "mgw", "apim", "kaazing"};
    if (size == 0)
        return 0;
    const char *kind = kinds[data[0] % 5];
    json_t *cfg = NULL;
    char **report = NULL;
    size_t n_report = 0;
    /* relative paths resolve under a directory that does not exist: no file is ever read */
    int rc = tg_imp_run(kind, "fuzz.src", "/nonexistent-tlsgate-fuzz", (const char *)data + 1,
                        size - 1, NULL, &cfg, &report, &n_report);
    if (rc < 0 || rc > 2 || (rc == 2) != (cfg == NULL) || (rc != 0 && n_report == 0))
        abort();
    if (cfg != NULL) {
        char *s = json_dumps(cfg, JSON_COMPACT);
        if (s == NULL)
            abort();
        free(s);
    }
    for (size_t i = 0; i < n_report; i++)
        free(report[i]);
    free(report);
    json_decref(cfg);
    return 0;
}
