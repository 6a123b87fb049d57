/* libFuzzer harness for the identity encoders: a certificate whose subject CN and SANs carry the
 * input bytes gives an X-Forwarded-Client-Cert value without control bytes (one header line)
 * whose quoted values unescape back to the input, and a Client-Cert byte sequence that decodes
 * to the certificate's DER. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "tls/tls.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Splits an XFCC element into key=value pairs (values bare or quoted with \-escapes, \xHH for
 * bytes) and returns the unescaped value of key (new), or NULL; aborts on a malformed element. */
static char *field(const char *v, const char *key, size_t *len)
{
    char *found = NULL;
    while (*v != '\0') {
        const char *eq = strchr(v, '=');
        if (eq == NULL)
            abort();
        size_t kl = (size_t)(eq - v);
        const char *p = eq + 1;
        char *out = malloc(strlen(p) + 1);
        size_t n = 0;
        if (*p == '"') {
            for (p++; *p != '"'; p++) {
                if (*p == '\0')
                    abort();
                if (*p == '\\') {
                    p++;
                    if (*p == 'x') {
                        char hex[3] = {p[1], p[2], 0};
                        out[n++] = (char)strtol(hex, NULL, 16);
                        p += 2;
                        continue;
                    }
                }
                out[n++] = *p;
            }
            p++;
        } else {
            for (; *p != ';' && *p != '\0'; p++)
                out[n++] = *p;
        }
        if (found == NULL && kl == strlen(key) && memcmp(v, key, kl) == 0) {
            found = out;
            *len = n;
        } else {
            free(out);
        }
        if (*p == ';')
            p++;
        else if (*p != '\0')
            abort();
        v = p;
    }
    return found;
}

/* One certificate, made and signed once: an input only replaces its subject, issuer and SAN
 * (a changed certificate is encoded afresh; its signature is stale, which the encoders do not
 * look at). Making, keying and signing one per input took most of the harness's time. */
static X509 *cert;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    EVP_PKEY *key = EVP_EC_gen("P-256");
    cert = X509_new();
    if (key == NULL || cert == NULL || X509_set_pubkey(cert, key) != 1 ||
        X509_sign(cert, key, EVP_sha256()) <= 0)
        abort();
    EVP_PKEY_free(key);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    if (cert == NULL)
        LLVMFuzzerInitialize(NULL, NULL); /* the corpus replay has no initializer */
    X509 *x = cert;
    X509_NAME *name = X509_NAME_new();
    if (name == NULL)
        abort();
    if (size > 0)
        X509_NAME_add_entry_by_NID(name, NID_organizationName, V_ASN1_UTF8STRING, data, (int)size,
                                   -1, 0);
    X509_set_subject_name(x, name);
    X509_set_issuer_name(x, name);
    GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
    GENERAL_NAME *g = GENERAL_NAME_new();
    ASN1_IA5STRING *ia5 = ASN1_IA5STRING_new();
    ASN1_STRING_set(ia5, data, (int)size);
    GENERAL_NAME_set0_value(g, GEN_URI, ia5);
    sk_GENERAL_NAME_push(gens, g);
    X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_REPLACE);
    sk_GENERAL_NAME_pop_free(gens, GENERAL_NAME_free);

    char *xfcc = tg_tls_xfcc(x);
    if (xfcc == NULL || strncmp(xfcc, "Hash=", 5) != 0)
        abort();
    for (const char *p = xfcc; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            abort();
    size_t n = 0;
    char *uri = field(xfcc, "URI", &n);
    if (uri == NULL || n != size || memcmp(uri, data, size) != 0)
        abort();
    free(uri);

    char *cc = tg_tls_rfc9440_cert(x);
    unsigned char *der = NULL;
    int dl = i2d_X509(x, &der);
    if (cc == NULL || dl <= 0)
        abort();
    size_t cl = strlen(cc);
    unsigned char *back = malloc(cl);
    if (cl < 2 || cc[0] != ':' || cc[cl - 1] != ':' ||
        EVP_DecodeBlock(back, (const unsigned char *)cc + 1, (int)cl - 2) < dl ||
        memcmp(back, der, (size_t)dl) != 0)
        abort();
    free(back);
    OPENSSL_free(der);
    free(cc);
    free(xfcc);
    X509_NAME_free(name);
    return 0;
}
