/* libFuzzer harness for allow-list entries: parsing never crashes, a rejected entry says why, the
 * same entry always gives the same key, and a certificate whose subject is an accepted DN entry
 * matches the set holding it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>

#include "tls/tls.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (s == NULL)
        abort();
    memcpy(s, data, size);
    s[size] = '\0';
    char why[512] = "";
    char *key = NULL, *key2 = NULL;
    int rc = tg_tls_allow_parse(s, &key, why, sizeof(why));
    if (rc != 0) {
        if (key != NULL || why[0] == '\0')
            abort();
    } else {
        if (key == NULL || tg_tls_allow_parse(s, &key2, why, sizeof(why)) != 0 ||
            strcmp(key, key2) != 0)
            abort();
        struct tg_tls_allow *a = tg_tls_allow_new();
        if (tg_tls_allow_add(a, s, why, sizeof(why)) != 0 || tg_tls_allow_count(a) != 1)
            abort();
        if (key[0] == 'D') {
            X509_NAME *name = tg_dn_parse(s, NULL, NULL);
            X509 *x = X509_new();
            if (name == NULL || x == NULL || X509_set_subject_name(x, name) != 1)
                abort();
            if (!tg_tls_allow_match(a, x, NULL, 0))
                abort();
            X509_free(x);
            X509_NAME_free(name);
        }
        tg_tls_allow_free(a);
    }
    free(key);
    free(key2);
    free(s);
    return 0;
}
