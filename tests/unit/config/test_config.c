/* Unit tests for config loading: schema, defaults, positions of errors, secrets, TLS policy. */
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/ssl.h>

#include "config/config.h"
#include "core/log.h"

#define DATA TG_TEST_DATA "/config"

/* A valid config around a replaceable "tls" object and extra top-level text. */
#define HEAD                                                                                       \
    "{\n"                                                                                          \
    "  \"version\": 1,\n"                                                                          \
    "  \"keystores\": {\"web\": {\"type\": \"pem\", \"cert\": \"web.crt\", \"key\": "              \
    "\"web.key\"}},\n"                                                                             \
    "  \"backends\": {\"app\": {\"builtin\": \"status\"}},\n"

static char *errs_text(const struct tg_err *err)
{
    size_t cap = 1, n = 0;
    char *all = calloc(1, 1);
    for (size_t i = 0; i < err->n; i++) {
        char *s = tg_err_format(err, i);
        cap = n + strlen(s) + 2;
        all = realloc(all, cap);
        memcpy(all + n, s, strlen(s));
        n += strlen(s);
        all[n++] = '\n';
        all[n] = '\0';
        free(s);
    }
    return all;
}

static int load(const char *json, struct tg_config **cfg, struct tg_err *err)
{
    *cfg = NULL;
    tg_err_init(err);
    return tg_config_load_string(json, strlen(json), "cfg.json", DATA, cfg, err);
}

/* True when some entry, formatted, contains needle. */
static bool has(const struct tg_err *err, const char *needle)
{
    char *all = errs_text(err);
    bool found = strstr(all, needle) != NULL;
    if (!found)
        fprintf(stderr, "missing \"%s\" in:\n%s", needle, all);
    free(all);
    return found;
}

/* True when no entry contains needle. */
static bool lacks(const struct tg_err *err, const char *needle)
{
    char *all = errs_text(err);
    bool found = strstr(all, needle) != NULL;
    free(all);
    return !found;
}

static void expect_ok(const char *json, struct tg_config **cfg, struct tg_err *err)
{
    int rc = load(json, cfg, err);
    if (rc != 0)
        tg_err_print(err, stderr);
    assert_int_equal(rc, 0);
    assert_non_null(*cfg);
}

static void expect_fail(const char *json, struct tg_err *err)
{
    struct tg_config *cfg = NULL;
    assert_int_equal(load(json, &cfg, err), -EINVAL);
    assert_null(cfg);
    assert_true(tg_err_count(err) > 0);
}

static char *listener_cfg(const char *tls)
{
    char *s = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&s, &len);
    fprintf(f,
            HEAD "  \"listeners\": [{\"name\": \"a\", \"address\": \"127.0.0.1:8443\",\n"
                 "    \"routes\": [{\"backend\": \"app\"}],\n"
                 "    \"tls\": %s}]\n}\n",
            tls);
    fclose(f);
    return s;
}

static void test_defaults(void **state)
{
    struct tg_config *cfg;
    struct tg_err err;
    char *json = listener_cfg("{\"certificates\": [\"web\"]}");

    unsetenv("TLSGATE_STATE_DIR");
    expect_ok(json, &cfg, &err);
    assert_int_equal(cfg->version, 1);
    assert_true(cfg->workers >= 1 && cfg->workers <= 256);
    assert_int_equal(cfg->log.level, TG_LOG_INFO);
    assert_int_equal(cfg->log.format, TG_LOGFMT_TEXT);
    assert_null(cfg->log.access_log);
    assert_true(cfg->state_dir[0] == '/');
    assert_non_null(strstr(cfg->state_dir, "/tlsgate-state"));
    assert_int_equal(cfg->timeouts.handshake_ms, 10000);
    assert_int_equal(cfg->timeouts.request_headers_ms, 10000);
    assert_int_equal(cfg->timeouts.idle_ms, 60000);
    assert_int_equal(cfg->timeouts.backend_connect_ms, 5000);
    assert_int_equal(cfg->timeouts.backend_response_ms, 60000);
    assert_int_equal(cfg->timeouts.shutdown_ms, 30000);
    assert_int_equal(cfg->limits.max_connections, 0);
    assert_int_equal(cfg->limits.max_header_bytes, 32768);
    assert_int_equal(cfg->limits.max_headers, 100);
    assert_int_equal(cfg->n_keystores, 1);
    assert_string_equal(cfg->keystores[0].cert_file, DATA "/web.crt");
    assert_string_equal(cfg->keystores[0].key_file, DATA "/web.key");
    assert_null(cfg->keystores[0].key_password);
    assert_string_equal(cfg->keystores[0].path, "/keystores/web");
    assert_int_equal(cfg->keystores[0].loc.line, 3);
    assert_int_equal(cfg->n_listeners, 1);
    const struct tg_listener_conf *l = &cfg->listeners[0];
    assert_string_equal(l->name, "a");
    assert_string_equal(l->path, "/listeners/0");
    assert_int_equal(l->addr.ss_family, AF_INET);
    assert_int_equal(ntohs(((const struct sockaddr_in *)&l->addr)->sin_port), 8443);
    assert_int_equal(l->addr_len, sizeof(struct sockaddr_in));
    assert_int_equal(l->mode, TG_MODE_HTTP);
    assert_false(l->proxy_protocol);
    assert_int_equal(l->n_routes, 1);
    assert_null(l->routes[0].host);
    assert_string_equal(l->routes[0].path_prefix, "/");
    assert_int_equal(l->routes[0].backend_idx, 0);
    const struct tg_tls_conf *t = &l->tls;
    assert_string_equal(t->path, "/listeners/0/tls");
    assert_int_equal(t->loc.line, 7);
    assert_false(t->disabled);
    assert_int_equal(t->n_certificates, 1);
    assert_int_equal(t->certificate_idx[0], 0);
    assert_int_equal(t->certificate_locs[0].line, 7);
    assert_string_equal(t->certificate_locs[0].file, "cfg.json");
    assert_int_equal(t->min_version, TLS1_3_VERSION);
    assert_int_equal(t->max_version, TLS1_3_VERSION);
    assert_string_equal(
        t->ciphersuites,
        "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256");
    assert_non_null(strstr(t->cipher_list, "ECDHE-RSA-AES128-GCM-SHA256"));
    assert_false(t->cipher_string);
    assert_false(t->legacy);
    assert_null(t->curves);
    assert_int_equal(t->n_alpn, 2);
    assert_string_equal(t->alpn[0], "h2");
    assert_string_equal(t->alpn[1], "http/1.1");
    assert_true(t->session_resumption);
    assert_int_equal(err.n, 0);
    assert_ptr_equal(tg_config_keystore(cfg, "web"), &cfg->keystores[0]);
    assert_null(tg_config_keystore(cfg, "nope"));
    assert_ptr_equal(tg_config_backend(cfg, "app"), &cfg->backends[0]);
    assert_int_equal(cfg->backends[0].kind, TG_BACKEND_STATUS);
    tg_config_free(cfg);
    tg_err_close(&err);
    free(json);
}

static void test_bad_min_version_position(void **state)
{
    struct tg_err err;
    const char *json = "{\"version\": 1,\n"
                       " \"keystores\": {\"web\": {\"cert\": \"web.crt\", \"key\": \"web.key\"}},\n"
                       " \"backends\": {\"app\": {\"builtin\": \"status\"}},\n"
                       " \"listeners\": [{\"name\": \"a\", \"address\": \"127.0.0.1:8443\",\n"
                       "   \"routes\": [{\"backend\": \"app\"}], \"tls\": {\n"
                       "      \"certificates\": [\"web\"],\n"
                       "      \"min_version\":  \"TLS1.4\"}}]}\n"; /* line 7, column 23 */
    expect_fail(json, &err);
    assert_int_equal(err.n, 1);
    char *s = tg_err_format(&err, 0);
    assert_string_equal(s, "cfg.json:7:23: /listeners/0/tls/min_version: \"TLS1.4\" is not a TLS "
                           "version (allowed: TLS1.0 to TLS1.3)");
    free(s);
    tg_err_close(&err);
}

