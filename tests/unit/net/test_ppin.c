/* Unit tests for net/ppin.c (PROXY v1/v2 headers received) and the address blocks of
 * proxy_protocol_from (core/addr.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "core/addr.h"
#include "net/net.h"

static struct sockaddr_storage addr(const char *ip, uint16_t port)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (strchr(ip, ':') != NULL) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        inet_pton(AF_INET6, ip, &in6->sin6_addr);
    } else {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        in->sin_family = AF_INET;
        in->sin_port = htons(port);
        inet_pton(AF_INET, ip, &in->sin_addr);
    }
    return ss;
}

static long parse(const char *s, struct tg_ppin *out)
{
    return tg_ppin_parse((const uint8_t *)s, strlen(s), out);
}

static void test_v1(void **state)
{
    (void)state;
    struct tg_ppin h;
    const char *line = "PROXY TCP4 192.0.2.1 198.51.100.7 40000 443\r\n";
    char buf[128];
    snprintf(buf, sizeof(buf), "%s\x16\x03\x01", line);
    assert_int_equal(parse(buf, &h), (long)strlen(line)); /* bytes after it are not taken */
    struct sockaddr_storage want = addr("192.0.2.1", 40000);
    assert_false(h.local);
    assert_true(tg_addr_equal(&h.src, &want));
    assert_int_equal(parse("PROXY TCP6 2001:db8::1 ::1 1 65535\r\n", &h), 36);
    want = addr("2001:db8::1", 1);
    assert_true(tg_addr_equal(&h.src, &want));
    assert_int_equal(parse("PROXY UNKNOWN\r\n", &h), 15);
    assert_true(h.local);
    /* Every prefix of a good line needs more; a wrong byte is refused at once. */
    for (size_t n = 0; n < strlen(line); n++)
        assert_int_equal(tg_ppin_parse((const uint8_t *)line, n, &h), 0);
    assert_int_equal(parse("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", &h), -TG_PPIN_FAIL_V1_SYNTAX);
    assert_int_equal(parse("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", &h), -TG_PPIN_FAIL_V1_SYNTAX);
    assert_int_equal(parse("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", &h), -TG_PPIN_FAIL_V1_SYNTAX);
    assert_int_equal(parse("PROXY TCP4 ::1 ::1 1 2\r\n", &h), -TG_PPIN_FAIL_V1_ADDRESS);
    assert_int_equal(parse("PROXY TCP4 1.2.3.4 5.6.7.8 1 00\r\n", &h), -TG_PPIN_FAIL_V1_ADDRESS);
    assert_int_equal(parse("PROXY TCP4 1.2.3.04 5.6.7.8 1 2\r\n", &h), -TG_PPIN_FAIL_V1_ADDRESS);
    assert_int_equal(parse("PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n", &h), -TG_PPIN_FAIL_V1_SYNTAX);
    assert_int_equal(parse("PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n", &h), -TG_PPIN_FAIL_V1_SYNTAX);
    assert_int_equal(parse("PRoXY", &h), -TG_PPIN_FAIL_NOT_PROXY);
    assert_int_equal(parse("\x16\x03\x01", &h), -TG_PPIN_FAIL_NOT_PROXY);
    char longline[200];
    memset(longline, '1', sizeof(longline));
    memcpy(longline, "PROXY TCP6 ", 11);
    longline[sizeof(longline) - 1] = '\0';
    assert_int_equal(parse(longline, &h), -TG_PPIN_FAIL_V1_TOO_LONG);
}

