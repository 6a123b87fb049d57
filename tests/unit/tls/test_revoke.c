/* The fetch cache of revocation data (tls/revoke.c) on a fake clock: a failed fetch is logged
 * once and not retried for 30 s, then retried; the cache remembers at most 1024 URLs and drops
 * the least recently used. OCSP stapling (tls/staple.c) likewise retries a failed fetch after
 * 30 s. The fetches go to a loopback server that accepts and closes, so each
 * fails at once and each attempt is counted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "config/config.h"
#include "core/log.h"
#include "tls/internal.h"
#include "tls/tls.h"

static time_t fake_now = 1900000000;
static time_t fake_clock(time_t *out)
{
    if (out != NULL)
        *out = fake_now;
    return fake_now;
}

/* ---- a server that accepts and closes, counting connections ---- */
static int srv_fd = -1;
static int srv_port;
static atomic_int accepts;

static void *srv_loop(void *arg)
{
    (void)arg;
    for (;;) {
        int c = accept(srv_fd, NULL, NULL);
        if (c < 0)
            return NULL;
        atomic_fetch_add(&accepts, 1);
        close(c);
    }
}

static void srv_start(void)
{
    srv_fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(srv_fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    assert_int_equal(bind(srv_fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(srv_fd, 64), 0);
    assert_int_equal(getsockname(srv_fd, (struct sockaddr *)&a, &al), 0);
    srv_port = ntohs(a.sin_port);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, srv_loop, NULL), 0);
    pthread_detach(t);
}

/* ---- certificates with a CRL distribution point ---- */
static EVP_PKEY *key;

static X509 *cert_with_cdp(int n)
{
    X509 *x = X509_new();
    X509_NAME *name = X509_NAME_new();
    char cn[32], uri[96];
    snprintf(cn, sizeof(cn), "client-%d", n);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), n + 1);
    X509_set_subject_name(x, name);
    X509_set_issuer_name(x, name);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key);
    snprintf(uri, sizeof(uri), "URI:http://127.0.0.1:%d/%d.crl", srv_port, n);
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_crl_distribution_points, uri);
    assert_non_null(ext);
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    assert_true(X509_sign(x, key, NULL) > 0);
    X509_NAME_free(name);
    return x;
}

/* The status of x from fetched data; *need as tg_tls__fetched_status leaves it. */
static int status(X509 *x, struct tg_tls_fetch **need, char *note, size_t note_n)
{
    char detail[256] = "";
    if (note_n)
        note[0] = '\0';
    return tg_tls__fetched_status(x, x, detail, sizeof(detail), need, note, note_n);
}

/* ---- the log, captured ---- */
static FILE *logf_;

static int log_count(const char *needle)
{
    fflush(logf_);
    long end = ftell(logf_);
    char *buf = calloc(1, (size_t)end + 1);
    rewind(logf_);
    size_t got = fread(buf, 1, (size_t)end, logf_);
    fseek(logf_, 0, SEEK_END);
    int n = 0;
    for (char *p = buf; got > 0 && (p = strstr(p, needle)) != NULL; p++)
        n++;
    free(buf);
    return n;
}

static int setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN); /* as the gateway does: a fetch may write to a closed socket */
    key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    assert_non_null(key);
    srv_start();
    logf_ = tmpfile();
    tg_log_setup(TG_LOG_INFO, TG_LOG_TEXT, fileno(logf_));
    tg_tls__set_clock(fake_clock);
    return 0;
}

static void test_failed_fetch_retried_after_30s_logged_once(void **state)
{
    (void)state;
    X509 *x = cert_with_cdp(0);
    char note[512], failed[128];
    snprintf(failed, sizeof(failed), "fetching the CRL from http://127.0.0.1:%d/0.crl failed",
             srv_port);
    struct tg_tls_fetch *need;
    time_t t0 = fake_now;

    /* unknown, and a fetch is needed: it fails (the server closes), logged once */
    assert_int_equal(status(x, &need, note, sizeof(note)), -1);
    assert_non_null(need);
    struct tg_tls_fetch *f = need; /* kept, to ask for runs ourselves */
    tg_tls_fetch_run(f);
    assert_int_equal(atomic_load(&accepts), 1);
    assert_int_equal(log_count(failed), 1);

    /* for 30 s: no fetch needed, the note names the failure, a run does not fetch */
    for (time_t dt = 1; dt < 30; dt += 7) {
        fake_now = t0 + dt;
        assert_int_equal(status(x, &need, note, sizeof(note)), -1);
        assert_null(need);
        assert_non_null(strstr(note, failed));
    }
    fake_now = t0 + 29;
    assert_int_equal(status(x, &need, NULL, 0), -1);
    assert_null(need);
    /* a run asked for anyway (say by another handshake) does not fetch within the 30 s */
    tg_tls_fetch_run(f);
    assert_int_equal(atomic_load(&accepts), 1);
    assert_int_equal(log_count(failed), 1);

    /* at 30 s: fetched again, and the new failure logged once more */
    fake_now = t0 + 30;
    assert_int_equal(status(x, &need, note, sizeof(note)), -1);
    assert_non_null(need);
    tg_tls_fetch_run(need);
    tg_tls_fetch_run(need); /* a second run in the new window does not fetch */
    tg_tls_fetch_unref(need);
    assert_int_equal(atomic_load(&accepts), 2);
    assert_int_equal(log_count(failed), 2);
    tg_tls_fetch_unref(f);
    X509_free(x);
}

