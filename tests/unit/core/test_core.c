/* Unit tests for core: error collection and formatting, bounded buffers, file helpers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/addr.h"
#include "core/buf.h"
#include "core/core.h"
#include "core/err.h"

static void test_err_format_and_count(void **state)
{
    (void)state;
    struct tg_err e;
    tg_err_init(&e);
    struct tg_loc loc = {"gw.json", 14, 9};
    tg_err_error(&e, &loc, "/listeners/0/tls/min_version",
                 "\"%s\" is not a TLS version (allowed: TLS1.0 to TLS1.3)", "TLS1.4");
    tg_err_warning(&e, &loc, "/listeners/0/tls", "legacy policy");
    tg_err_error(&e, NULL, NULL, "no location");
    assert_int_equal(tg_err_count(&e), 2);
    assert_int_equal(e.n, 3);
    char *s = tg_err_format(&e, 0);
    assert_string_equal(s, "gw.json:14:9: /listeners/0/tls/min_version: \"TLS1.4\" is not a TLS "
                           "version (allowed: TLS1.0 to TLS1.3)");
    free(s);
    s = tg_err_format(&e, 1);
    assert_string_equal(s, "gw.json:14:9: warning: /listeners/0/tls: legacy policy");
    free(s);
    s = tg_err_format(&e, 2);
    assert_string_equal(s, "no location");
    free(s);

    struct tg_err dst;
    tg_err_init(&dst);
    tg_err_error(&dst, NULL, NULL, "first");
    tg_err_move(&dst, &e);
    assert_int_equal(dst.n, 4);
    assert_int_equal(tg_err_count(&dst), 3);
    assert_int_equal(e.n, 0);
    tg_err_close(&dst);
    tg_err_close(&e);
}

static void test_buf_bounds(void **state)
{
    (void)state;
    struct tg_buf b = {0};
    tg_buf_ensure(&b, 8);
    assert_true(tg_buf_append(&b, "abcdef", 6));
    assert_false(tg_buf_append(&b, "xyz", 3)); /* would overflow: nothing appended */
    assert_int_equal(tg_buf_used(&b), 6);
    b.off = 4;                                /* consume "abcd" */
    assert_true(tg_buf_append(&b, "xyz", 3)); /* fits after compaction */
    assert_int_equal(b.off, 0);
    assert_memory_equal(b.data, "efxyz", 5);
    b.off = b.len;
    assert_int_equal(tg_buf_room(&b), 8); /* empty: reset to the front */
    tg_buf_release_if_empty(&b);
    assert_null(b.data);
    tg_buf_free(&b);
}

static void test_edit_distance(void **state)
{
    (void)state;
    assert_int_equal(tg_edit_distance("min_verison", "min_version"), 2);
    assert_int_equal(tg_edit_distance("TLS", "tls"), 0);
    assert_int_equal(tg_edit_distance("", "abc"), 3);
    assert_true(tg_strcaseeq("Content-Length", "content-length"));
    assert_false(tg_strcaseeq("Content-Length", "content-lengt"));
}