static void test_v2_round_trip(void **state)
{
    (void)state;
    static const char *const pairs[][2] = {{"192.0.2.1", "198.51.100.7"},
                                           {"2001:db8::5", "2001:db8::1"}};
    for (size_t i = 0; i < 2; i++) {
        struct sockaddr_storage src = addr(pairs[i][0], 40001), dst = addr(pairs[i][1], 443);
        struct tg_pp2_tls tls = {
            .version = "TLSv1.3", .cipher = "TLS_AES_128_GCM_SHA256", .sni = "example.com"};
        uint8_t buf[512];
        size_t n = tg_pp2_build(buf, sizeof(buf), &src, &dst, &tls);
        assert_true(n > 16);
        struct tg_ppin h;
        for (size_t k = 0; k < n; k++)
            assert_int_equal(tg_ppin_parse(buf, k, &h), 0);
        buf[n] = 0x16; /* a ClientHello's first byte after it */
        assert_int_equal(tg_ppin_parse(buf, n + 1, &h), (long)n);
        assert_false(h.local);
        assert_true(tg_addr_equal(&h.src, &src));
        assert_true(tg_addr_equal(&h.dst, &dst));
        /* A header length one short of its TLVs is refused. */
        buf[15]--;
        assert_int_equal(tg_ppin_parse(buf, n, &h), -TG_PPIN_FAIL_V2_TLV);
    }
}

static void test_v2_local_and_errors(void **state)
{
    (void)state;
    uint8_t h2[32] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
    struct tg_ppin h;
    h2[12] = 0x20; /* LOCAL */
    h2[13] = 0x00;
    assert_int_equal(tg_ppin_parse(h2, 16, &h), 16);
    assert_true(h.local);
    h2[12] = 0x11; /* version 1 */
    assert_int_equal(tg_ppin_parse(h2, 16, &h), -TG_PPIN_FAIL_V2_VERSION);
    h2[12] = 0x22; /* command 2 */
    assert_int_equal(tg_ppin_parse(h2, 16, &h), -TG_PPIN_FAIL_V2_VERSION);
    h2[12] = 0x21;
    h2[13] = 0x12; /* UDP over IPv4 */
    h2[15] = 12;
    assert_int_equal(tg_ppin_parse(h2, 28, &h), -TG_PPIN_FAIL_V2_FAMILY);
    h2[13] = 0x21; /* TCP over IPv6 needs 36 bytes */
    assert_int_equal(tg_ppin_parse(h2, 28, &h), -TG_PPIN_FAIL_V2_LENGTH);
    h2[13] = 0x11;
    h2[14] = 0xff; /* over TG_PPIN_MAX */
    assert_int_equal(tg_ppin_parse(h2, 16, &h), -TG_PPIN_FAIL_V2_LENGTH);
    assert_string_equal(tg_ppin_fail_token(TG_PPIN_FAIL_V2_LENGTH), "v2_bad_length");
}

static void test_cidr(void **state)
{
    (void)state;
    struct tg_cidr c;
    const char *why = NULL;
    assert_int_equal(tg_cidr_parse("10.0.0.0/8", &c, &why), 0);
    struct sockaddr_storage a = addr("10.200.3.4", 1), b = addr("11.0.0.1", 1),
                            m = addr("::ffff:10.1.1.1", 1), v6 = addr("2001:db8::1", 1);
    assert_true(tg_cidr_match(&c, &a));
    assert_false(tg_cidr_match(&c, &b));
    assert_true(tg_cidr_match(&c, &m)); /* IPv4-mapped */
    assert_false(tg_cidr_match(&c, &v6));
    assert_int_equal(tg_cidr_parse("2001:db8::/33", &c, &why), 0);
    assert_true(tg_cidr_match(&c, &v6));
    assert_false(tg_cidr_match(&c, &a));
    assert_int_equal(tg_cidr_parse("192.0.2.7", &c, &why), 0);
    assert_int_equal(c.bits, 32);
    assert_int_equal(tg_cidr_parse("0.0.0.0/0", &c, &why), 0);
    assert_true(tg_cidr_match(&c, &b));
    assert_int_equal(tg_cidr_parse("10.1.0.0/8", &c, &why), -1);
    assert_string_equal(why, "address bits are set past the prefix length");
    assert_int_equal(tg_cidr_parse("10.0.0.0/33", &c, &why), -1);
    assert_int_equal(tg_cidr_parse("10.0.0.0/", &c, &why), -1);
    assert_int_equal(tg_cidr_parse("10.0.0.0/08", &c, &why), -1);
    assert_int_equal(tg_cidr_parse("host", &c, &why), -1);
    assert_int_equal(tg_cidr_parse("", &c, &why), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v1),
        cmocka_unit_test(test_v2_round_trip),
        cmocka_unit_test(test_v2_local_and_errors),
        cmocka_unit_test(test_cidr),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