static void test_multiple_errors_sorted(void **state)
{
    struct tg_err err;
    const char *json = "{\"version\": 2,\n"
                       " \"workers\": 0,\n"
                       " \"log\": {\"level\": \"loud\", \"format\": \"xml\"},\n"
                       " \"timeouts\": {\"idle\": 0, \"handshake\": 0.25},\n"
                       " \"limits\": {\"max_header_bytes\": 10},\n"
                       " \"listeners\": []}\n";
    expect_fail(json, &err);
    assert_int_equal(tg_err_count(&err), 7);
    assert_true(has(&err, "cfg.json:1:13: /version: schema version 2 is not supported"));
    assert_true(
        has(&err, "cfg.json:2:13: /workers: 0 is out of range (allowed: \"auto\" or 1..256)"));
    assert_true(has(&err, "cfg.json:3:19: /log/level: \"loud\" is not a log level (allowed: error, "
                          "warn, info, debug)"));
    assert_true(has(&err, "/log/format: \"xml\" is not a log format (allowed: text, json)"));
    assert_true(has(&err, "/timeouts/idle: 0 is out of range (allowed: more than 0, at most 86400 "
                          "seconds)"));
    assert_true(has(&err, "/limits/max_header_bytes: 10 is out of range (allowed: 1024..1048576)"));
    assert_true(has(&err, "cfg.json:6:15: /listeners: must list at least one listener"));
    for (size_t i = 1; i < err.n; i++)
        assert_true(err.v[i - 1].line <= err.v[i].line);
    tg_err_close(&err);
}

static void test_unknown_keys(void **state)
{
    struct tg_err err;
    char *json = listener_cfg("{\"certificates\": [\"web\"],\n"
                              "            \"min_verison\": \"TLS1.2\", \"zzzzzz\": 1}");
    expect_fail(json, &err);
    assert_int_equal(tg_err_count(&err), 2);
    assert_true(has(&err,
                    "cfg.json:8:13: /listeners/0/tls/min_verison: unknown key \"min_verison\" "
                    "(did you mean \"min_version\"?)"));
    assert_true(has(&err, "/listeners/0/tls/zzzzzz: unknown key \"zzzzzz\" (allowed: disabled, "
                          "certificates, min_version, max_version, cipher_suites, curves, alpn, "
                          "session_resumption, client_auth, ocsp_stapling, early_data)"));
    tg_err_close(&err);
    free(json);
}

static void test_missing_file(void **state)
{
    struct tg_err err;
    const char *json = "{\"version\": 1,\n"
                       " \"keystores\": {\"web\": {\"cert\": \"web.crt\",\n"
                       "                         \"key\": \"x.key\"}},\n"
                       " \"listeners\": [{\"name\": \"a\", \"address\": \"127.0.0.1:1\", \"tls\": "
                       "{\"disabled\": true}, \"routes\": [{\"backend\": \"b\"}]}],\n"
                       " \"backends\": {\"b\": {\"targets\": [\"127.0.0.1:80\"]}}}\n";
    expect_fail(json, &err);
    assert_int_equal(err.n, 1);
    char *s = tg_err_format(&err, 0);
    assert_string_equal(s, "cfg.json:3:33: /keystores/web/key: cannot read \"x.key\": No such "
                           "file or directory");
    free(s);
    tg_err_close(&err);
}

static void test_duplicate_listeners(void **state)
{
    struct tg_err err;
    const char *json = HEAD
        "  \"listeners\": [\n"
        "    {\"name\": \"a\", \"address\": \"127.0.0.1:8443\", \"tls\": {\"disabled\": true}, "
        "\"routes\": [{\"backend\": \"app\"}]},\n"
        "    {\"name\": \"a\", \"address\": \"127.0.0.1:8443\", \"tls\": {\"disabled\": true}, "
        "\"routes\": [{\"backend\": \"app\"}]},\n"
        "    {\"name\": \"bad name\", \"address\": \"[::1]:8443\", \"tls\": {\"disabled\": "
        "true}, \"routes\": [{\"backend\": \"app\"}]},\n"
        "    {\"name\": \"c\", \"address\": \"::1:8443\", \"tls\": {\"disabled\": "
        "true}, \"routes\": [{\"backend\": \"app\"}]}\n"
        "  ]\n}\n";
    expect_fail(json, &err);
    assert_int_equal(tg_err_count(&err), 4);
    assert_true(has(&err,
                    "cfg.json:7:14: /listeners/1/name: listener name \"a\" is already used by "
                    "/listeners/0"));
    assert_true(has(&err, "cfg.json:7:30: /listeners/1/address: address \"127.0.0.1:8443\" is "
                          "already used by listener \"a\" (/listeners/0)"));
    assert_true(has(&err, "/listeners/2/name: \"bad name\" is not a listener name"));
    assert_true(has(&err, "/listeners/3/address: \"::1:8443\" is not a listen address: IPv6 "
                          "addresses need brackets"));
    tg_err_close(&err);
}

static void test_route_unknown_backend(void **state)
{
    struct tg_err err;
    const char *json =
        HEAD "  \"listeners\": [{\"name\": \"a\", \"address\": \"127.0.0.1:8443\",\n"
             "    \"tls\": {\"disabled\": true},\n"
             "    \"routes\": [{\"host\": \"*.example.com\", \"backend\": \"apq\"},\n"
             "               {\"path_prefix\": \"v1\", \"backend\": \"nothere\"}]}]\n}\n";
    expect_fail(json, &err);
    assert_int_equal(tg_err_count(&err), 3);
    assert_true(has(&err, "cfg.json:7:53: /listeners/0/routes/0/backend: backend \"apq\" is not "
                          "defined (did you mean \"app\"?)"));
    assert_true(has(&err, "/listeners/0/routes/1/path_prefix: \"v1\" must start with \"/\""));
    assert_true(has(&err, "/listeners/0/routes/1/backend: backend \"nothere\" is not defined in "
                          "\"backends\""));
    tg_err_close(&err);
}

static void test_routes_and_backends(void **state)
{
    struct tg_config *cfg;
    struct tg_err err;
    const char *json =
        "{\"version\": 1, \"workers\": 3, \"state_dir\": \"st\",\n"
        " \"log\": {\"level\": \"debug\", \"format\": \"json\", \"access_log\": \"logs/a.log\"},\n"
        " \"timeouts\": {\"idle\": 0.5, \"shutdown\": 86400},\n"
        " \"limits\": {\"max_connections\": 1000, \"max_headers\": 1},\n"
        " \"backends\": {\"web\": {\"targets\": [\"127.0.0.1:8080\", \"[::1]:9000\"]},\n"
        "              \"st\": {\"builtin\": \"status\"}},\n"
        " \"listeners\": [{\"name\": \"x.y-z_1\", \"address\": \"[::1]:8443\", \"tls\": "
        "{\"disabled\": true}, \"routes\": [{\"host\": \"API.Example.com\", \"path_prefix\": "
        "\"/v1/\","
        " \"backend\": \"st\"}, {\"backend\": \"web\"}]}]}\n";
    expect_ok(json, &cfg, &err);
    assert_int_equal(cfg->workers, 3);
    assert_string_equal(cfg->state_dir, DATA "/st");
    assert_int_equal(cfg->log.level, TG_LOG_DEBUG);
    assert_int_equal(cfg->log.format, TG_LOGFMT_JSON);
    assert_string_equal(cfg->log.access_log, DATA "/logs/a.log");
    assert_int_equal(cfg->timeouts.idle_ms, 500);
    assert_int_equal(cfg->timeouts.shutdown_ms, 86400000);
    assert_int_equal(cfg->limits.max_connections, 1000);
    assert_int_equal(cfg->limits.max_headers, 1);
    assert_int_equal(cfg->n_backends, 2);
    assert_int_equal(cfg->backends[0].kind, TG_BACKEND_HTTP);
    assert_int_equal(cfg->backends[0].n_targets, 2);
    assert_string_equal(cfg->backends[0].targets[1].host, "::1");
    assert_int_equal(cfg->backends[0].targets[1].port, 9000);
    assert_int_equal(cfg->backends[0].targets[1].addr.ss_family, AF_INET6);
    assert_int_equal(cfg->backends[0].targets[0].addr.ss_family, AF_INET);
    const struct tg_listener_conf *l = &cfg->listeners[0];
    assert_int_equal(l->addr.ss_family, AF_INET6);
    assert_true(l->tls.disabled);
    assert_string_equal(l->routes[0].host, "api.example.com");
    assert_string_equal(l->routes[0].path_prefix, "/v1/");
    assert_int_equal(l->routes[0].backend_idx, 1);
    assert_int_equal(l->routes[1].backend_idx, 0);
    tg_config_free(cfg);
    tg_err_close(&err);

    setenv("TLSGATE_STATE_DIR", "/var/lib/tg-test", 1);
    expect_ok("{\"version\": 1, \"workers\": \"auto\", \"listeners\": [{\"name\": \"a\", "
              "\"address\": \"localhost:1\", \"tls\": {\"disabled\": true}, \"routes\": "
              "[{\"backend\": \"s\"}]}], \"backends\": {\"s\": {\"builtin\": \"status\"}}}",
              &cfg, &err);
    assert_string_equal(cfg->state_dir, "/var/lib/tg-test");
    unsetenv("TLSGATE_STATE_DIR");
    tg_config_free(cfg);
    tg_err_close(&err);
}

