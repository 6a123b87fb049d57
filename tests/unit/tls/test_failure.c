/* Unit tests for tls/failure.c: the reason table, sniffing and error classification. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/err.h>

#include "tls/tls.h"

static void test_table_complete(void **state)
{
    for (int f = 0; f < TG_TLS_FAIL__COUNT; f++) {
        const struct tg_tls_fail_info *fi = tg_tls_fail_info((enum tg_tls_fail)f);
        assert_non_null(fi);
        assert_non_null(fi->token);
        assert_non_null(fi->sentence);
        assert_true(strlen(fi->token) > 0 && strlen(fi->sentence) > 10);
        for (int g = 0; g < f; g++)
            assert_string_not_equal(fi->token, tg_tls_fail_info((enum tg_tls_fail)g)->token);
    }
    assert_string_equal(tg_tls_fail_info(TG_TLS_FAIL_VERSION)->config_key, "tls.min_version");
    assert_false(tg_tls_fail_info(TG_TLS_FAIL_INTERNAL)->client_caused);
    assert_true(tg_tls_fail_info(TG_TLS_FAIL_PLAIN_HTTP)->client_caused);
    /* Out-of-range values do not index past the table. */
    assert_non_null(tg_tls_fail_info(TG_TLS_FAIL__COUNT)->token);
}

#define SNIFF(lit) tg_tls_sniff((const uint8_t *)(lit), sizeof(lit) - 1)

static void test_sniff(void **state)
{
    assert_int_equal(tg_tls_sniff(NULL, 0), TG_SNIFF_NEED_MORE);
    assert_int_equal(SNIFF("\x16"), TG_SNIFF_NEED_MORE);
    assert_int_equal(SNIFF("\x16\x03"), TG_SNIFF_NEED_MORE);
    assert_int_equal(SNIFF("\x16\x03\x01"), TG_SNIFF_TLS);
    assert_int_equal(SNIFF("\x16\x03\x00\x00\x10"), TG_SNIFF_TLS);
    assert_int_equal(SNIFF("\x16\x03\x04"), TG_SNIFF_TLS);
    assert_int_equal(SNIFF("\x16\x03\x05"), TG_SNIFF_OTHER);
    assert_int_equal(SNIFF("\x16\x02"), TG_SNIFF_OTHER);
    assert_int_equal(SNIFF("\x80\x2e"), TG_SNIFF_NEED_MORE);
    assert_int_equal(SNIFF("\x80\x2e\x01"), TG_SNIFF_NEED_MORE);
    assert_int_equal(SNIFF("\x80\x2e\x01\x00\x02"), TG_SNIFF_SSLV2);
    assert_int_equal(SNIFF("\x80\x2e\x01\x03\x01"), TG_SNIFF_SSLV2);
    assert_int_equal(SNIFF("\x80\x2e\x02\x03\x01"), TG_SNIFF_OTHER);
    assert_int_equal(SNIFF("GET / HTTP/1.1\r\n"), TG_SNIFF_HTTP);
    assert_int_equal(SNIFF("GET "), TG_SNIFF_HTTP);
    assert_int_equal(SNIFF("GET"), TG_SNIFF_NEED_MORE);
    assert_int_equal(SNIFF("GETX"), TG_SNIFF_OTHER);
    assert_int_equal(SNIFF("POST /x"), TG_SNIFF_HTTP);
    assert_int_equal(SNIFF("P"), TG_SNIFF_NEED_MORE);
    assert_int_equal(SNIFF("OPTIONS *"), TG_SNIFF_HTTP);
    assert_int_equal(SNIFF("OPTIONS"), TG_SNIFF_NEED_MORE);
    assert_int_equal(SNIFF("CONNECT a:1"), TG_SNIFF_HTTP);
    assert_int_equal(SNIFF("PRI * HTTP/2.0"), TG_SNIFF_HTTP);
    assert_int_equal(SNIFF("DELETE /"), TG_SNIFF_HTTP);
    assert_int_equal(SNIFF("get / "), TG_SNIFF_OTHER);
    assert_int_equal(SNIFF("SSH-2.0"), TG_SNIFF_OTHER);
    assert_int_equal(SNIFF("\x00\x00"), TG_SNIFF_OTHER);
}

