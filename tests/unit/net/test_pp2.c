/* Unit tests for net/pp2.c: PROXY protocol v2 headers as haproxy's proxy-protocol.txt (2.2)
 * defines them, byte for byte. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "net/net.h"

static struct sockaddr_storage v4(const char *ip, uint16_t port)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    inet_pton(AF_INET, ip, &in->sin_addr);
    return ss;
}

static void test_ipv4_no_tls(void **state)
{
    (void)state;
    struct sockaddr_storage src = v4("192.0.2.1", 40000), dst = v4("198.51.100.7", 443);
    uint8_t buf[256];
    size_t n = tg_pp2_build(buf, sizeof(buf), &src, &dst, NULL);
    static const uint8_t want[] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49,
                                   0x54, 0x0A, 0x21, 0x11, 0x00, 0x0C, 192,  0,    2,    1,
                                   198,  51,   100,  7,    0x9C, 0x40, 0x01, 0xBB};
    assert_int_equal(n, sizeof(want));
    assert_memory_equal(buf, want, sizeof(want));
}

/* Finds TLV type t in [p, end); returns its value and length, or NULL. */
static const uint8_t *find_tlv(const uint8_t *p, const uint8_t *end, uint8_t t, size_t *len)
{
    while (p + 3 <= end) {
        size_t l = (size_t)p[1] << 8 | p[2];
        if (p + 3 + l > end)
            return NULL;
        if (p[0] == t) {
            *len = l;
            return p + 3;
        }
        p += 3 + l;
    }
    return NULL;
}

static void test_tls_tlvs(void **state)
{
    (void)state;
    struct sockaddr_storage src = v4("127.0.0.1", 5555), dst = v4("127.0.0.1", 8443);
    struct tg_pp2_tls tls = {
        .version = "TLSv1.3", .cipher = "TLS_AES_128_GCM_SHA256", .sni = "api.example.com"};
    uint8_t buf[512];
    size_t n = tg_pp2_build(buf, sizeof(buf), &src, &dst, &tls);
    assert_true(n > 28);
    assert_int_equal((size_t)(buf[14] << 8 | buf[15]), n - 16); /* length covers the rest */
    const uint8_t *tlvs = buf + 28, *end = buf + n;
    size_t len = 0;
    const uint8_t *v = find_tlv(tlvs, end, 0x02, &len);
    assert_non_null(v);
    assert_int_equal(len, strlen("api.example.com"));
    assert_memory_equal(v, "api.example.com", len);
    const uint8_t *ssl = find_tlv(tlvs, end, 0x20, &len);
    assert_non_null(ssl);
    assert_true(ssl[0] & 0x01);                  /* PP2_CLIENT_SSL */
    assert_false(ssl[0] & 0x02);                 /* no client certificate */
    assert_memory_equal(ssl + 1, "\0\0\0\0", 4); /* verify = 0 */
    size_t sl = 0;
    const uint8_t *ver = find_tlv(ssl + 5, ssl + len, 0x21, &sl);
    assert_non_null(ver);
    assert_int_equal(sl, 7);
    assert_memory_equal(ver, "TLSv1.3", 7);
    const uint8_t *cip = find_tlv(ssl + 5, ssl + len, 0x23, &sl);
    assert_non_null(cip);
    assert_memory_equal(cip, "TLS_AES_128_GCM_SHA256", sl);
}

static void test_too_small(void **state)
{
    (void)state;
    struct sockaddr_storage src = v4("127.0.0.1", 1), dst = v4("127.0.0.1", 2);
    struct tg_pp2_tls tls = {.sni = "a-long-enough-name.example"};
    uint8_t buf[40];
    assert_int_equal(tg_pp2_build(buf, sizeof(buf), &src, &dst, &tls), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ipv4_no_tls),
        cmocka_unit_test(test_tls_tlvs),
        cmocka_unit_test(test_too_small),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
