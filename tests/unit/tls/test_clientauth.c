/* Unit tests for the client-certificate pieces of tls: allow-list entries and matching (DN
 * normalisation, SAN kinds, SPKI pins, a 100,000-entry set), and the XFCC / RFC 9440 encoders. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "tls/tls.h"

/* A self-signed certificate with subject dn (RFC 4514) and SANs ("DNS:a,URI:b,..."). */
static X509 *make_cert(const char *dn, const char *sans, EVP_PKEY **key_out)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    assert_non_null(key);
    X509_NAME *name = tg_dn_parse(dn, NULL, NULL);
    assert_non_null(name);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
    X509_set_subject_name(x, name);
    X509_set_issuer_name(x, name);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key);
    if (sans != NULL) {
        X509V3_CTX ctx;
        X509V3_set_ctx_nodb(&ctx);
        X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
        X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, sans);
        assert_non_null(ext);
        X509_add_ext(x, ext, -1);
        X509_EXTENSION_free(ext);
    }
    assert_true(X509_sign(x, key, EVP_sha256()) > 0);
    X509_NAME_free(name);
    if (key_out != NULL)
        *key_out = key;
    else
        EVP_PKEY_free(key);
    return x;
}

static void spki_of(X509 *x, char *buf, size_t n)
{
    unsigned char *der = NULL, md[32], b64[48];
    unsigned int len = 0;
    int dl = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der);
    EVP_Digest(der, (size_t)dl, md, &len, EVP_sha256(), NULL);
    OPENSSL_free(der);
    EVP_EncodeBlock(b64, md, 32);
    snprintf(buf, n, "spki:%s", (const char *)b64);
}

static bool allowed(const char *entry, X509 *x)
{
    char why[256];
    struct tg_tls_allow *a = tg_tls_allow_new();
    assert_int_equal(tg_tls_allow_add(a, entry, why, sizeof(why)), 0);
    bool hit = tg_tls_allow_match(a, x, NULL, 0);
    tg_tls_allow_free(a);
    return hit;
}

static void test_dn_normalisation(void **state)
{
    (void)state;
    X509 *x = make_cert("CN=CordaOperator,O=Org,L=London,C=GB", NULL, NULL);
    /* attribute order, type case, spaces around separators, and long type names */
    assert_true(allowed("CN=CordaOperator,C=GB,L=London,O=Org", x));
    assert_true(allowed("c=GB, l=London , o=Org,cn=CordaOperator", x));
    assert_true(allowed("commonName=CordaOperator,countryName=GB,localityName=London,"
                        "organizationName=Org",
                        x));
    /* values compare exactly */
    assert_false(allowed("CN=cordaoperator,C=GB,L=London,O=Org", x));
    assert_false(allowed("CN=CordaOperator,C=GB,L=London", x));
    X509_free(x);
    /* inner runs of spaces fold to one (RFC 4518) */
    x = make_cert("CN=Jane  Doe,O=Org", NULL, NULL);
    assert_true(allowed("CN=Jane Doe,O=Org", x));
    X509_free(x);
    /* multi-valued RDNs: the order inside the RDN does not matter either */
    x = make_cert("CN=svc+UID=42,O=Org", NULL, NULL);
    assert_true(allowed("UID=42+CN=svc,O=Org", x));
    assert_false(allowed("CN=svc,UID=42,O=Org", x));
    X509_free(x);
}

static void test_san_and_pin_entries(void **state)
{
    (void)state;
    X509 *x = make_cert("CN=alice",
                        "DNS:alice.example,URI:spiffe://t/alice,email:a@example.com,"
                        "IP:10.0.0.1,IP:::1",
                        NULL);
    assert_true(allowed("dns:ALICE.example", x));
    assert_true(allowed("uri:spiffe://t/alice", x));
    assert_false(allowed("uri:SPIFFE://t/alice", x));
    assert_true(allowed("email:A@example.com", x));
    assert_true(allowed("ip:10.0.0.1", x));
    assert_true(allowed("ip:0:0::1", x));
    assert_false(allowed("dns:bob.example", x));
    assert_false(allowed("ip:10.0.0.2", x));
    char pin[80];
    spki_of(x, pin, sizeof(pin));
    assert_true(allowed(pin, x));
    char pin2[90];
    snprintf(pin2, sizeof(pin2), "spki:sha256/%s", pin + 5);
    assert_true(allowed(pin2, x));
    X509_free(x);
}

static void test_bad_entries(void **state)
{
    (void)state;
    static const char *const bad[] = {"CN=x,,O=y",
                                      "FOO=bar",
                                      "",
                                      "dns:",
                                      "uri:nocolon",
                                      "email:noat",
                                      "ip:300.1.1.1",
                                      "spki:abc",
                                      "spki:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                                      "CN=\"unterminated"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char why[256] = "";
        char *key = NULL;
        assert_int_equal(tg_tls_allow_parse(bad[i], &key, why, sizeof(why)), -EINVAL);
        assert_null(key);
        assert_true(strlen(why) > 0);
    }
}

