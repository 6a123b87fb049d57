/* Unit tests for net: address helpers and the bind check used before start and reload. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

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

static struct sockaddr_storage v6(const char *ip, uint16_t port)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    inet_pton(AF_INET6, ip, &in6->sin6_addr);
    return ss;
}

static void test_addr_format_equal(void **state)
{
    (void)state;
    char buf[64];
    struct sockaddr_storage a = v4("127.0.0.1", 8443), b = v6("::1", 443);
    tg_addr_format(&a, buf, sizeof(buf));
    assert_string_equal(buf, "127.0.0.1:8443");
    tg_addr_format(&b, buf, sizeof(buf));
    assert_string_equal(buf, "[::1]:443");
    struct sockaddr_storage a2 = v4("127.0.0.1", 8443), a3 = v4("127.0.0.1", 8444);
    assert_true(tg_addr_equal(&a, &a2));
    assert_false(tg_addr_equal(&a, &a3));
    assert_false(tg_addr_equal(&a, &b));
}

/* A port held by a socket without SO_REUSEPORT (another program) must fail the check with the
 * listener's location; a free port must pass. */
static void test_check_bind(void **state)
{
    (void)state;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_storage any = v4("127.0.0.1", 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&any, sizeof(struct sockaddr_in)), 0);
    assert_int_equal(listen(fd, 1), 0);
    struct sockaddr_in bound;
    socklen_t bl = sizeof(bound);
    getsockname(fd, (struct sockaddr *)&bound, &bl);

    struct tg_listener_conf lc;
    memset(&lc, 0, sizeof(lc));
    lc.name = "public";
    lc.path = "/listeners/0";
    lc.address = "127.0.0.1:busy";
    lc.loc = (struct tg_loc){"gw.json", 3, 5};
    memcpy(&lc.addr, &bound, sizeof(bound));
    lc.addr_len = sizeof(bound);
    struct tg_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.listeners = &lc;
    cfg.n_listeners = 1;

    struct tg_err err;
    tg_err_init(&err);
    assert_int_equal(tg_net_check_bind(&cfg, &err), -EADDRINUSE);
    assert_int_equal(tg_err_count(&err), 1);
    char *s = tg_err_format(&err, 0);
    assert_non_null(strstr(s, "gw.json:3:5: /listeners/0: cannot bind 127.0.0.1:busy"));
    free(s);
    tg_err_close(&err);
    close(fd);

    tg_err_init(&err);
    assert_int_equal(tg_net_check_bind(&cfg, &err), 0); /* released: free again */
    assert_int_equal(tg_err_count(&err), 0);
    tg_err_close(&err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_addr_format_equal),
        cmocka_unit_test(test_check_bind),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
