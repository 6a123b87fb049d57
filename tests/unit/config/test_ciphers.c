/* Unit tests for config/ciphers.c: suite names in every spelling, legacy/insecure, groups,
 * versions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/ssl.h>

#include "config/config.h"
#include "config/internal.h"

static void expect(const char *name, const char *openssl_name, bool tls13)
{
    struct tg_cipher_info ci;
    if (tg_cipher_lookup(name, &ci) != 0)
        fail_msg("lookup of %s failed", name);
    assert_string_equal(ci.openssl_name, openssl_name);
    assert_int_equal(ci.tls13, tls13);
}

static void test_spellings(void **state)
{
    expect("SSL_RSA_WITH_3DES_EDE_CBC_SHA", "DES-CBC3-SHA", false);
    expect("TLS_RSA_WITH_3DES_EDE_CBC_SHA", "DES-CBC3-SHA", false);
    expect("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", "ECDHE-RSA-AES128-SHA256", false);
    expect("SSL_ECDHE_RSA_WITH_AES_128_CBC_SHA256", "ECDHE-RSA-AES128-SHA256", false);
    expect("49199", "ECDHE-RSA-AES128-GCM-SHA256", false);
    expect("0xC02F", "ECDHE-RSA-AES128-GCM-SHA256", false);
    expect("0xc02f", "ECDHE-RSA-AES128-GCM-SHA256", false);
    expect("ecdhe-rsa-aes128-gcm-sha256", "ECDHE-RSA-AES128-GCM-SHA256", false);
    expect("tls_ecdhe_ecdsa_with_aes_256_gcm_sha384", "ECDHE-ECDSA-AES256-GCM-SHA384", false);
    expect("TLS_AES_256_GCM_SHA384", "TLS_AES_256_GCM_SHA384", true);
    expect("4865", "TLS_AES_128_GCM_SHA256", true);
    expect("TLS_AES_128_CCM_8_SHA256", "TLS_AES_128_CCM_8_SHA256", true);
    expect("TLS_AES_128_CCM_SHA256", "TLS_AES_128_CCM_SHA256", true);
    expect("EDH-RSA-AES128-SHA", "DHE-RSA-AES128-SHA", false);

    struct tg_cipher_info ci;
    assert_int_equal(tg_cipher_lookup("49199", &ci), 0);
    assert_int_equal(ci.id, 49199);
    assert_string_equal(ci.iana_name, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256");
    assert_int_equal(ci.min_version, TLS1_2_VERSION);
    assert_false(ci.legacy);
    assert_false(ci.insecure);
    assert_true(ci.available);
    assert_int_equal(tg_cipher_lookup("TLS_AES_256_GCM_SHA384", &ci), 0);
    assert_int_equal(ci.min_version, TLS1_3_VERSION);
    assert_int_equal(ci.id, 0x1302);

    assert_int_equal(tg_cipher_lookup("", &ci), -1);
    assert_int_equal(tg_cipher_lookup("0x", &ci), -1);
    assert_int_equal(tg_cipher_lookup("70000", &ci), -1);
    assert_int_equal(tg_cipher_lookup("12345", &ci), -1);
    assert_int_equal(tg_cipher_lookup("NOT-A-SUITE", &ci), -1);
    assert_int_equal(tg_cipher_lookup("SSL_", &ci), -1);
}

static void test_legacy_insecure(void **state)
{
    struct tg_cipher_info ci;
    assert_int_equal(tg_cipher_lookup("DES-CBC3-SHA", &ci), 0);
    assert_true(ci.legacy);
    assert_false(ci.insecure);
    assert_int_equal(tg_cipher_lookup("ECDHE-RSA-DES-CBC3-SHA", &ci), 0);
    assert_true(ci.legacy);

    assert_int_equal(tg_cipher_lookup("ADH-AES128-SHA", &ci), 0);
    assert_true(ci.insecure);
    assert_string_equal(ci.insecure_reason, "without authentication");
    assert_int_equal(tg_cipher_lookup("TLS_RSA_WITH_NULL_SHA256", &ci), 0);
    assert_true(ci.insecure);
    assert_string_equal(ci.insecure_reason, "without encryption");
    assert_int_equal(tg_cipher_lookup("RC4-SHA", &ci), 0);
    assert_true(ci.insecure);
    assert_int_equal(tg_cipher_lookup("EXP-RC4-MD5", &ci), 0);
    assert_true(ci.insecure);

    /* Modern suites are neither; every TLS 1.3 suite is offered at level 1. */
    static const char *const modern[] = {"ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-SHA",
                                         "TLS_CHACHA20_POLY1305_SHA256", "AES256-GCM-SHA384"};
    for (size_t i = 0; i < sizeof(modern) / sizeof(modern[0]); i++) {
        assert_int_equal(tg_cipher_lookup(modern[i], &ci), 0);
        assert_false(ci.legacy);
        assert_false(ci.insecure);
        assert_true(ci.available);
    }
}

