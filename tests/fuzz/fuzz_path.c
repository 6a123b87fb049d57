/* libFuzzer harness for tg_http_path_normalize and tg_http_prefix_match: any bytes; the result
 * never grows, stays an absolute path without dot segments, and normalising it again changes
 * nothing. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool has_dot_segment(const char *p, size_t n)
{
    const char *q = memchr(p, '?', n);
    size_t plen = q ? (size_t)(q - p) : n;
    for (size_t i = 0; i < plen; i++) {
        if (p[i] != '/')
            continue;
        size_t e = i + 1;
        while (e < plen && p[e] != '/')
            e++;
        size_t seg = e - i - 1;
        if ((seg == 1 && p[i + 1] == '.') || (seg == 2 && p[i + 1] == '.' && p[i + 2] == '.'))
            return true;
    }
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size ? size : 1);
    if (buf == NULL)
        abort();
    memcpy(buf, data, size);
    size_t out = 0;
    if (tg_http_path_normalize(buf, size, &out) == 0) {
        if (out == 0 || out > size || buf[0] != '/' || has_dot_segment(buf, out))
            abort();
        char *again = malloc(out);
        if (again == NULL)
            abort();
        memcpy(again, buf, out);
        size_t out2 = 0;
        if (tg_http_path_normalize(again, out, &out2) != 0 || out2 != out ||
            memcmp(again, buf, out) != 0)
            abort();
        free(again);
        (void)tg_http_prefix_match("/api", 4, buf, out);
    }
    free(buf);
    return 0;
}