static void test_at_most_1024_urls_least_recently_used_dropped(void **state)
{
    (void)state;
    fake_now += 1000;
    time_t t0 = fake_now;
    struct tg_tls_fetch *need;
    /* URL 1: fetched, failed: remembered, no fetch needed within 30 s */
    X509 *first = cert_with_cdp(1);
    assert_int_equal(status(first, &need, NULL, 0), -1);
    assert_non_null(need);
    tg_tls_fetch_run(need);
    tg_tls_fetch_unref(need);
    fake_now = t0 + 1;
    assert_int_equal(status(first, &need, NULL, 0), -1);
    assert_null(need);
    /* 1100 more URLs, used later than the first */
    fake_now = t0 + 2;
    for (int i = 2; i < 1102; i++) {
        X509 *x = cert_with_cdp(i);
        (void)status(x, &need, NULL, 0);
        assert_non_null(need);
        tg_tls_fetch_unref(need);
        X509_free(x);
        assert_true(tg_tls__fetch_entries() <= 1024);
    }
    assert_int_equal(tg_tls__fetch_entries(), 1024);
    /* the first was dropped: within its 30 s, a fetch is needed again */
    fake_now = t0 + 3;
    assert_int_equal(status(first, &need, NULL, 0), -1);
    assert_non_null(need);
    tg_tls_fetch_unref(need);
    assert_int_equal(tg_tls__fetch_entries(), 1024);
    X509_free(first);
}

/* A CA and a leaf it issued that names the counting server as its OCSP responder. */
static void stapled_pair(X509 **ca_out, X509 **leaf_out)
{
    X509 *ca = X509_new(), *leaf = X509_new();
    X509_NAME *cn = X509_NAME_new(), *ln = X509_NAME_new();
    X509_NAME_add_entry_by_txt(cn, "CN", MBSTRING_ASC, (const unsigned char *)"staple CA", -1, -1,
                               0);
    X509_NAME_add_entry_by_txt(ln, "CN", MBSTRING_ASC, (const unsigned char *)"stapled", -1, -1, 0);
    X509 *xs[2] = {ca, leaf};
    for (int i = 0; i < 2; i++) {
        X509_set_version(xs[i], 2);
        ASN1_INTEGER_set(X509_get_serialNumber(xs[i]), 100 + i);
        X509_set_issuer_name(xs[i], cn);
        X509_set_subject_name(xs[i], i == 0 ? cn : ln);
        X509_gmtime_adj(X509_getm_notBefore(xs[i]), 0);
        X509_gmtime_adj(X509_getm_notAfter(xs[i]), 3600);
        X509_set_pubkey(xs[i], key);
        char aia[96];
        snprintf(aia, sizeof(aia), "OCSP;URI:http://127.0.0.1:%d/", srv_port);
        X509V3_CTX ctx;
        X509V3_set_ctx_nodb(&ctx);
        X509V3_set_ctx(&ctx, ca, xs[i], NULL, NULL, 0);
        X509_EXTENSION *ext =
            i == 0 ? X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints, "critical,CA:TRUE")
                   : X509V3_EXT_conf_nid(NULL, &ctx, NID_info_access, aia);
        assert_non_null(ext);
        X509_add_ext(xs[i], ext, -1);
        X509_EXTENSION_free(ext);
        assert_true(X509_sign(xs[i], key, NULL) > 0);
    }
    X509_NAME_free(cn);
    X509_NAME_free(ln);
    *ca_out = ca;
    *leaf_out = leaf;
}

static void test_staple_fetch_retried_after_30s(void **state)
{
    (void)state;
    fake_now += 1000;
    time_t t0 = fake_now;
    X509 *ca, *leaf;
    stapled_pair(&ca, &leaf);
    STACK_OF(X509) *chain = sk_X509_new_null();
    sk_X509_push(chain, ca);
    struct tg_ocsp_conf oc = {.mode = TG_OCSP_FETCH};
    struct tg_tls__staple *st = tg_tls__staple_get(&oc, leaf, chain);
    char why[256];
    assert_true(tg_tls__staple_usable(st, why, sizeof(why)));
    int before = atomic_load(&accepts);
    const char *logged = "OCSP staple for /CN=stapled: fetching from";

    assert_true(tg_tls_staples_due());
    tg_tls_staples_refresh(false);
    assert_int_equal(atomic_load(&accepts), before + 1);
    assert_int_equal(log_count(logged), 1);
    assert_int_equal(log_count("(tried again in 30 s)"), 1);
    for (time_t dt = 1; dt < 30; dt += 4) {
        fake_now = t0 + dt;
        assert_false(tg_tls_staples_due());
        tg_tls_staples_refresh(false);
    }
    assert_int_equal(atomic_load(&accepts), before + 1);
    fake_now = t0 + 30;
    assert_true(tg_tls_staples_due());
    tg_tls_staples_refresh(false);
    assert_int_equal(atomic_load(&accepts), before + 2);
    assert_int_equal(log_count(logged), 2);
    assert_false(tg_tls_staples_due());

    tg_tls__staple_unref(st);
    sk_X509_pop_free(chain, X509_free);
    X509_free(leaf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_failed_fetch_retried_after_30s_logged_once),
        cmocka_unit_test(test_at_most_1024_urls_least_recently_used_dropped),
        cmocka_unit_test(test_staple_fetch_retried_after_30s),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
