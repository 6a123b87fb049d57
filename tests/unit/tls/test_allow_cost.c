/* The allow list is looked up in a hash set: 100,000 entries cost no more per handshake than 10
 * (docs/config.md, tls.client_auth.allowed_subjects). Matching a certificate that is on neither
 * list (the worst case for a scan) is timed against both sizes, the best of several rounds
 * each (short rounds, many of them: on a loaded machine some rounds of each run undisturbed); a
 * list scanned entry by entry would be thousands of times slower at 100,000. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "tls/tls.h"

#define MATCHES 1000
#define ROUNDS  31

static X509 *make_cert(const char *cn, EVP_PKEY *key)
{
    X509 *x = X509_new();
    X509_NAME *name = X509_NAME_new();
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"Org", -1, -1, 0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_version(x, 2);
    X509_set_subject_name(x, name);
    X509_set_issuer_name(x, name);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key);
    assert_true(X509_sign(x, key, NULL) > 0);
    X509_NAME_free(name);
    return x;
}

static struct tg_tls_allow *list_of(int n)
{
    struct tg_tls_allow *a = tg_tls_allow_new();
    char entry[64], why[128];
    for (int i = 0; i < n; i++) {
        snprintf(entry, sizeof(entry), "CN=client-%d,O=Org", i);
        assert_int_equal(tg_tls_allow_add(a, entry, why, sizeof(why)), 0);
    }
    assert_int_equal(tg_tls_allow_count(a), (size_t)n);
    return a;
}

static double seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double round_time(const struct tg_tls_allow *a, X509 *x)
{
    double t = seconds();
    for (int i = 0; i < MATCHES; i++)
        assert_false(tg_tls_allow_match(a, x, NULL, 0));
    return seconds() - t;
}

static void test_100000_entries_cost_no_more_than_10(void **state)
{
    (void)state;
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    assert_non_null(key);
    X509 *stranger = make_cert("stranger", key);
    X509 *member = make_cert("client-99999", key);
    struct tg_tls_allow *small = list_of(10), *big = list_of(100000);
    assert_true(tg_tls_allow_match(big, member, NULL, 0));
    assert_false(tg_tls_allow_match(small, member, NULL, 0));
    double best_small = 1e9, best_big = 1e9;
    for (int r = 0; r < ROUNDS; r++) { /* interleaved: a busy machine slows both alike */
        double s = round_time(small, stranger), b = round_time(big, stranger);
        best_small = s < best_small ? s : best_small;
        best_big = b < best_big ? b : best_big;
    }
    fprintf(stderr, "%d matches: 10 entries %.2f ms, 100,000 entries %.2f ms\n", MATCHES,
            best_small * 1e3, best_big * 1e3);
    /* equal in principle; 4x leaves room for cache misses in the larger table */
    assert_true(best_big <= 4 * best_small + 0.002);
    tg_tls_allow_free(small);
    tg_tls_allow_free(big);
    X509_free(stranger);
    X509_free(member);
    EVP_PKEY_free(key);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_100000_entries_cost_no_more_than_10),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
