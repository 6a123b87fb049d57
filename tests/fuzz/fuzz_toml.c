/* Fuzz harness for config/toml.c: any bytes must parse or be refused with a position, without
 * crashing, leaking or reading out of bounds; every recorded key must be found again. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/toml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size copy lets ASan catch any read past the end. */
    char *copy = malloc(size ? size : 1);
    if (copy == NULL)
        return 0;
    if (size > 0)
        memcpy(copy, data, size);
    struct tg_doc_lines lines = {0};
    struct tg_toml_error err;
    json_t *root = NULL;
    int rc = tg_config_toml_parse(copy, size, &root, &lines, &err);
    if (rc == 0) {
        if (!json_is_object(root))
            abort();
        /* the tree must serialise as JSON (valid UTF-8 everywhere) */
        char *dump = json_dumps(root, JSON_COMPACT);
        if (dump == NULL)
            abort();
        free(dump);
        for (size_t i = 0; i < lines.n; i++) {
            int l, c;
            if (tg_config_doc_find(&lines, lines.v[i].ptr, &l, &c) != 0 || l < 1 || c < 1)
                abort();
        }
    } else if (root != NULL || err.line < 1 || err.col < 1 || err.msg[0] == '\0') {
        abort();
    }
    json_decref(root);
    tg_config_doc_lines_free(&lines);
    free(copy);
    return 0;
}
