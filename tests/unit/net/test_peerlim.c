/* Unit tests for the per-address limits (net/peerlim.c): exact connection counts per address
 * (many addresses, none refused for another's connections), IPv6 per /64, release, the GCRA
 * bucket, and the refusal counters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "net/internal.h"

struct fixture {
    struct tg_config cfg;
    struct tg_listener_conf lc;
    struct tg_snapshot snap;
    struct tg_tls_server *tls[1];
    struct tg_net net;
    struct tg_worker w;
};

static struct fixture *fixture_new(uint32_t max_per_ip, double rate, uint32_t burst, bool tls)
{
    struct fixture *f = calloc(1, sizeof(*f));
    f->lc.name = "t";
    f->cfg.listeners = &f->lc;
    f->cfg.n_listeners = 1;
    f->cfg.limits.max_connections_per_ip = max_per_ip;
    f->cfg.limits.handshake_rate_per_ip = rate;
    f->cfg.limits.handshake_burst_per_ip = burst;
    f->tls[0] = tls ? (struct tg_tls_server *)f : NULL; /* only compared with NULL */
    f->snap.cfg = &f->cfg;
    f->snap.tls = f->tls;
    f->net.peers = tg_net__peers_new(20000);
    f->w.net = &f->net;
    f->w.snap = &f->snap;
    return f;
}

static void fixture_free(struct fixture *f)
{
    tg_net__peers_free(f->net.peers);
    free(f);
}

static struct sockaddr_storage v4n(uint32_t ip)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    in->sin_family = AF_INET;
    in->sin_addr.s_addr = htonl(ip);
    in->sin_port = htons(40000);
    return ss;
}

static struct sockaddr_storage v6(const char *ip)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    in6->sin6_family = AF_INET6;
    inet_pton(AF_INET6, ip, &in6->sin6_addr);
    return ss;
}

static uint64_t refused(const struct fixture *f, enum tg_net_refuse r)
{
    return TG_STAT_GET(&f->w.stats, refused[r]);
}

/* 15,000 addresses each at their limit of 3 (45,000 connections, more than the table was sized
 * for): every one of them gets exactly 3, none is refused for another's connections, and a 4th
 * is refused for each. */
static void test_exact_counts_for_many_addresses(void **state)
{
    (void)state;
    enum { N = 15000, MAX = 3 };
    struct fixture *f = fixture_new(MAX, 0, 0, true);
    uint64_t *holds = calloc((size_t)N * MAX, sizeof(*holds));
    for (uint32_t a = 0; a < N; a++) {
        struct sockaddr_storage ss = v4n(0x0a000000u + a * 7919u);
        for (int k = 0; k < MAX; k++) {
            assert_true(tg_net__peer_admit(&f->w, 0, &ss, &holds[a * MAX + k]));
            assert_int_not_equal(holds[a * MAX + k], 0);
        }
    }
    assert_int_equal(refused(f, TG_NET_REFUSE_PER_IP_CONNECTIONS), 0);
    for (uint32_t a = 0; a < N; a++) {
        struct sockaddr_storage ss = v4n(0x0a000000u + a * 7919u);
        uint64_t h = 0;
        assert_false(tg_net__peer_admit(&f->w, 0, &ss, &h));
        assert_int_equal(h, 0);
    }
    assert_int_equal(refused(f, TG_NET_REFUSE_PER_IP_CONNECTIONS), N);
    /* Closing one connection of an address makes room for exactly one. */
    struct sockaddr_storage ss = v4n(0x0a000000u + 5u * 7919u);
    tg_net__peer_release(&f->net, holds[5 * MAX + 1]);
    uint64_t h = 0;
    assert_true(tg_net__peer_admit(&f->w, 0, &ss, &h));
    assert_false(tg_net__peer_admit(&f->w, 0, &ss, &holds[5 * MAX + 1]));
    tg_net__peer_release(&f->net, h);
    for (size_t i = 0; i < (size_t)N * MAX; i++)
        if (i != 5 * MAX + 1)
            tg_net__peer_release(&f->net, holds[i]);
    /* Every slot is free again: the same addresses start from 0. */
    for (uint32_t a = 0; a < N; a += 97) {
        struct sockaddr_storage s2 = v4n(0x0a000000u + a * 7919u);
        for (int k = 0; k < MAX; k++) {
            assert_true(tg_net__peer_admit(&f->w, 0, &s2, &h));
            tg_net__peer_release(&f->net, h);
        }
    }
    free(holds);
    fixture_free(f);
}