static void test_files(void **state)
{
    (void)state;
    char dir[] = "/tmp/tg-core-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *sub = tg_xasprintf("%s/a/b/c", dir);
    assert_int_equal(tg_mkdir_p(sub), 0);
    struct stat st;
    assert_int_equal(stat(sub, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    char *f = tg_xasprintf("%s/file", sub);
    assert_int_equal(tg_write_file_atomic(f, "hello", 5, 0600), 0);
    assert_int_equal(tg_write_file_atomic(f, "replaced", 8, 0600), 0);
    char *data = NULL;
    size_t len = 0;
    assert_int_equal(tg_read_file(f, &data, &len), 0);
    assert_int_equal(len, 8);
    assert_string_equal(data, "replaced");
    assert_int_equal(stat(f, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    free(data);
    assert_int_equal(tg_read_file(sub, &data, &len), -EISDIR);
    char *missing = tg_xasprintf("%s/missing", dir);
    assert_int_equal(tg_read_file(missing, &data, &len), -ENOENT);
    unlink(f);
    char *cmd = tg_xasprintf("rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    free(missing);
    free(f);
    free(sub);
}

/* What tg_addr_format writes parses back; anything else is refused. */
static void test_addr_parse_numeric(void **state)
{
    (void)state;
    struct sockaddr_storage ss;
    char buf[64];
    const char *good[] = {"1.2.3.4:5", "203.0.113.7:65535", "[::1]:443", "[2001:db8::1]:0"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        assert_int_equal(tg_addr_parse_numeric(good[i], &ss), 0);
        tg_addr_format(&ss, buf, sizeof(buf));
        assert_string_equal(buf, good[i]);
    }
    const char *bad[] = {
        "",        "1.2.3.4",    "1.2.3.4:", "1.2.3.4:65536", "::1:443", "[1.2.3.4]:5", "[::1]443",
        "host:80", "1.2.3.4:-1", "[::1]:5x", "1.2.3.256:1",   ":80",     "[]:80"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(tg_addr_parse_numeric(bad[i], &ss), -EINVAL);
}

/* A packed address formats byte for byte as tg_addr_format formats the address it came from
 * (the peer in every log line, issue 16 d), and unpacks to the same address. */
static void test_addr_packed(void **state)
{
    (void)state;
    const char *addrs[] = {"0.0.0.0:0",
                           "1.2.3.4:5",
                           "10.20.30.40:80",
                           "255.255.255.255:65535",
                           "127.0.0.1:443",
                           "100.9.99.200:1009",
                           "[::]:0",
                           "[::1]:443",
                           "[2001:db8::1]:65535",
                           "[::ffff:192.0.2.1]:8443",
                           "[fe80::1:2:3:4]:1",
                           "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
                           "[2001:db8:0:1:1:1:1:1]:22",
                           "[1:0:0:2::3]:7"};
    for (size_t i = 0; i < sizeof(addrs) / sizeof(addrs[0]); i++) {
        struct sockaddr_storage ss, back;
        struct tg_addr_packed p;
        char want[TG_ADDR_STRLEN], got[TG_ADDR_STRLEN], ip[TG_ADDR_STRLEN];
        assert_int_equal(tg_addr_parse_numeric(addrs[i], &ss), 0);
        tg_addr_format(&ss, want, sizeof(want));
        tg_addr_pack(&ss, &p);
        assert_string_equal(tg_addr_packed_str(&p, got), want);
        assert_string_equal(got, addrs[i]);
        /* the address alone: without the port and the brackets */
        size_t n = tg_addr_packed_ip(&p, ip);
        assert_int_equal(n, strlen(ip));
        const char *colon = strrchr(want, ':');
        size_t skip = want[0] == '[' ? 1 : 0; /* "[" before, "]" after */
        assert_int_equal(n, (size_t)(colon - want) - 2 * skip);
        assert_memory_equal(ip, want + skip, n);
        tg_addr_unpack(&p, &back);
        assert_true(tg_addr_equal(&ss, &back));
    }
    struct sockaddr_storage other = {.ss_family = AF_UNIX};
    struct tg_addr_packed p;
    char want[TG_ADDR_STRLEN], got[TG_ADDR_STRLEN];
    tg_addr_format(&other, want, sizeof(want));
    tg_addr_pack(&other, &p);
    assert_int_equal(p.family, 0);
    assert_string_equal(tg_addr_packed_str(&p, got), want);
    assert_int_equal(tg_addr_packed_ip(&p, got), strlen("unknown"));
    assert_string_equal(got, "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_err_format_and_count), cmocka_unit_test(test_buf_bounds),
        cmocka_unit_test(test_edit_distance),        cmocka_unit_test(test_files),
        cmocka_unit_test(test_addr_parse_numeric),   cmocka_unit_test(test_addr_packed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
