/* libFuzzer harness for a client certificate passed in a header field (tls/hdrcert.c): any bytes
 * give a certificate (whose DER re-encodes and decodes again) and a chain, or NULL with a reason,
 * never a crash or a leak. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>

#include "tls/tls.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char why[512] = "";
    STACK_OF(X509) *chain = NULL;
    X509 *leaf = tg_tls_cert_from_header((const char *)data, size, &chain, why, sizeof(why));
    if (leaf == NULL) {
        if (chain != NULL || why[0] == '\0')
            abort();
        return 0;
    }
    if (chain == NULL)
        abort();
    unsigned char *der = NULL;
    int n = i2d_X509(leaf, &der);
    if (n <= 0)
        abort();
    const unsigned char *p = der;
    X509 *again = d2i_X509(NULL, &p, n);
    if (again == NULL)
        abort();
    X509_free(again);
    OPENSSL_free(der);
    X509_free(leaf);
    sk_X509_pop_free(chain, X509_free);
    return 0;
}