static void test_catalogue(void **state)
{
    size_t n = tg_config__cipher_count(), n13 = 0;
    assert_true(n > 40);
    for (size_t i = 0; i < n; i++) {
        const struct tg_cipher_info *ci = tg_config__cipher_at(i);
        struct tg_cipher_info back;
        /* Every name and number resolves back to the same suite. */
        assert_int_equal(tg_cipher_lookup(ci->openssl_name, &back), 0);
        assert_int_equal(back.id, ci->id);
        assert_int_equal(tg_cipher_lookup(ci->iana_name, &back), 0);
        assert_int_equal(back.id, ci->id);
        n13 += ci->tls13;
    }
    assert_int_equal(n13, 5);
    assert_null(tg_config__cipher_at(n));
}

static void test_suggest(void **state)
{
    assert_string_equal(tg_cipher_suggest("TLS_AES_128_GCM_SHA265"), "TLS_AES_128_GCM_SHA256");
    assert_string_equal(tg_cipher_suggest("ECDHE-RSA-AES128-GCM-SHA265"),
                        "ECDHE-RSA-AES128-GCM-SHA256");
    assert_null(tg_cipher_suggest("banana"));
    assert_null(tg_cipher_suggest(""));
}

static void test_cipher_string_check(void **state)
{
    bool legacy;
    const char *insecure;
    assert_true(tg_config__cipher_string_check("HIGH:!aNULL", &legacy, &insecure) > 0);
    assert_false(legacy);
    assert_null(insecure);
    assert_true(tg_config__cipher_string_check("aNULL", &legacy, &insecure) > 0);
    assert_non_null(insecure);
    assert_int_equal(tg_config__cipher_string_check("FOO", &legacy, &insecure), 0);
    assert_int_equal(tg_config__cipher_string_check("", &legacy, &insecure), 0);
}

static void test_curves(void **state)
{
    static const struct {
        const char *in, *out;
    } cases[] = {{"X25519", "X25519"},       {"x448", "X448"},          {"P-256", "P-256"},
                 {"prime256v1", "P-256"},    {"SECP256R1", "P-256"},    {"p-384", "P-384"},
                 {"secp384r1", "P-384"},     {"P-521", "P-521"},        {"secp521r1", "P-521"},
                 {"ffdhe2048", "ffdhe2048"}, {"FFDHE8192", "ffdhe8192"}};
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *g = tg_curve_lookup(cases[i].in);
        assert_non_null(g);
        assert_string_equal(g, cases[i].out);
        /* The spelling we hand over is one OpenSSL accepts. */
        assert_int_equal(SSL_CTX_set1_groups_list(ctx, g), 1);
    }
    SSL_CTX_free(ctx);
    assert_null(tg_curve_lookup("P-257"));
    assert_null(tg_curve_lookup(""));
}

static void test_versions(void **state)
{
    assert_int_equal(tg_tls_version_parse("TLS1.0"), TLS1_VERSION);
    assert_int_equal(tg_tls_version_parse("TLSv1"), TLS1_VERSION);
    assert_int_equal(tg_tls_version_parse("TLSv1.1"), TLS1_1_VERSION);
    assert_int_equal(tg_tls_version_parse("tls1.2"), TLS1_2_VERSION);
    assert_int_equal(tg_tls_version_parse("TLSV1.3"), TLS1_3_VERSION);
    assert_int_equal(tg_tls_version_parse("1.2"), TLS1_2_VERSION);
    assert_int_equal(tg_tls_version_parse("TLS_1_2"), TLS1_2_VERSION);
    assert_int_equal(tg_tls_version_parse("TLS1.4"), -1);
    assert_int_equal(tg_tls_version_parse("SSLv3"), -1);
    assert_int_equal(tg_tls_version_parse(""), -1);
    assert_int_equal(tg_tls_version_parse("TLS"), -1);
    assert_string_equal(tg_tls_version_name(TLS1_VERSION), "TLS1.0");
    assert_string_equal(tg_tls_version_name(TLS1_3_VERSION), "TLS1.3");
    assert_string_equal(tg_tls_version_name(0), "?");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spellings),
        cmocka_unit_test(test_legacy_insecure),
        cmocka_unit_test(test_catalogue),
        cmocka_unit_test(test_suggest),
        cmocka_unit_test(test_cipher_string_check),
        cmocka_unit_test(test_curves),
        cmocka_unit_test(test_versions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
