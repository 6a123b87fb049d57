/* Unit tests for tls/dn.c: RFC 4514 parsing, canonical comparison form and rendering. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tls/tls.h"

static char *canon(const char *s)
{
    struct tg_err err;
    tg_err_init(&err);
    X509_NAME *n = tg_dn_parse(s, &err, "/x");
    assert_non_null(n);
    assert_int_equal(tg_err_count(&err), 0);
    char *c = tg_dn_canonical(n);
    X509_NAME_free(n);
    tg_err_close(&err);
    return c;
}

static void assert_same(const char *a, const char *b)
{
    char *ca = canon(a), *cb = canon(b);
    assert_string_equal(ca, cb);
    free(ca);
    free(cb);
}

static void assert_bad(const char *s, const char *why)
{
    struct tg_err err;
    tg_err_init(&err);
    X509_NAME *n = tg_dn_parse(s, &err, "/listeners/0/tls/client_auth/allowed_subjects/0");
    assert_null(n);
    assert_int_equal(tg_err_count(&err), 1);
    assert_string_equal(err.v[0].path, "/listeners/0/tls/client_auth/allowed_subjects/0");
    assert_non_null(strstr(err.v[0].msg, why));
    tg_err_close(&err);
}

static void test_order_case_spaces(void **state)
{
    assert_same("CN=CordaOperator,C=GB,L=London,O=Org", "o=Org, l=London, c=GB, cn=CordaOperator");
    assert_same("CN = alice , O = Org", "cn=alice,o=Org");
    assert_same("emailaddress=a@example.com,CN=x", "CN=x,EMAILADDRESS=a@example.com");
    assert_same("OID.2.5.4.3=alice", "CN=alice");
    assert_same("2.5.4.3=alice;O=Org", "CN=alice,O=Org");
    char *c = canon("o=Org, l=London, c=GB, cn=CordaOperator");
    assert_string_equal(c, "C=GB,CN=CordaOperator,L=London,O=Org");
    free(c);
}

static void test_values_case_sensitive(void **state)
{
    char *a = canon("CN=Alice"), *b = canon("CN=alice");
    assert_string_not_equal(a, b);
    free(a);
    free(b);
}

static void test_escapes(void **state)
{
    struct tg_err err;
    tg_err_init(&err);
    X509_NAME *n = tg_dn_parse("CN=a\\,b\\+c\\\"d\\\\e\\41\\ ,O=x", &err, NULL);
    assert_non_null(n);
    int idx = X509_NAME_get_index_by_NID(n, NID_commonName, -1);
    assert_true(idx >= 0);
    const ASN1_STRING *v = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(n, idx));
    assert_int_equal(ASN1_STRING_length(v), 11);
    assert_memory_equal(ASN1_STRING_get0_data(v), "a,b+c\"d\\eA ", 11);
    /* Rendering escapes again, and parses back to the same name. */
    char *s = tg_dn_string(n);
    X509_NAME *again = tg_dn_parse(s, &err, NULL);
    assert_non_null(again);
    assert_int_equal(X509_NAME_cmp(n, again), 0);
    free(s);
    X509_NAME_free(again);
    X509_NAME_free(n);
    tg_err_close(&err);
}

static void test_multivalued_and_order(void **state)
{
    struct tg_err err;
    tg_err_init(&err);
    X509_NAME *n = tg_dn_parse("CN=alice+UID=7,O=Org,C=GB", &err, NULL);
    assert_non_null(n);
    assert_int_equal(X509_NAME_entry_count(n), 4);
    /* Most significant (last written) first in the X509_NAME. */
    assert_int_equal(OBJ_obj2nid(X509_NAME_ENTRY_get_object(X509_NAME_get_entry(n, 0))),
                     NID_countryName);
    assert_int_equal(X509_NAME_ENTRY_set(X509_NAME_get_entry(n, 2)),
                     X509_NAME_ENTRY_set(X509_NAME_get_entry(n, 3)));
    char *s = tg_dn_string(n);
    assert_string_equal(s, "CN=alice+UID=7,O=Org,C=GB");
    free(s);
    X509_NAME_free(n);
    tg_err_close(&err);
    assert_same("UID=7+CN=alice,O=Org", "O=Org,CN=alice+UID=7");
}

static void test_quoted(void **state)
{
    assert_same("CN=\"a, b\",O=x", "CN=a\\, b,O=x");
}

static void test_malformed(void **state)
{
    assert_bad("", "empty");
    assert_bad("CN", "TYPE=value");
    assert_bad("CN=a,", "TYPE=value");
    assert_bad("XX=a", "unknown attribute type");
    assert_bad("CN=a\\q", "bad escape");
    assert_bad("CN=#0403", "hex-encoded");
    assert_bad("C=GBR", "not allowed");
    assert_bad("CN=\"open", "unterminated");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_case_spaces),
        cmocka_unit_test(test_values_case_sensitive),
        cmocka_unit_test(test_escapes),
        cmocka_unit_test(test_multivalued_and_order),
        cmocka_unit_test(test_quoted),
        cmocka_unit_test(test_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
