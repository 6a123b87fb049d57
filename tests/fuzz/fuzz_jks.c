/* libFuzzer harness for the JKS/JCEKS parser: parse (with and without the integrity check),
 * then decrypt every key entry; nothing may crash, and a rejected file must say why. The corpus
 * holds real keytool files (store password "changeit", key password "keypass1"). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "tls/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const passwords[] = {"changeit", NULL};
    for (size_t p = 0; p < 2; p++) {
        struct tg_tls__jks ks;
        char why[256] = "";
        if (tg_tls__jks_parse(data, size, passwords[p], &ks, why, sizeof(why)) != 0) {
            if (why[0] == '\0')
                abort(); /* a rejected file must say why */
            continue;
        }
        for (size_t i = 0; i < ks.n; i++) {
            const struct tg_tls__jks_entry *e = &ks.entries[i];
            if (e->alias == NULL || e->n_certs == 0)
                abort(); /* every entry has an alias and a certificate */
            if (e->tag != TG_TLS__JKS_KEY)
                continue;
            EVP_PKEY *key = NULL;
            why[0] = '\0';
            if (tg_tls__jks_key(e, "keypass1", &key, why, sizeof(why)) == 0)
                EVP_PKEY_free(key);
            else if (why[0] == '\0')
                abort();
        }
        tg_tls__jks_free(&ks);
    }
    return 0;
}