/* A valid config with extra top-level members (JSON text ending in a comma) on line 5. */
static char *extra_cfg(const char *extra)
{
    char *s = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&s, &len);
    fprintf(f,
            HEAD "%s\n"
                 "  \"listeners\": [{\"name\": \"a\", \"address\": \"127.0.0.1:8443\",\n"
                 "    \"routes\": [{\"backend\": \"app\"}], \"tls\": {\"disabled\": true}}]\n}\n",
            extra);
    fclose(f);
    return s;
}

static void test_request_body_timeout(void **state)
{
    struct tg_config *cfg;
    struct tg_err err;
    char *json = extra_cfg("");

    expect_ok(json, &cfg, &err);
    assert_int_equal(cfg->timeouts.request_body_ms, 0); /* no total limit by default */
    tg_config_free(cfg);
    tg_err_close(&err);
    free(json);

    json = extra_cfg("  \"timeouts\": {\"request_body\": 2.5},");
    expect_ok(json, &cfg, &err);
    assert_int_equal(cfg->timeouts.request_body_ms, 2500);
    assert_int_equal(cfg->timeouts.idle_ms, 60000);
    tg_config_free(cfg);
    tg_err_close(&err);
    free(json);

    json = extra_cfg("  \"timeouts\": {\"request_body\": 0, \"idle\": 0.0001},");
    expect_ok(json, &cfg, &err);
    assert_int_equal(cfg->timeouts.request_body_ms, 0);
    assert_int_equal(cfg->timeouts.idle_ms, 1);
    tg_config_free(cfg);
    tg_err_close(&err);
    free(json);

    json = extra_cfg("  \"timeouts\": {\"request_body\": -1, \"idle\": 0},");
    expect_fail(json, &err);
    assert_int_equal(tg_err_count(&err), 2);
    assert_true(has(&err, "cfg.json:5:32: /timeouts/request_body: -1 is out of range (allowed: 0 "
                          "(no limit) to 86400 seconds)"));
    assert_true(has(&err, "/timeouts/idle: 0 is out of range (allowed: more than 0"));
    tg_err_close(&err);
    free(json);

    json = extra_cfg("  \"timeouts\": {\"request_body\": \"1s\"},");
    expect_fail(json, &err);
    assert_true(has(&err, "/timeouts/request_body: must be a number of seconds (got a string)"));
    tg_err_close(&err);
    free(json);
}

static void test_min_body_rate(void **state)
{
    struct tg_config *cfg;
    struct tg_err err;
    char *json = extra_cfg("");

    expect_ok(json, &cfg, &err);
    assert_int_equal(cfg->limits.min_body_rate, 500);
    assert_int_equal(cfg->limits.min_body_rate_grace_ms, 10000);
    tg_config_free(cfg);
    tg_err_close(&err);
    free(json);

    json = extra_cfg("  \"limits\": {\"min_body_rate\": 1000, \"min_body_rate_grace\": 0.25},");
    expect_ok(json, &cfg, &err);
    assert_int_equal(cfg->limits.min_body_rate, 1000);
    assert_int_equal(cfg->limits.min_body_rate_grace_ms, 250);
    assert_int_equal(cfg->limits.max_headers, 100);
    tg_config_free(cfg);
    tg_err_close(&err);
    free(json);

    json = extra_cfg("  \"limits\": {\"min_body_rate\": 0, \"min_body_rate_grace\": 0},");
    expect_ok(json, &cfg, &err);
    assert_int_equal(cfg->limits.min_body_rate, 0);
    assert_int_equal(cfg->limits.min_body_rate_grace_ms, 0);
    tg_config_free(cfg);
    tg_err_close(&err);
    free(json);

    json = extra_cfg("  \"limits\": {\"min_body_rate\": -5, \"min_body_rate_grace\": 86401},");
    expect_fail(json, &err);
    assert_int_equal(tg_err_count(&err), 2);
    assert_true(has(&err, "cfg.json:5:31: /limits/min_body_rate: -5 is out of range (allowed: "
                          "0..1073741824 (0 = off))"));
    assert_true(has(&err, "cfg.json:5:58: /limits/min_body_rate_grace: 86401 is out of range "
                          "(allowed: 0..86400 seconds)"));
    tg_err_close(&err);
    free(json);

    json = extra_cfg("  \"limits\": {\"min_body_rate\": 1.5, \"min_body_rate_grce\": 1},");
    expect_fail(json, &err);
    assert_true(has(&err, "/limits/min_body_rate: must be an integer (bytes per second) (got a "
                          "number)"));
    assert_true(has(&err, "(did you mean \"min_body_rate_grace\"?)"));
    tg_err_close(&err);
    free(json);
}

static void test_http_underscores(void **state)
{
    static const struct {
        const char *value;
        enum tg_underscores want;
    } ok[] = {{"drop", TG_US_DROP}, {"reject", TG_US_REJECT}, {"pass", TG_US_PASS}};
    struct tg_config *cfg;
    struct tg_err err;
    char *json = extra_cfg("");

    expect_ok(json, &cfg, &err);
    assert_int_equal(cfg->http.underscores, TG_US_DROP);
    tg_config_free(cfg);
    tg_err_close(&err);
    free(json);

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        char extra[128];
        snprintf(extra, sizeof(extra), "  \"http\": {\"underscores_in_headers\": \"%s\"},",
                 ok[i].value);
        json = extra_cfg(extra);
        expect_ok(json, &cfg, &err);
        assert_int_equal(cfg->http.underscores, ok[i].want);
        tg_config_free(cfg);
        tg_err_close(&err);
        free(json);
    }

    json = extra_cfg("  \"http\": {\"underscores_in_headers\": \"allow\"},");
    expect_fail(json, &err);
    assert_int_equal(tg_err_count(&err), 1);
    assert_true(has(&err, "cfg.json:5:38: /http/underscores_in_headers: \"allow\" is not an "
                          "underscores_in_headers policy (allowed: drop, reject, pass)"));
    tg_err_close(&err);
    free(json);

    json = extra_cfg("  \"http\": {\"underscores_in_headers\": true, \"max_body\": 1},");
    expect_fail(json, &err);
    assert_int_equal(tg_err_count(&err), 2);
    assert_true(has(&err, "/http/underscores_in_headers: must be a string (got a boolean)"));
    assert_true(has(&err, "/http/max_body: unknown key \"max_body\" (allowed: "
                          "underscores_in_headers)"));
    tg_err_close(&err);
    free(json);

    json = extra_cfg("  \"http\": [],");
    expect_fail(json, &err);
    assert_true(has(&err, "/http: must be an object (got a list)"));
    tg_err_close(&err);
    free(json);
}

static void test_http2(void **state)
{
    struct tg_config *cfg;
    struct tg_err err;
    char *json = extra_cfg("  \"limits\": {\"max_header_bytes\": 4096},");

    (void)state;
    expect_ok(json, &cfg, &err);
    assert_int_equal(cfg->http2.max_concurrent_streams, 128);
    assert_int_equal(cfg->http2.max_header_list_size, 4096); /* limits.max_header_bytes */
    assert_int_equal(cfg->http2.initial_window_size, 65535);
    assert_int_equal(cfg->http2.max_frame_size, 16384);
    assert_false(cfg->http2.cleartext);
    tg_config_free(cfg);
    tg_err_close(&err);
    free(json);

    json = extra_cfg("  \"http2\": {\"max_concurrent_streams\": 16, \"max_header_list_size\": "
                     "2048,\n    \"initial_window_size\": 1024, \"max_frame_size\": 16777215, "
                     "\"cleartext\": true},");
    expect_ok(json, &cfg, &err);
    assert_int_equal(cfg->http2.max_concurrent_streams, 16);
    assert_int_equal(cfg->http2.max_header_list_size, 2048);
    assert_int_equal(cfg->http2.initial_window_size, 1024);
    assert_int_equal(cfg->http2.max_frame_size, 16777215);
    assert_true(cfg->http2.cleartext);
    tg_config_free(cfg);
    tg_err_close(&err);
    free(json);

    json = extra_cfg("  \"http2\": {\"max_concurrent_streams\": 0, \"initial_window_size\": "
                     "65536,\n    \"max_frame_size\": 1000, \"cleartext\": \"yes\", "
                     "\"max_streams\": 1},");
    expect_fail(json, &err);
    assert_int_equal(tg_err_count(&err), 5);
    assert_true(has(&err, "cfg.json:5:39: /http2/max_concurrent_streams: 0 is out of range "
                          "(allowed: 1..10000)"));
    assert_true(has(&err, "cfg.json:5:65: /http2/initial_window_size: 65536 is out of range "
                          "(allowed: 1024..65535)"));
    assert_true(has(&err, "cfg.json:6:23: /http2/max_frame_size: 1000 is out of range (allowed: "
                          "16384..16777215)"));
    assert_true(has(&err, "/http2/cleartext: must be true or false (got a string)"));
    assert_true(has(&err, "/http2/max_streams: unknown key \"max_streams\""));
    tg_err_close(&err);
    free(json);
}