static void test_classify_errno(void **state)
{
    assert_int_equal(tg_tls_classify(NULL, SSL_ERROR_SYSCALL, 0), TG_TLS_FAIL_HANGUP);
    assert_int_equal(tg_tls_classify(NULL, SSL_ERROR_SYSCALL, ECONNRESET), TG_TLS_FAIL_HANGUP);
    assert_int_equal(tg_tls_classify(NULL, SSL_ERROR_SYSCALL, EPIPE), TG_TLS_FAIL_HANGUP);
    assert_int_equal(tg_tls_classify(NULL, SSL_ERROR_SYSCALL, ENOMEM), TG_TLS_FAIL_INTERNAL);
    assert_int_equal(tg_tls_classify(NULL, SSL_ERROR_ZERO_RETURN, 0), TG_TLS_FAIL_HANGUP);
}

static enum tg_tls_fail classify_reason(int reason)
{
    ERR_raise(ERR_LIB_SSL, reason);
    enum tg_tls_fail f = tg_tls_classify(NULL, SSL_ERROR_SSL, 0);
    assert_int_equal(ERR_peek_error(), 0); /* the queue is cleared */
    return f;
}

static void test_classify_reasons(void **state)
{
    assert_int_equal(classify_reason(SSL_R_UNSUPPORTED_PROTOCOL), TG_TLS_FAIL_VERSION);
    assert_int_equal(classify_reason(SSL_R_VERSION_TOO_LOW), TG_TLS_FAIL_VERSION);
    assert_int_equal(classify_reason(SSL_R_NO_SHARED_CIPHER), TG_TLS_FAIL_CIPHER);
    assert_int_equal(classify_reason(SSL_R_NO_SHARED_GROUPS), TG_TLS_FAIL_GROUP);
    assert_int_equal(classify_reason(SSL_R_NO_SUITABLE_KEY_SHARE), TG_TLS_FAIL_GROUP);
    assert_int_equal(classify_reason(SSL_R_NO_SHARED_SIGNATURE_ALGORITHMS), TG_TLS_FAIL_SIGALG);
    assert_int_equal(classify_reason(SSL_R_NO_APPLICATION_PROTOCOL), TG_TLS_FAIL_ALPN);
    assert_int_equal(classify_reason(SSL_R_HTTP_REQUEST), TG_TLS_FAIL_PLAIN_HTTP);
    assert_int_equal(classify_reason(SSL_R_WRONG_VERSION_NUMBER), TG_TLS_FAIL_NOT_TLS);
    assert_int_equal(classify_reason(SSL_R_UNEXPECTED_EOF_WHILE_READING), TG_TLS_FAIL_HANGUP);
    assert_int_equal(classify_reason(SSL_R_SSLV3_ALERT_BAD_CERTIFICATE), TG_TLS_FAIL_PEER_ALERT);
    assert_int_equal(classify_reason(SSL_R_TLSV1_ALERT_UNKNOWN_CA), TG_TLS_FAIL_PEER_ALERT);
    assert_int_equal(classify_reason(SSL_R_TLSV1_ALERT_PROTOCOL_VERSION), TG_TLS_FAIL_VERSION);
    assert_int_equal(classify_reason(SSL_R_BAD_PACKET_LENGTH), TG_TLS_FAIL_PROTOCOL);
}

static void test_detail_without_record(void **state)
{
    char buf[256];
    tg_tls_fail_detail(NULL, TG_TLS_FAIL_PLAIN_HTTP, buf, sizeof(buf));
    assert_string_equal(buf, tg_tls_fail_info(TG_TLS_FAIL_PLAIN_HTTP)->sentence);
    tg_tls_fail_detail(NULL, TG_TLS_FAIL_CIPHER, buf, 8);
    assert_int_equal(strlen(buf), 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_complete),        cmocka_unit_test(test_sniff),
        cmocka_unit_test(test_classify_errno),        cmocka_unit_test(test_classify_reasons),
        cmocka_unit_test(test_detail_without_record),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
