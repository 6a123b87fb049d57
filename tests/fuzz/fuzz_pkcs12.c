/* libFuzzer harness for PKCS#12 loading (tls/stores.c): open the bytes as a "pkcs12" keystore
 * with and without the store password, list the entries and decrypt every key entry; nothing
 * may crash, a rejected file must say why, and every entry has a certificate. The corpus holds
 * openssl and keytool files (password "changeit"), some without MAC or encryption so that
 * mutations reach the bags. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "tls/internal.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The files openssl and keytool write ask for 2,048 and 10,000 key-derivation iterations, three
 * derivations a password: a few milliseconds an input, most of the fuzzer's time, for no
 * coverage a short count lacks. The fuzzer (not the corpus replay, which has no initializer)
 * refuses more than FUZZ_MAX_ITER through the parser's own ceiling, so that refusal is fuzzed
 * too; the seeds *_iter1.p12 (openssl pkcs12 -noiter -nomaciter) keep the MAC, the decryption
 * and the bags in reach. */
#define FUZZ_MAX_ITER 64

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    tg_tls__pbe_max_iter = FUZZ_MAX_ITER;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const passwords[] = {"changeit", NULL};
    if (size == 0 || data[0] != 0x30)
        return 0; /* JKS and JCEKS have their own harness (fuzz_jks) */
    for (size_t p = 0; p < 2; p++) {
        struct tg_tls__store st;
        char why[512] = "", names[1024];
        if (tg_tls__store_parse("pkcs12", data, size, passwords[p], &st, why, sizeof(why)) != 0) {
            if (why[0] == '\0')
                abort(); /* a rejected file must say why */
            continue;
        }
        if (st.kind != 0)
            abort();
        tg_tls__store_aliases(&st, names, sizeof(names));
        for (size_t i = 0; i < st.n; i++) {
            if (st.v[i].cert == NULL)
                abort(); /* every entry has a certificate */
            if (!st.v[i].is_key)
                continue;
            EVP_PKEY *key = NULL;
            why[0] = '\0';
            if (tg_tls__store_key(&st, i, passwords[p], &key, why, sizeof(why)) == 0) {
                if (key == NULL)
                    abort();
                EVP_PKEY_free(key);
            } else if (why[0] == '\0' || key != NULL) {
                abort();
            }
        }
        tg_tls__store_close(&st);
    }
    return 0;
}
