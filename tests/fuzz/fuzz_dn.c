/* libFuzzer harness for the DN parser: parse, canonicalise and render must never crash, and the
 * canonical form of a parsed name must survive a round trip through its own rendering. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "tls/tls.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (s == NULL)
        abort();
    memcpy(s, data, size);
    s[size] = '\0';
    struct tg_err err;
    tg_err_init(&err);
    X509_NAME *name = tg_dn_parse(s, &err, "/fuzz");
    if (name != NULL) {
        char *canon = tg_dn_canonical(name);
        char *str = tg_dn_string(name);
        X509_NAME *again = tg_dn_parse(str, NULL, NULL);
        if (again != NULL) {
            char *canon2 = tg_dn_canonical(again);
            if (strcmp(canon, canon2) != 0)
                abort();
            free(canon2);
            X509_NAME_free(again);
        }
        free(canon);
        free(str);
        X509_NAME_free(name);
    } else if (tg_err_count(&err) == 0) {
        abort(); /* a rejected name must say why */
    }
    tg_err_close(&err);
    free(s);
    return 0;
}