static void test_passwords(void **state)
{
    struct tg_config *cfg;
    struct tg_err err;
#define PWCFG(pw, extra)                                                                           \
    "{\"version\": 1, \"backends\": {\"app\": {\"builtin\": \"status\"}},\n"                       \
    " \"keystores\": {\"web\": {\"cert\": \"web.crt\", \"key\": \"web.key\", "                     \
    "\"key_password\": " pw "}},\n"                                                                \
    " \"listeners\": [{\"name\": \"a\", \"address\": \"127.0.0.1:8443\", \"routes\": "             \
    "[{\"backend\": \"app\"}], \"tls\": {\"certificates\": [\"web\"]" extra "}}]}\n"

    setenv("TG_TEST_KEY_PW", "env-secret-456", 1);
    expect_ok(PWCFG("{\"env\": \"TG_TEST_KEY_PW\"}", ""), &cfg, &err);
    assert_string_equal(cfg->keystores[0].key_password, "env-secret-456");
    tg_config_free(cfg);
    tg_err_close(&err);

    expect_ok(PWCFG("{\"file\": \"password.txt\"}", ""), &cfg, &err);
    assert_string_equal(cfg->keystores[0].key_password, "file-secret-123");
    tg_config_free(cfg);
    tg_err_close(&err);

    expect_ok(PWCFG("\"plain-secret-789\"", ""), &cfg, &err);
    assert_string_equal(cfg->keystores[0].key_password, "plain-secret-789");
    tg_config_free(cfg);
    tg_err_close(&err);

    /* Secrets never appear in messages, even when the config fails for another reason. */
    static const char *const bad[] = {
        PWCFG("{\"env\": \"TG_TEST_KEY_PW\"}", ", \"min_version\": \"env-secret-456x\""),
        PWCFG("{\"file\": \"password.txt\"}", ", \"min_version\": \"bogus\""),
        PWCFG("\"plain-secret-789\"", ", \"min_version\": \"bogus\""),
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        expect_fail(bad[i], &err);
        char *all = errs_text(&err);
        assert_null(strstr(all, "file-secret-123"));
        assert_null(strstr(all, "plain-secret-789"));
        tg_err_close(&err);
        free(all);
    }
    unsetenv("TG_TEST_KEY_PW");

    expect_fail(PWCFG("{\"env\": \"TG_TEST_NOT_SET\"}", ""), &err);
    assert_true(has(&err, "/keystores/web/key_password/env: environment variable "
                          "\"TG_TEST_NOT_SET\" is not set"));
    tg_err_close(&err);
    expect_fail(PWCFG("{\"file\": \"nope.txt\"}", ""), &err);
    assert_true(
        has(&err, "/keystores/web/key_password/file: cannot read \"nope.txt\": No such file"));
    tg_err_close(&err);
    expect_fail(PWCFG("{\"file\": \"a\", \"env\": \"b\"}", ""), &err);
    assert_true(has(&err, "needs exactly one of \"file\" or \"env\""));
    tg_err_close(&err);
    /* enc: values need the internal keystore, and a decryptor (the tls module's, not linked
     * into config loading here). */
    expect_fail(PWCFG("\"enc:AAAA\"", ""), &err);
    assert_true(has(&err, "/keystores/web/key_password: an \"enc:\" value needs the keystore "
                          "named \"internal\""));
    assert_true(lacks(&err, "AAAA"));
    tg_err_close(&err);
}

static void test_not_supported_yet(void **state)
{
    struct tg_err err;
    const char *json =
        "{\"version\": 1, \"truststores\": {}, \"admin\": {}, \"session_tickets\": {},\n"
        " \"keystores\": {\"p\": {\"type\": \"pkcs12\", \"file\": \"a.p12\", \"password\": "
        "\"x\"},\n"
        "               \"j\": {\"type\": \"jks\", \"file\": \"a.jks\"}},\n"
        " \"backends\": {\"b\": {\"targets\": [\"127.0.0.1:1\"], \"tls\": {}}},\n"
        " \"listeners\": [{\"name\": \"a\", \"address\": \"127.0.0.1:1\", \"mode\": \"http\",\n"
        "   \"proxy_protocol\": true, \"routes\": [{\"backend\": \"b\"}],\n"
        "   \"tls\": {\"certificates\": [\"p\"], \"client_auth\": {}, \"ocsp_stapling\": {},\n"
        "           \"alpn\": [\"h2\", \"http/1.1\"]}}]}\n";
    expect_fail(json, &err);
    assert_true(lacks(&err, "unknown key"));
    /* Truststores, backend TLS and tcp listeners are built now. */
    assert_true(lacks(&err, "/truststores"));
    assert_true(lacks(&err, "/backends/b/tls"));
    /* The admin section is built now: its own schema applies. */
    assert_true(has(&err, "/admin: missing required key \"address\""));
    /* session_tickets is built now: an empty object takes the defaults. */
    assert_true(lacks(&err, "/session_tickets"));
    /* pkcs12 and jks keystores are built now: their own schema applies. */
    assert_true(has(&err, "/keystores/p/file: cannot read \"a.p12\": No such file"));
    assert_true(has(&err, "/keystores/j: missing required key \"password\""));
    assert_true(lacks(&err, "/keystores/p/type"));
    /* PROXY protocol in is built now. */
    assert_true(lacks(&err, "/listeners/0/proxy_protocol"));
    /* client_auth is built now: an empty object is mode none. */
    assert_true(lacks(&err, "/listeners/0/tls/client_auth"));
    /* ocsp_stapling is built now: an empty object names no source. */
    assert_true(has(&err, "/listeners/0/tls/ocsp_stapling: needs \"file\""));
    /* h2 is served now (ALPN chooses the HTTP/2 session). */
    assert_true(lacks(&err, "/listeners/0/tls/alpn"));
    /* 4 here, and 4 from the admin section now built (missing address and tls, ...) */
    assert_int_equal(tg_err_count(&err), 8);
    assert_true(has(&err, "/admin: the admin API needs \"users\""));
    tg_err_close(&err);
}

static void test_tls_required_and_types(void **state)
{
    struct tg_err err;
    const char *json = HEAD "  \"listeners\": [{\"name\": \"a\", \"address\": \"127.0.0.1:8443\",\n"
                            "    \"routes\": [{\"backend\": \"app\"}]},\n"
                            "   {\"name\": 5, \"address\": \"127.0.0.1:99999\", \"tls\": {}, "
                            "\"routes\": [{\"backend\": \"app\"}]}]}\n";
    expect_fail(json, &err);
    assert_true(has(&err, "cfg.json:5:17: /listeners/0: tls is required (set \"disabled\": true to "
                          "serve plaintext)"));
    assert_true(has(&err, "/listeners/1/name: must be a string (got an integer)"));
    assert_true(has(&err, "/listeners/1/address: \"127.0.0.1:99999\" is not a listen address: the "
                          "port must be a number 1..65535"));
    assert_true(has(&err, "/listeners/1/tls: missing required key \"certificates\""));
    assert_int_equal(tg_err_count(&err), 4);
    tg_err_close(&err);
}

static void test_syntax_error(void **state)
{
    struct tg_err err;
    expect_fail("{\"version\": 1,\n \"x\": [1, 2,]\n}", &err);
    assert_int_equal(err.n, 1);
    char *s = tg_err_format(&err, 0);
    assert_non_null(strstr(s, "cfg.json:2:"));
    assert_non_null(strstr(s, ": JSON syntax error: "));
    free(s);
    tg_err_close(&err);

    expect_fail("{\"version\": 1, \"version\": 1}", &err);
    assert_true(has(&err, "JSON syntax error: duplicate object key"));
    tg_err_close(&err);

    expect_fail("[1]", &err);
    assert_true(has(&err, "cfg.json:1:1: the config must be a JSON object (got a list)"));
    tg_err_close(&err);
}

/* ---- TLS policy ---- */

static struct tg_config *tls_ok(const char *tls, struct tg_err *err)
{
    struct tg_config *cfg;
    char *json = listener_cfg(tls);
    expect_ok(json, &cfg, err);
    free(json);
    return cfg;
}

static void tls_fail(const char *tls, struct tg_err *err)
{
    char *json = listener_cfg(tls);
    expect_fail(json, err);
    free(json);
}