/* 100,000 entries: still a hash lookup (the time of a miss does not grow with the list). */
static void test_large_list(void **state)
{
    (void)state;
    struct tg_tls_allow *a = tg_tls_allow_new();
    char entry[64], why[128];
    for (int i = 0; i < 100000; i++) {
        snprintf(entry, sizeof(entry), "CN=client-%d,O=Org", i);
        assert_int_equal(tg_tls_allow_add(a, entry, why, sizeof(why)), 0);
    }
    assert_int_equal(tg_tls_allow_count(a), 100000);
    X509 *in = make_cert("O=Org,CN=client-99999", NULL, NULL);
    X509 *out = make_cert("CN=stranger,O=Org", NULL, NULL);
    char matched[16];
    assert_true(tg_tls_allow_match(a, in, matched, sizeof(matched)));
    assert_string_equal(matched, "subject");
    clock_t t0 = clock();
    for (int i = 0; i < 2000; i++)
        assert_false(tg_tls_allow_match(a, out, NULL, 0));
    double per = (double)(clock() - t0) / CLOCKS_PER_SEC / 2000;
    assert_true(per < 0.001); /* a scan of 100,000 canonical DNs would take far longer */
    X509_free(in);
    X509_free(out);
    tg_tls_allow_free(a);
}

static void test_xfcc(void **state)
{
    (void)state;
    X509 *x = make_cert("CN=a\\\"b\\,c,O=Org", "DNS:a.example,URI:spiffe://t/a", NULL);
    char *v = tg_tls_xfcc(x);
    unsigned char md[32];
    unsigned int len = 0;
    X509_digest(x, EVP_sha256(), md, &len);
    char hex[65];
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    char want[512];
    snprintf(want, sizeof(want),
             "Hash=%s;Subject=\"CN=a\\\\\\\"b\\\\,c,O=Org\";URI=\"spiffe://t/a\";DNS=\"a.example\"",
             hex);
    assert_string_equal(v, want);
    for (const char *p = v; *p; p++)
        assert_true((unsigned char)*p >= 0x20);
    free(v);
    X509_free(x);
    assert_null(tg_tls_xfcc(NULL));
}

static void test_rfc9440(void **state)
{
    (void)state;
    X509 *leaf = make_cert("CN=leaf", NULL, NULL);
    X509 *inter = make_cert("CN=inter", NULL, NULL);
    char *v = tg_tls_rfc9440_cert(leaf);
    unsigned char *der = NULL;
    int n = i2d_X509(leaf, &der);
    size_t vl = strlen(v);
    assert_true(vl > 2 && v[0] == ':' && v[vl - 1] == ':');
    unsigned char *back = malloc(vl);
    int m = EVP_DecodeBlock(back, (const unsigned char *)v + 1, (int)vl - 2);
    /* EVP_DecodeBlock counts padding bytes as data */
    assert_true(m >= n && m - n < 3);
    assert_memory_equal(back, der, (size_t)n);
    free(back);
    OPENSSL_free(der);
    free(v);
    /* a verified chain: leaf, intermediates, trust anchor last */
    X509 *root = make_cert("CN=root", NULL, NULL);
    STACK_OF(X509) *chain = sk_X509_new_null();
    sk_X509_push(chain, leaf);
    assert_null(tg_tls_rfc9440_chain(chain, false));
    assert_null(tg_tls_rfc9440_chain(chain, true));
    sk_X509_push(chain, root);
    assert_null(tg_tls_rfc9440_chain(chain, false)); /* only the anchor after the leaf */
    sk_X509_pop(chain);
    sk_X509_push(chain, inter);
    sk_X509_push(chain, inter);
    sk_X509_push(chain, root);
    v = tg_tls_rfc9440_chain(chain, false);
    char *one = tg_tls_rfc9440_cert(inter);
    char *anchor = tg_tls_rfc9440_cert(root);
    char want[8192];
    snprintf(want, sizeof(want), "%s, %s", one, one);
    assert_string_equal(v, want);
    free(v);
    v = tg_tls_rfc9440_chain(chain, true);
    snprintf(want, sizeof(want), "%s, %s, %s", one, one, anchor);
    assert_string_equal(v, want);
    free(one);
    free(anchor);
    free(v);
    X509_free(root);
    sk_X509_free(chain);
    X509_free(leaf);
    X509_free(inter);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dn_normalisation),
        cmocka_unit_test(test_san_and_pin_entries),
        cmocka_unit_test(test_bad_entries),
        cmocka_unit_test(test_large_list),
        cmocka_unit_test(test_xfcc),
        cmocka_unit_test(test_rfc9440),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
