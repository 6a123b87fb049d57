/* libFuzzer harness for the JKS/JCEKS parser: parse (with and without the integrity check),
 * then decrypt every key entry; nothing may crash, and a rejected file must say why. The corpus
 * holds real keytool files (store password "changeit", key password "keypass1"). */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "tls/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* keytool protects JCEKS keys with 200,000 PBE iterations: two MD5 chains that long per attempt
 * (tens of milliseconds), which held this harness at 60 executions a second while adding no
 * coverage over a short chain. A key asking for more than FUZZ_MAX_ITER (and no more than the
 * parser's ceiling of 5,000,000, whose refusal stays fuzzed) is not decrypted here; the seed
 * key_iter16.jceks (key.jceks rewritten with 16 iterations by testdata/jceks_iter.py) keeps
 * the decryption and the PKCS#8 decoding in reach. */
#define FUZZ_MAX_ITER 1024

static bool slow_key(const struct tg_tls__jks_entry *e)
{
    const unsigned char *p = e->key;
    X509_SIG *sig = d2i_X509_SIG(NULL, &p, (long)e->key_len);
    bool slow = false;
    if (sig != NULL) {
        const X509_ALGOR *alg = NULL;
        const ASN1_OBJECT *oid = NULL;
        const void *pval = NULL;
        int ptype = 0;
        char txt[80] = "";
        X509_SIG_get0(sig, &alg, NULL);
        X509_ALGOR_get0(&oid, &ptype, &pval, alg);
        OBJ_obj2txt(txt, sizeof(txt), oid, 1);
        if (strcmp(txt, "1.3.6.1.4.1.42.2.19.1") == 0 && ptype == V_ASN1_SEQUENCE) {
            const unsigned char *q = ASN1_STRING_get0_data(pval);
            PBEPARAM *pbe = d2i_PBEPARAM(NULL, &q, ASN1_STRING_length(pval));
            long iter = pbe != NULL ? ASN1_INTEGER_get(pbe->iter) : 0;
            slow = iter > FUZZ_MAX_ITER && iter <= 5000000;
            PBEPARAM_free(pbe);
        }
        X509_SIG_free(sig);
    }
    ERR_clear_error();
    return slow;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const passwords[] = {"changeit", NULL};
    bool keys_done = false;
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
            /* The entries do not depend on the store password: their keys are decrypted once,
             * in the first pass that parses. */
            if (e->tag != TG_TLS__JKS_KEY || keys_done || slow_key(e))
                continue;
            EVP_PKEY *key = NULL;
            why[0] = '\0';
            if (tg_tls__jks_key(e, "keypass1", &key, why, sizeof(why)) == 0)
                EVP_PKEY_free(key);
            else if (why[0] == '\0')
                abort();
        }
        keys_done = true;
        tg_tls__jks_free(&ks);
    }
    return 0;
}
