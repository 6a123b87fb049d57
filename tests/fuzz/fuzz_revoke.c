/* libFuzzer harness for the parse step of fetched revocation data (tls/revoke.c): the first byte
 * chooses a CRL (even) or an OCSP response (odd), the rest is the HTTP answer's body. The OCSP
 * answer is checked for a fixed leaf and its CA (the corpus was made with that CA's key and
 * `openssl ca` / `openssl ocsp`, valid for years); nothing may crash and a refusal must say why. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "tls/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char CA_PEM[] = "-----BEGIN CERTIFICATE-----\n"
                             "MIIBfjCCASSgAwIBAgIUMCjGW5pYqy7pL9WSU82sE9Ez+9YwCgYIKoZIzj0EAwIw\n"
                             "HTEbMBkGA1UEAwwSZnV6eiByZXZvY2F0aW9uIENBMB4XDTI2MTIwNzA1MjcyM1oX\n"
                             "DTQ2MTIwMjA1MjcyM1owHTEbMBkGA1UEAwwSZnV6eiByZXZvY2F0aW9uIENBMFkw\n"
                             "EwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEfMmTfJBgUoc6yjfoYCbAZ+gHPAbhGM8k\n"
                             "YLaz3Fp+AQvmcccC1Cs1IRdqC8h98jRocP1sTWU3dHMDYxrzMLwZoKNCMEAwDwYD\n"
                             "VR0TAQH/BAUwAwEB/zAOBgNVHQ8BAf8EBAMCAYYwHQYDVR0OBBYEFP98uo41koeL\n"
                             "sOYpyTdRHM6Y+b8HMAoGCCqGSM49BAMCA0gAMEUCIEgycgg3N8vE0YEf6/APAnKH\n"
                             "fiqB24buXs8PyWyy83EiAiEAsRaZYoG/2839oV18FWvvV4ihUH2U7AMsdBsK8YH+\n"
                             "qLI=\n"
                             "-----END CERTIFICATE-----\n";

static const char LEAF_PEM[] = "-----BEGIN CERTIFICATE-----\n"
                               "MIIB4jCCAYegAwIBAgICEAEwCgYIKoZIzj0EAwIwHTEbMBkGA1UEAwwSZnV6eiBy\n"
                               "ZXZvY2F0aW9uIENBMB4XDTI2MTIwNzA1MjcyM1oXDTQ2MTIwMjA1MjcyM1owFDES\n"
                               "MBAGA1UEAwwJbGVhZi50ZXN0MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEiUWZ\n"
                               "mR7JAnazCU8cLYRhhdlISyUv+HhvHEEbm0i7awGEvs1TeE4FyxhJOmn+vmVjkGas\n"
                               "EwvtBMjluMnnqTePRKOBvzCBvDAJBgNVHRMEAjAAMA4GA1UdDwEB/wQEAwIHgDAz\n"
                               "BggrBgEFBQcBAQQnMCUwIwYIKwYBBQUHMAGGF2h0dHA6Ly8xMjcuMC4wLjE6MS9v\n"
                               "Y3NwMCoGA1UdHwQjMCEwH6AdoBuGGWh0dHA6Ly8xMjcuMC4wLjE6MS9jYS5jcmww\n"
                               "HQYDVR0OBBYEFHxj8Heot183Nr23Hse8QrsKItoUMB8GA1UdIwQYMBaAFP98uo41\n"
                               "koeLsOYpyTdRHM6Y+b8HMAoGCCqGSM49BAMCA0kAMEYCIQDkpwuuDmTQoOQJCkWB\n"
                               "9K9vZeNmUYAvFvsRrvprnhNbTgIhANAW5bNwL12AsBC/FbEXPHAFGXNrEFdGhqEl\n"
                               "paREKhvi\n"
                               "-----END CERTIFICATE-----\n";

static X509 *pem_cert(const char *pem)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    if (x == NULL)
        abort();
    return x;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static X509 *ca, *leaf;
    if (ca == NULL) {
        ca = pem_cert(CA_PEM);
        leaf = pem_cert(LEAF_PEM);
    }
    if (size == 0)
        return 0;
    const time_t now = 1700000000;
    time_t expires = 0;
    char why[160] = "";
    /* An exact-size copy, so ASan sees a read past the body. */
    size_t len = size - 1;
    uint8_t *body = malloc(len ? len : 1);
    if (body == NULL)
        abort();
    memcpy(body, data + 1, len);
    if (data[0] % 2 == 0) {
        X509_CRL *crl = NULL;
        if (tg_tls__crl_parse(body, len, now, &crl, &expires, why, sizeof(why)) == 0) {
            if (crl == NULL || expires == 0)
                abort();
            X509_REVOKED *rev = NULL;
            (void)X509_CRL_get0_by_cert(crl, &rev, leaf);
            X509_CRL_free(crl);
        } else if (why[0] == '\0' || crl != NULL) {
            abort();
        }
    } else {
        OCSP_BASICRESP *basic = NULL;
        if (tg_tls__ocsp_parse(body, len, leaf, ca, now, &basic, &expires, why, sizeof(why)) == 0) {
            if (basic == NULL || expires == 0)
                abort();
            OCSP_BASICRESP_free(basic);
        } else if (why[0] == '\0' || basic != NULL) {
            abort();
        }
    }
    free(body);
    return 0;
}