static void test_suites_mixed_list(void **state)
{
    struct tg_err err;
    struct tg_config *cfg = tls_ok(
        "{\"certificates\": [\"web\"], \"min_version\": \"tlsv1.2\", \"cipher_suites\": [\n"
        "  \"TLS_CHACHA20_POLY1305_SHA256\", \"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\", 49199,\n"
        "  \"tls_aes_128_gcm_sha256\", \"0xC030\", \"ECDHE-RSA-AES128-SHA256\"],\n"
        " \"curves\": [\"x25519\", \"prime256v1\", \"P-384\"], \"session_resumption\": false}",
        &err);
    const struct tg_tls_conf *t = &cfg->listeners[0].tls;
    assert_int_equal(t->min_version, TLS1_2_VERSION);
    assert_int_equal(t->max_version, TLS1_3_VERSION);
    assert_string_equal(t->ciphersuites, "TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256");
    assert_string_equal(t->cipher_list, "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                                        "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-SHA256");
    assert_false(t->cipher_string);
    assert_false(t->legacy);
    assert_string_equal(t->curves, "X25519:P-256:P-384");
    assert_false(t->session_resumption);
    assert_int_equal(err.n, 0);
    tg_config_free(cfg);
    tg_err_close(&err);
}

static void test_suites_names_no_version(void **state)
{
    struct tg_err err;
    tls_fail("{\"certificates\": [\"web\"], \"min_version\": \"TLS1.2\",\n"
             " \"cipher_suites\": [\"TLS_AES_128_GCM_SHA256\"]}",
             &err);
    assert_int_equal(err.n, 1);
    assert_true(has(&err,
                    "cfg.json:8:19: /listeners/0/tls/cipher_suites: cipher_suites names no TLS "
                    "1.2 suite but min_version allows TLS1.2: add one or set min_version to "
                    "TLS1.3"));
    tg_err_close(&err);

    tls_fail("{\"certificates\": [\"web\"], \"min_version\": \"TLS1.2\",\n"
             " \"cipher_suites\": [\"ECDHE-RSA-AES128-GCM-SHA256\"]}",
             &err);
    assert_int_equal(err.n, 1);
    assert_true(has(&err,
                    "/listeners/0/tls/cipher_suites: cipher_suites names no TLS 1.3 suite but "
                    "max_version allows TLS1.3: add one or set max_version to TLS1.2"));
    tg_err_close(&err);

    /* Allowed when the versions exclude the missing kind; unusable suites give a warning. */
    struct tg_config *cfg = tls_ok("{\"certificates\": [\"web\"], \"min_version\": \"TLS1.2\", "
                                   "\"max_version\": \"TLS1.2\", \"cipher_suites\": "
                                   "[\"ECDHE-RSA-AES128-GCM-SHA256\", \"TLS_AES_256_GCM_SHA384\"]}",
                                   &err);
    assert_string_equal(cfg->listeners[0].tls.ciphersuites, "TLS_AES_256_GCM_SHA384");
    assert_int_equal(tg_err_count(&err), 0);
    assert_true(has(&err, "warning: /listeners/0/tls/cipher_suites: TLS 1.3 suites "
                          "TLS_AES_256_GCM_SHA384 will never be used: max_version is TLS1.2"));
    tg_config_free(cfg);
    tg_err_close(&err);

    cfg = tls_ok("{\"certificates\": [\"web\"], \"cipher_suites\": [\"TLS_AES_256_GCM_SHA384\"]}",
                 &err);
    assert_string_equal(cfg->listeners[0].tls.ciphersuites, "TLS_AES_256_GCM_SHA384");
    assert_string_equal(cfg->listeners[0].tls.cipher_list, "");
    assert_int_equal(err.n, 0);
    tg_config_free(cfg);
    tg_err_close(&err);
}

static void test_suites_errors(void **state)
{
    struct tg_err err;
    tls_fail("{\"certificates\": [\"web\"], \"cipher_suites\": [\"TLS_AES_128_GCM_SHA265\", "
             "\"ADH-AES128-SHA\", \"RC4-SHA\", true, \"NO_SUCH_THING_AT_ALL\"]}",
             &err);
    assert_true(has(&err, "/listeners/0/tls/cipher_suites/0: unknown cipher suite "
                          "\"TLS_AES_128_GCM_SHA265\" (did you mean \"TLS_AES_128_GCM_SHA256\"?)"));
    assert_true(has(&err, "/listeners/0/tls/cipher_suites/1: \"ADH-AES128-SHA\" is an insecure "
                          "suite without authentication; not allowed"));
    assert_true(has(&err, "/listeners/0/tls/cipher_suites/2: \"RC4-SHA\" is an insecure suite with "
                          "the broken RC4 cipher; not allowed"));
    assert_true(has(&err, "/listeners/0/tls/cipher_suites/3: must be a suite name or number (got a "
                          "boolean)"));
    assert_true(has(&err, "/listeners/0/tls/cipher_suites/4: unknown cipher suite "
                          "\"NO_SUCH_THING_AT_ALL\" (use OpenSSL"));
    assert_true(lacks(&err, "names no"));
    assert_int_equal(tg_err_count(&err), 5);
    tg_err_close(&err);

    tls_fail("{\"certificates\": [\"web\"], \"min_version\": \"SSLv3\", \"max_version\": "
             "\"TLS1.2\", \"cipher_suites\": []}",
             &err);
    assert_true(has(&err, "/listeners/0/tls/min_version: \"SSLv3\": SSLv3 and SSLv2 are not "
                          "supported"));
    assert_true(has(&err, "/listeners/0/tls/cipher_suites: must name at least one suite"));
    tg_err_close(&err);

    tls_fail("{\"certificates\": [\"web\", \"wbe\", \"zzzzzzzz\"], \"min_version\": \"TLS1.3\", "
             "\"max_version\": \"TLS1.2\", \"curves\": [\"P-257\"], \"alpn\": [\"spdy/3\"]}",
             &err);
    assert_true(has(&err, "/listeners/0/tls/min_version: min_version TLS1.3 is above max_version "
                          "TLS1.2"));
    assert_true(has(&err, "/listeners/0/tls/certificates/1: keystore \"wbe\" is not defined (did "
                          "you mean \"web\"?)"));
    assert_true(has(&err, "/listeners/0/tls/certificates/2: keystore \"zzzzzzzz\" is not defined"));
    assert_true(has(&err, "/listeners/0/tls/curves/0: \"P-257\" is not a known group (allowed: "
                          "X25519, X448, P-256"));
    assert_true(has(&err, "/listeners/0/tls/alpn/0: \"spdy/3\" is not a supported ALPN protocol "
                          "(allowed: h2, http/1.1)"));
    assert_int_equal(tg_err_count(&err), 5);
    tg_err_close(&err);
}

static void test_legacy(void **state)
{
    struct tg_err err;
    struct tg_config *cfg = tls_ok("{\"certificates\": [\"web\"], \"min_version\": \"TLS1.0\", "
                                   "\"cipher_suites\": [\"TLS_AES_128_GCM_SHA256\", "
                                   "\"ECDHE-RSA-AES128-SHA\", \"SSL_RSA_WITH_3DES_EDE_CBC_SHA\"]}",
                                   &err);
    const struct tg_tls_conf *t = &cfg->listeners[0].tls;
    assert_true(t->legacy);
    assert_int_equal(t->min_version, TLS1_VERSION);
    assert_int_equal(tg_err_count(&err), 0);
    assert_true(has(&err, "cfg.json:7:12: warning: /listeners/0/tls: legacy policy: TLS1.0"));
    assert_true(has(&err, "needs OpenSSL security level 0; clients can be downgraded to weak "
                          "cryptography"));
    struct tg_cipher_info ci;
    assert_int_equal(tg_cipher_lookup("DES-CBC3-SHA", &ci), 0);
    if (ci.available) {
        assert_non_null(strstr(t->cipher_list, "DES-CBC3-SHA"));
        assert_true(has(&err, "DES-CBC3-SHA needs OpenSSL"));
    } else {
        /* This libssl was built without 3DES: the suite is named precisely and left out. */
        assert_string_equal(t->cipher_list, "ECDHE-RSA-AES128-SHA");
        assert_true(has(&err, "warning: /listeners/0/tls/cipher_suites/2: "
                              "\"SSL_RSA_WITH_3DES_EDE_CBC_SHA\" (DES-CBC3-SHA) is not available"));
    }
    tg_config_free(cfg);
    tg_err_close(&err);

    cfg = tls_ok("{\"certificates\": [\"web\"], \"min_version\": \"TLS1.2\"}", &err);
    assert_false(cfg->listeners[0].tls.legacy);
    assert_int_equal(err.n, 0);
    tg_config_free(cfg);
    tg_err_close(&err);
}

static void test_cipher_string(void **state)
{
    struct tg_err err;
    struct tg_config *cfg =
        tls_ok("{\"certificates\": [\"web\"], \"min_version\": \"TLS1.2\", \"cipher_suites\": "
               "\"HIGH:!aNULL:!kRSA\"}",
               &err);
    const struct tg_tls_conf *t = &cfg->listeners[0].tls;
    assert_true(t->cipher_string);
    assert_string_equal(t->cipher_list, "HIGH:!aNULL:!kRSA");
    assert_string_equal(
        t->ciphersuites,
        "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256");
    assert_false(t->legacy);
    assert_int_equal(err.n, 0);
    tg_config_free(cfg);
    tg_err_close(&err);

    cfg = tls_ok("{\"certificates\": [\"web\"], \"min_version\": \"TLS1.1\", \"cipher_suites\": "
                 "\"ALL:@SECLEVEL=0\"}",
                 &err);
    assert_true(cfg->listeners[0].tls.legacy);
    assert_true(has(&err, "legacy policy: TLS1.1"));
    assert_true(has(&err, "cipher string selects insecure suites such as"));
    tg_config_free(cfg);
    tg_err_close(&err);

    tls_fail("{\"certificates\": [\"web\"], \"cipher_suites\": \"NOTHING-MATCHES\"}", &err);
    assert_true(has(&err, "/listeners/0/tls/cipher_suites: cipher string \"NOTHING-MATCHES\" "
                          "selects no TLS 1.2 suite"));
    tg_err_close(&err);
}

static void test_tls_disabled_warns(void **state)
{
    struct tg_err err;
    struct tg_config *cfg = tls_ok("{\"disabled\": true, \"min_version\": \"TLS1.2\"}", &err);
    assert_true(cfg->listeners[0].tls.disabled);
    assert_true(has(&err, "warning: /listeners/0/tls: the other tls settings are ignored"));
    tg_config_free(cfg);
    tg_err_close(&err);
}

static void test_embedded_default(void **state)
{
    char dir[] = "/tmp/tg_cfgdef_XXXXXX";
    char path[128];
    struct tg_config *cfg = NULL;
    struct tg_err err;

    assert_non_null(mkdtemp(dir));
    tg_err_init(&err);
    /* Without the key files the default loads with exactly those errors (the two keystores'
     * certificate and key, the admin password hash), and no crash. */
    assert_int_equal(tg_config_load_string(tg_config_default_json, strlen(tg_config_default_json),
                                           "<embedded default>", dir, &cfg, &err),
                     -EINVAL);
    assert_int_equal(tg_err_count(&err), 5);
    assert_true(has(&err, "/admin/users/0/password_hash/file: cannot read \"admin.hash\""));
    assert_true(
        has(&err, "<embedded default>:6:40: /keystores/default/cert: cannot read \"default.crt\""));
    tg_err_close(&err);
    static const char *const files[] = {"default.crt", "default.key", "admin.crt", "admin.key",
                                        "admin.hash"};
    for (size_t i = 0; i < 5; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs(i == 4 ? "$scrypt$ln=15,r=8,p=1$c2FsdA$aGFzaA\n" : "-----BEGIN PLACEHOLDER-----\n",
              f);
        fclose(f);
    }
    assert_int_equal(tg_config_load_string(tg_config_default_json, strlen(tg_config_default_json),
                                           "<embedded default>", dir, &cfg, &err),
                     0);
    assert_int_equal(err.n, 0);
    snprintf(path, sizeof(path), "%s/default.crt", dir);
    assert_string_equal(cfg->keystores[0].cert_file, path);
    assert_string_equal(cfg->log.access_log, "stdout");
    assert_string_equal(cfg->listeners[0].name, "default");
    assert_string_equal(cfg->listeners[0].address, "127.0.0.1:8443");
    assert_int_equal(cfg->backends[0].kind, TG_BACKEND_STATUS);
    assert_int_equal(cfg->listeners[0].routes[0].backend_idx, 0);
    assert_null(cfg->source_file);
    assert_true(cfg->admin.enabled);
    assert_true(cfg->listeners[cfg->admin.listener_idx].admin);
    assert_string_equal(cfg->listeners[cfg->admin.listener_idx].address, "127.0.0.1:9443");
    assert_string_equal(cfg->admin.users[0].name, "admin");
    tg_config_free(cfg);
    tg_err_close(&err);
    for (size_t i = 0; i < 5; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
}

static void test_load_file(void **state)
{
    char dir[] = "/tmp/tg_cfgfile_XXXXXX";
    char path[128], cert[160];
    struct tg_config *cfg = NULL;
    struct tg_err err;

    assert_non_null(mkdtemp(dir));
    snprintf(cert, sizeof(cert), "%s/c.pem", dir);
    FILE *f = fopen(cert, "w");
    fputs("x", f);
    fclose(f);
    snprintf(path, sizeof(path), "%s/gw.json", dir);
    f = fopen(path, "w");
    fputs("{\"version\": 1, \"keystores\": {\"k\": {\"cert\": \"c.pem\", \"key\": \"./c.pem\"}},\n"
          " \"backends\": {\"s\": {\"builtin\": \"status\"}},\n"
          " \"listeners\": [{\"name\": \"a\", \"address\": \"127.0.0.1:8443\", \"tls\": "
          "{\"certificates\": [\"k\"]}, \"routes\": [{\"backend\": \"s\"}]}]}\n",
          f);
    fclose(f);
    tg_err_init(&err);
    assert_int_equal(tg_config_load_file(path, &cfg, &err), 0);
    assert_string_equal(cfg->source_file, path);
    assert_string_equal(cfg->base_dir, dir);
    assert_string_equal(cfg->keystores[0].cert_file, cert);
    assert_string_equal(cfg->keystores[0].key_file, cert);
    tg_config_free(cfg);
    cfg = NULL;
    unlink(path);
    assert_int_equal(tg_config_load_file(path, &cfg, &err), -ENOENT);
    assert_null(cfg);
    assert_true(has(&err, "gw.json: cannot read the config file: No such file or directory"));
    tg_err_close(&err);
    unlink(cert);
    rmdir(dir);
}

/* ---- Truststores, backend TLS, balance, health, tcp listeners ---- */

/* A valid config around one backend "app" (line 5) and truststores (line 4); listeners (line 7)
 * default to one http listener routing to "app". */
static char *be_cfg(const char *truststores, const char *app, const char *listeners)
{
    return tg_xasprintf(
        "{\n"
        "  \"version\": 1,\n"
        "  \"keystores\": {\"web\": {\"cert\": \"web.crt\", \"key\": \"web.key\"}},\n"
        "  \"truststores\": %s,\n"
        "  \"backends\": {\"app\": %s,\n"
        "               \"status\": {\"builtin\": \"status\"}},\n"
        "  \"listeners\": %s\n"
        "}\n",
        truststores, app,
        listeners ? listeners
                  : "[{\"name\": \"a\", \"address\": \"127.0.0.1:8443\", \"tls\": {\"disabled\": "
                    "true}, \"routes\": [{\"backend\": \"app\"}]}]");
}

static void test_truststores(void **state)
{
    struct tg_config *cfg;
    struct tg_err err;
    char *json =
        be_cfg("{\"corp\": {\"type\": \"pem\", \"file\": \"web.crt\"}, \"dir\": {\"file\": "
               "\".\"}, \"os\": {\"type\": \"system\"}}",
               "{\"targets\": [\"127.0.0.1:1\"]}", NULL);
    expect_ok(json, &cfg, &err);
    free(json);
    assert_int_equal(cfg->n_truststores, 3);
    const struct tg_truststore_conf *ts = tg_config_truststore(cfg, "corp");
    assert_non_null(ts);
    assert_string_equal(ts->type, "pem");
    assert_string_equal(ts->file, DATA "/web.crt");
    assert_string_equal(ts->path, "/truststores/corp");
    assert_int_equal(ts->loc.line, 4);
    ts = tg_config_truststore(cfg, "dir");
    assert_string_equal(ts->type, "pem"); /* the default type */
    assert_string_equal(ts->file, DATA "/.");
    ts = tg_config_truststore(cfg, "os");
    assert_string_equal(ts->type, "system");
    assert_null(ts->file);
    assert_null(tg_config_truststore(cfg, "nope"));
    tg_config_free(cfg);
    tg_err_close(&err);

    json = be_cfg("{\"p\": {\"type\": \"pkcs12\", \"file\": \"a.p12\", \"password\": \"x\"},\n"
                  "   \"j\": {\"type\": \"jks\"}, \"x\": {\"type\": \"der\"}, \"m\": {\"type\": "
                  "\"pem\"},\n"
                  "   \"g\": {\"file\": \"gone.pem\"}, \"s\": {\"type\": \"system\", \"file\": "
                  "\"web.crt\"}, \"n\": 3}",
                  "{\"targets\": [\"127.0.0.1:1\"]}", NULL);
    expect_fail(json, &err);
    free(json);
    /* pkcs12 and jks truststores are built now: their own schema applies. */
    assert_true(has(&err, "cfg.json:4:51: /truststores/p/file: cannot read \"a.p12\": No such "
                          "file or directory"));
    assert_true(has(&err, "/truststores/j: missing required key \"file\""));
    assert_true(has(&err, "/truststores/x/type: \"der\" is not a truststore type (allowed: pem, "
                          "system, pkcs12, jks, jceks)"));
    assert_true(has(&err, "/truststores/m: missing required key \"file\""));
    assert_true(has(&err, "cfg.json:6:18: /truststores/g/file: cannot read \"gone.pem\": No such "
                          "file or directory"));
    assert_true(has(&err, "/truststores/s/file: a \"system\" truststore uses OpenSSL's default "
                          "paths and takes no file"));
    assert_true(has(&err, "/truststores/n: a truststore must be an object (got an integer)"));
    assert_true(lacks(&err, "password"));
    assert_int_equal(tg_err_count(&err), 7);
    tg_err_close(&err);
}

static void test_backend_tls_defaults(void **state)
{
    struct tg_config *cfg;
    struct tg_err err;
    char *json = be_cfg("{}", "{\"targets\": [\"127.0.0.1:1\"], \"tls\": {}}", NULL);
    expect_ok(json, &cfg, &err);
    free(json);
    assert_int_equal(err.n, 0);
    const struct tg_backend_conf *b = tg_config_backend(cfg, "app");
    const struct tg_backend_tls_conf *t = &b->tls;
    assert_true(t->enabled);
    assert_string_equal(t->path, "/backends/app/tls");
    assert_int_equal(t->loc.line, 5);
    assert_true(t->verify);
    assert_false(t->allow_insecure);
    assert_null(t->truststore); /* system trust */
    assert_null(t->server_name);
    assert_null(t->client_certificate);
    assert_int_equal(t->min_version, TLS1_2_VERSION);
    assert_int_equal(t->max_version, TLS1_3_VERSION);
    assert_non_null(strstr(t->ciphersuites, "TLS_AES_128_GCM_SHA256"));
    assert_non_null(strstr(t->cipher_list, "ECDHE-ECDSA-AES128-GCM-SHA256"));
    assert_null(t->curves);
    assert_int_equal(t->n_pins, 0);
    assert_int_equal(t->n_alpn, 0);
    assert_false(t->legacy);
    assert_int_equal(b->balance, TG_BALANCE_ROUND_ROBIN);
    assert_false(b->health.enabled);
    /* Without "tls" a backend is plaintext. */
    assert_false(tg_config_backend(cfg, "status")->tls.enabled);
    tg_config_free(cfg);
    tg_err_close(&err);
}

static void test_backend_tls_fields(void **state)
{
    struct tg_config *cfg;
    struct tg_err err;
    char *json = be_cfg(
        "{\"corp\": {\"file\": \"web.crt\"}}",
        "{\"targets\": [\"127.0.0.1:1\"], \"tls\": {\"truststore\": \"corp\",\n"
        "     \"server_name\": \"API.Internal\", \"client_certificate\": \"web\",\n"
        "     \"min_version\": \"TLS1.3\", \"cipher_suites\": [\"TLS_AES_256_GCM_SHA384\"],\n"
        "     \"curves\": [\"prime256v1\", \"x25519\"], \"alpn\": [\"h2\", \"http/1.1\"],\n"
        "     \"pin\": [\"sha256/47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\",\n"
        "             \"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\"]}}",
        NULL);
    expect_ok(json, &cfg, &err);
    free(json);
    const struct tg_backend_tls_conf *t = &tg_config_backend(cfg, "app")->tls;
    assert_string_equal(t->truststore, "corp");
    assert_int_equal(t->truststore_idx, 0);
    assert_string_equal(t->server_name, "api.internal");
    assert_string_equal(t->client_certificate, "web");
    assert_int_equal(t->client_certificate_idx, 0);
    assert_int_equal(t->client_certificate_loc.line, 6);
    assert_int_equal(t->min_version, TLS1_3_VERSION);
    assert_string_equal(t->ciphersuites, "TLS_AES_256_GCM_SHA384");
    /* Groups go through the listeners' resolution: the same spellings come out. */
    assert_string_equal(t->curves, "P-256:X25519");
    assert_int_equal(t->n_alpn, 2);
    assert_string_equal(t->alpn[0], "h2");
    assert_string_equal(t->alpn[1], "http/1.1");
    /* Both spellings decode to SHA-256(""), the RFC 7469 example digest. */
    assert_int_equal(t->n_pins, 2);
    assert_int_equal(t->pins[0][0], 0xe3);
    assert_int_equal(t->pins[0][1], 0xb0);
    assert_int_equal(t->pins[0][31], 0x55);
    assert_memory_equal(t->pins[0], t->pins[1], 32);
    tg_config_free(cfg);
    tg_err_close(&err);

    /* "system" names the default trust unless a truststore has that name. */
    json = be_cfg("{}", "{\"targets\": [\"127.0.0.1:1\"], \"tls\": {\"truststore\": \"system\"}}",
                  NULL);
    expect_ok(json, &cfg, &err);
    free(json);
    assert_null(tg_config_backend(cfg, "app")->tls.truststore);
    tg_config_free(cfg);
    tg_err_close(&err);
}

static void test_backend_tls_errors(void **state)
{
    struct tg_err err;
    char *json = be_cfg(
        "{\"corp\": {\"file\": \"web.crt\"}}",
        "{\"targets\": [\"127.0.0.1:1\"], \"tls\": {\"pin\": [\"sha256/abc\", 5,\n"
        "      \"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\"],\n"
        "      \"truststore\": \"crop\", \"client_certificate\": \"wbe\", \"verify\": false,\n"
        "      \"server_name\": \"*.example.com\", \"alpn\": [\"\"], \"max_version\": \"TLS1.4\",\n"
        "      \"curves\": [\"P-999\"], \"verfiy\": true}}",
        NULL);
    expect_fail(json, &err);
    free(json);
    assert_true(has(&err, "cfg.json:5:68: /backends/app/tls/pin/0: \"sha256/abc\" is not an SPKI "
                          "SHA-256 pin: expected base64 of a 32-byte digest"));
    assert_true(has(&err, "/backends/app/tls/pin/1: must be a pin string (got an integer)"));
    assert_true(has(&err, "cfg.json:6:7: /backends/app/tls/pin/2: \"e3b0c44298fc1c149afbf4c8996fb9"
                          "2427ae41e4649b934ca495991b7852b855\" looks like a hex fingerprint"));
    assert_true(has(&err, "cfg.json:7:21: /backends/app/tls/truststore: truststore \"crop\" is not "
                          "defined (did you mean \"corp\"?)"));
    assert_true(has(&err, "/backends/app/tls/client_certificate: keystore \"wbe\" is not defined "
                          "(did you mean \"web\"?)"));
    assert_true(has(&err, "/backends/app/tls/verify: verification of backend \"app\" cannot be "
                          "turned off on its own: set allow_insecure: true to skip verification"));
    assert_true(has(&err, "/backends/app/tls/server_name: \"*.example.com\" is not a server name"));
    assert_true(has(&err, "/backends/app/tls/alpn/0: a protocol id is 1 to 255 bytes"));
    assert_true(has(&err, "/backends/app/tls/max_version: \"TLS1.4\" is not a TLS version"));
    assert_true(has(&err, "/backends/app/tls/curves/0: \"P-999\" is not a known group"));
    assert_true(has(&err, "/backends/app/tls/verfiy: unknown key \"verfiy\" (did you mean "
                          "\"verify\"?)"));
    assert_int_equal(tg_err_count(&err), 11);
    tg_err_close(&err);

    /* Settings for targets are refused on the built-in backend. */
    json =
        be_cfg("{}", "{\"builtin\": \"status\", \"tls\": {}, \"balance\": \"round_robin\"}", NULL);
    expect_fail(json, &err);
    free(json);
    assert_true(has(&err, "/backends/app/tls: \"tls\" is for backends with targets, not a "
                          "built-in one"));
    assert_true(has(&err, "/backends/app/balance: \"balance\" is for backends with targets"));
    assert_int_equal(tg_err_count(&err), 2);
    tg_err_close(&err);
}

static void test_allow_insecure_warns(void **state)
{
    struct tg_config *cfg;
    struct tg_err err;
    char *json = be_cfg("{}",
                        "{\"targets\": [\"127.0.0.1:1\"], \"tls\": {\"verify\": false, "
                        "\"allow_insecure\": true}}",
                        NULL);
    expect_ok(json, &cfg, &err);
    free(json);
    const struct tg_backend_tls_conf *t = &tg_config_backend(cfg, "app")->tls;
    assert_true(t->allow_insecure);
    assert_false(t->verify);
    assert_int_equal(err.n, 1);
    assert_true(has(&err, "cfg.json:5:"));
    assert_true(has(&err, "warning: /backends/app/tls/allow_insecure: backend \"app\": "
                          "allow_insecure skips certificate chain and name verification"));
    tg_config_free(cfg);
    tg_err_close(&err);

    /* Every load warns again. */
    json =
        be_cfg("{}", "{\"targets\": [\"127.0.0.1:1\"], \"tls\": {\"allow_insecure\": true}}", NULL);
    expect_ok(json, &cfg, &err);
    free(json);
    assert_false(tg_config_backend(cfg, "app")->tls.verify);
    assert_true(has(&err, "warning: /backends/app/tls/allow_insecure"));
    tg_config_free(cfg);
    tg_err_close(&err);
}

static void test_balance_and_health(void **state)
{
    struct tg_config *cfg;
    struct tg_err err;
    char *json = be_cfg("{}",
                        "{\"targets\": [\"127.0.0.1:1\"], \"balance\": \"least_connections\", "
                        "\"health\": {\"path\": \"/healthz?full=1\", \"interval\": 1.5, "
                        "\"timeout\": 0.25}}",
                        NULL);
    expect_ok(json, &cfg, &err);
    free(json);
    const struct tg_backend_conf *b = tg_config_backend(cfg, "app");
    assert_int_equal(b->balance, TG_BALANCE_LEAST_CONNECTIONS);
    assert_true(b->health.enabled);
    assert_string_equal(b->health.path, "/healthz?full=1");
    assert_int_equal(b->health.interval_ms, 1500);
    assert_int_equal(b->health.timeout_ms, 250);
    tg_config_free(cfg);
    tg_err_close(&err);

    /* Without a path it is a connect check; the default timeout fits a short interval. */
    json = be_cfg("{}", "{\"targets\": [\"127.0.0.1:1\"], \"health\": {\"interval\": 1}}", NULL);
    expect_ok(json, &cfg, &err);
    free(json);
    b = tg_config_backend(cfg, "app");
    assert_true(b->health.enabled);
    assert_null(b->health.path);
    assert_int_equal(b->health.interval_ms, 1000);
    assert_int_equal(b->health.timeout_ms, 1000);
    tg_config_free(cfg);
    tg_err_close(&err);

    json = be_cfg("{}", "{\"targets\": [\"127.0.0.1:1\"], \"health\": {}}", NULL);
    expect_ok(json, &cfg, &err);
    free(json);
    b = tg_config_backend(cfg, "app");
    assert_int_equal(b->health.interval_ms, 5000);
    assert_int_equal(b->health.timeout_ms, 2000);
    tg_config_free(cfg);
    tg_err_close(&err);

    json = be_cfg("{}",
                  "{\"targets\": [\"127.0.0.1:1\"], \"balance\": \"random\", \"health\": "
                  "{\"path\": \"health me\", \"interval\": 2, \"timeout\": 3, \"port\": 1}}",
                  NULL);
    expect_fail(json, &err);
    free(json);
    assert_true(has(&err, "cfg.json:5:63: /backends/app/balance: \"random\" is not a balance "
                          "method (allowed: round_robin, least_connections)"));
    assert_true(has(&err, "/backends/app/health/path: \"health me\" is not a request path"));
    assert_true(has(&err, "/backends/app/health/timeout: a check may not outlast the interval: "
                          "timeout 3 s is above interval 2 s"));
    assert_true(has(&err, "/backends/app/health/port: unknown key \"port\""));
    assert_int_equal(tg_err_count(&err), 4);
    tg_err_close(&err);

    json = be_cfg("{}", "{\"targets\": [\"127.0.0.1:1\"], \"health\": {\"interval\": 0}}", NULL);
    expect_fail(json, &err);
    free(json);
    assert_true(has(&err, "/backends/app/health/interval: 0 is out of range"));
    tg_err_close(&err);
}

static void test_tcp_listener(void **state)
{
    struct tg_config *cfg;
    struct tg_err err;
    char *json = be_cfg("{}", "{\"targets\": [\"127.0.0.1:1\"], \"tls\": {}}",
                        "[{\"name\": \"t\", \"address\": \"127.0.0.1:9443\", \"mode\": \"tcp\",\n"
                        "    \"backend\": \"app\", \"proxy_protocol_out\": true,\n"
                        "    \"tls\": {\"certificates\": [\"web\"]}},\n"
                        "   {\"name\": \"u\", \"address\": \"127.0.0.1:9444\", \"mode\": \"tcp\",\n"
                        "    \"backend\": \"app\", \"tls\": {\"disabled\": true}}]");
    expect_ok(json, &cfg, &err);
    free(json);
    const struct tg_listener_conf *l = &cfg->listeners[0];
    assert_int_equal(l->mode, TG_MODE_TCP);
    assert_string_equal(l->backend, "app");
    assert_int_equal(l->backend_idx, 0);
    assert_true(l->proxy_protocol_out);
    assert_null(l->routes);
    assert_int_equal(l->n_routes, 0);
    /* http/1.1 is not a tcp listener's protocol. */
    assert_int_equal(l->tls.n_alpn, 0);
    assert_false(cfg->listeners[1].proxy_protocol_out);
    tg_config_free(cfg);
    tg_err_close(&err);

    json = be_cfg("{}", "{\"targets\": [\"127.0.0.1:1\"]}",
                  "[{\"name\": \"t1\", \"address\": \"127.0.0.1:1\", \"mode\": \"tcp\", \"tls\": "
                  "{\"disabled\": true}},\n"
                  "   {\"name\": \"t2\", \"address\": \"127.0.0.1:2\", \"mode\": \"tcp\", "
                  "\"backend\": \"status\", \"routes\": [{\"backend\": \"app\"}], \"tls\": "
                  "{\"disabled\": true}},\n"
                  "   {\"name\": \"t3\", \"address\": \"127.0.0.1:3\", \"mode\": \"tcp\", "
                  "\"backend\": \"ap\", \"tls\": {\"disabled\": true}},\n"
                  "   {\"name\": \"h\", \"address\": \"127.0.0.1:4\", \"backend\": \"app\", "
                  "\"proxy_protocol_out\": true, \"tls\": {\"disabled\": true}, \"routes\": "
                  "[{\"backend\": \"app\"}]},\n"
                  "   {\"name\": \"m\", \"address\": \"127.0.0.1:5\", \"mode\": \"udp\", \"tls\": "
                  "{\"disabled\": true}, \"routes\": [{\"backend\": \"app\"}]}]");
    expect_fail(json, &err);
    free(json);
    assert_true(has(&err, "cfg.json:7:17: /listeners/0: missing required key \"backend\" (a tcp "
                          "listener needs the name of the backend it forwards connections to)"));
    assert_true(has(&err, "/listeners/1/backend: backend \"status\" is the built-in status page, "
                          "which answers HTTP; a tcp listener needs a backend with targets"));
    assert_true(has(&err, "/listeners/1/routes: a tcp listener forwards every connection to its "
                          "\"backend\"; routes are for http listeners"));
    assert_true(has(&err, "/listeners/2/backend: backend \"ap\" is not defined (did you mean "
                          "\"app\"?)"));
    assert_true(has(&err, "/listeners/3/backend: \"backend\" is for tcp listeners; an http "
                          "listener picks backends in its routes (or set \"mode\": \"tcp\")"));
    assert_true(has(&err, "/listeners/3/proxy_protocol_out: \"proxy_protocol_out\" is for tcp "
                          "listeners"));
    assert_true(has(&err, "/listeners/4/mode: \"udp\" is not a listener mode (allowed: http, "
                          "tcp)"));
    assert_int_equal(tg_err_count(&err), 7);
    tg_err_close(&err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_bad_min_version_position),
        cmocka_unit_test(test_multiple_errors_sorted),
        cmocka_unit_test(test_unknown_keys),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_duplicate_listeners),
        cmocka_unit_test(test_route_unknown_backend),
        cmocka_unit_test(test_routes_and_backends),
        cmocka_unit_test(test_request_body_timeout),
        cmocka_unit_test(test_min_body_rate),
        cmocka_unit_test(test_http_underscores),
        cmocka_unit_test(test_http2),
        cmocka_unit_test(test_passwords),
        cmocka_unit_test(test_not_supported_yet),
        cmocka_unit_test(test_tls_required_and_types),
        cmocka_unit_test(test_syntax_error),
        cmocka_unit_test(test_suites_mixed_list),
        cmocka_unit_test(test_suites_names_no_version),
        cmocka_unit_test(test_suites_errors),
        cmocka_unit_test(test_legacy),
        cmocka_unit_test(test_cipher_string),
        cmocka_unit_test(test_tls_disabled_warns),
        cmocka_unit_test(test_embedded_default),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_truststores),
        cmocka_unit_test(test_backend_tls_defaults),
        cmocka_unit_test(test_backend_tls_fields),
        cmocka_unit_test(test_backend_tls_errors),
        cmocka_unit_test(test_allow_insecure_warns),
        cmocka_unit_test(test_balance_and_health),
        cmocka_unit_test(test_tcp_listener),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