static void test_ipv6_counts_per_64_and_mapped_ipv4_as_ipv4(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(2, 0, 0, true);
    uint64_t h[6];
    struct sockaddr_storage a = v6("2001:db8:0:7::1"), b = v6("2001:db8:0:7:ffff::2"),
                            c = v6("2001:db8:0:7::3"), d = v6("2001:db8:0:8::1");
    assert_true(tg_net__peer_admit(&f->w, 0, &a, &h[0]));
    assert_true(tg_net__peer_admit(&f->w, 0, &b, &h[1]));
    assert_false(tg_net__peer_admit(&f->w, 0, &c, &h[2]));
    assert_true(tg_net__peer_admit(&f->w, 0, &d, &h[2]));
    struct sockaddr_storage v4 = v4n(0xcb007105u), mapped = v6("::ffff:203.0.113.5");
    assert_true(tg_net__peer_admit(&f->w, 0, &v4, &h[3]));
    assert_true(tg_net__peer_admit(&f->w, 0, &mapped, &h[4]));
    assert_false(tg_net__peer_admit(&f->w, 0, &v4, &h[5]));
    assert_int_equal(refused(f, TG_NET_REFUSE_PER_IP_CONNECTIONS), 2);
    for (int i = 0; i < 5; i++)
        tg_net__peer_release(&f->net, h[i]);
    fixture_free(f);
}

/* A burst of 4 at 1 per second: 4 admitted at once, the 5th refused; plaintext listeners are not
 * rate limited; a refused connection is not counted as open. */
static void test_handshake_bucket(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(0, 1, 4, true);
    struct sockaddr_storage ss = v4n(0xc0000201u);
    uint64_t h;
    for (int i = 0; i < 4; i++) {
        assert_true(tg_net__peer_admit(&f->w, 0, &ss, &h));
        tg_net__peer_release(&f->net, h);
    }
    assert_false(tg_net__peer_admit(&f->w, 0, &ss, &h));
    assert_int_equal(h, 0);
    assert_int_equal(refused(f, TG_NET_REFUSE_PER_IP_HANDSHAKE_RATE), 1);
    /* Another address has its own bucket. */
    struct sockaddr_storage other = v4n(0xc0000202u);
    assert_true(tg_net__peer_admit(&f->w, 0, &other, &h));
    tg_net__peer_release(&f->net, h);
    f->tls[0] = NULL;
    for (int i = 0; i < 10; i++) {
        assert_true(tg_net__peer_admit(&f->w, 0, &ss, &h));
        tg_net__peer_release(&f->net, h);
    }
    fixture_free(f);
}

static void test_refusal_table(void **state)
{
    (void)state;
    assert_string_equal(tg_net_refuse_info(TG_NET_REFUSE_PER_IP_CONNECTIONS)->token,
                        "per_ip_connection_limit");
    assert_string_equal(tg_net_refuse_info(TG_NET_REFUSE_PER_IP_HANDSHAKE_RATE)->config_key,
                        "limits.handshake_rate_per_ip");
    assert_string_equal(tg_net_refuse_info(TG_NET_REFUSE__COUNT)->token, "none");
}

int main(void)
{
    tg_log_set_level(TG_LOG_ERROR); /* the refusal lines are info */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_counts_for_many_addresses),
        cmocka_unit_test(test_ipv6_counts_per_64_and_mapped_ipv4_as_ipv4),
        cmocka_unit_test(test_handshake_bucket),
        cmocka_unit_test(test_refusal_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
