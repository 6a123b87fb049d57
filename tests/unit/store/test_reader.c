/* Unit tests for store/reader.c: etcd's HTTP answers (sized, chunked, split anywhere, over the
 * cap, not HTTP), a watch stream's messages, base64 and key-value records as the JSON gateway
 * writes them; and the instance file laid over a shared config (config/store.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "store/internal.h"

static void test_sized_answer_split_anywhere(void **state)
{
    (void)state;
    const char *a = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 14\r\n"
                    "\r\n{\"count\": \"1\"}";
    for (size_t cut = 1; cut < strlen(a); cut++) {
        struct tg_store__reader r;
        tg_store__reader_init(&r, 1 << 20);
        assert_int_equal(tg_store__reader_feed(&r, a, cut), 0);
        assert_int_equal(tg_store__reader_feed(&r, a + cut, strlen(a) - cut), 0);
        assert_true(r.done);
        assert_int_equal(r.status, 200);
        assert_int_equal(r.len, 14);
        assert_string_equal(r.body, "{\"count\": \"1\"}");
        tg_store__reader_free(&r);
    }
}

static void test_watch_stream_messages(void **state)
{
    (void)state;
    struct tg_store__reader r;
    tg_store__reader_init(&r, 1 << 20);
    const char *head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_int_equal(tg_store__reader_feed(&r, head, strlen(head)), 0);
    assert_true(r.head_done);
    assert_null(tg_store__reader_next_line(&r));
    /* {"result":{"n": 1}}\n{"n": 2}}\n cut into chunks anywhere */
    const char *msgs = "{\"result\":{\"n\": 1}}\n{\"n\": 2}}\n";
    size_t cuts[] = {10, 10, 10};
    size_t at = 0;
    json_t *m = NULL;
    for (size_t i = 0; i < 3; i++) {
        char chunk[64];
        int n = snprintf(chunk, sizeof(chunk), "%zx\r\n%.*s\r\n", cuts[i], (int)cuts[i], msgs + at);
        at += cuts[i];
        assert_int_equal(tg_store__reader_feed(&r, chunk, (size_t)n), 0);
        if (i < 1)
            assert_null(tg_store__reader_next_line(&r));
        else if (i == 1) {
            m = tg_store__reader_next_line(&r);
            assert_non_null(m);
        }
    }
    assert_int_equal(at, strlen(msgs));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(m, "result"), "n")), 1);
    json_decref(m);
    assert_null(tg_store__reader_next_line(&r)); /* {"n": 2}} does not parse: skipped */
    assert_false(r.done);
    tg_store__reader_free(&r);
}

static void test_over_cap_and_not_http(void **state)
{
    (void)state;
    struct tg_store__reader r;
    tg_store__reader_init(&r, 8);
    const char *a = "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n123456789";
    assert_int_equal(tg_store__reader_feed(&r, a, strlen(a)), -1);
    assert_int_equal(tg_store__reader_feed(&r, "x", 1), -1);
    tg_store__reader_free(&r);
    tg_store__reader_init(&r, 1 << 20);
    assert_int_equal(tg_store__reader_feed(&r, "SSH-2.0-OpenSSH\r\n", 17), -1);
    tg_store__reader_free(&r);
    /* a body delimited by the end of the connection */
    tg_store__reader_init(&r, 1 << 20);
    const char *b = "HTTP/1.1 400 Bad Request\r\n\r\nCommonName of client";
    assert_int_equal(tg_store__reader_feed(&r, b, strlen(b)), 0);
    assert_false(r.done);
    assert_int_equal(tg_store__reader_finish(&r), 0);
    assert_int_equal(r.status, 400);
    assert_string_equal(r.body, "CommonName of client");
    tg_store__reader_free(&r);
}

static void test_base64(void **state)
{
    (void)state;
    const char *in[] = {"", "f", "fo", "foo", "/tlsgate/a/config"};
    for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
        char *b = tg_store__b64(in[i], strlen(in[i]));
        unsigned char *out = NULL;
        size_t n = 0;
        assert_int_equal(tg_store__unb64(b, &out, &n), 0);
        assert_int_equal(n, strlen(in[i]));
        assert_memory_equal(out, in[i], n);
        free(out);
        free(b);
    }
    unsigned char *out = NULL;
    size_t n = 0;
    assert_int_equal(tg_store__unb64("Zm9", &out, &n), -22);      /* not a multiple of 4 */
    assert_int_equal(tg_store__unb64("Zm9*", &out, &n), -22);     /* not base64 */
    assert_int_equal(tg_store__unb64("Z=9v", &out, &n), -22);     /* padding inside */
    assert_int_equal(tg_store__unb64("Zm=6", &out, &n), -22);     /* padding, then more */
    assert_int_equal(tg_store__unb64("Zm9vYAC=", &out, &n), -22); /* stray bits (fuzz) */
    assert_null(out);
}

static void test_kv_records(void **state)
{
    (void)state;
    json_t *kv = json_pack("{s:s,s:s,s:s,s:s}", "key", "L2EvY29uZmln", "value",
                           "eyJ2ZXJzaW9uIjogMn0=", "mod_revision", "42", "create_revision", "7");
    struct tg_store__kv out;
    assert_int_equal(tg_store__kv(kv, &out), 0);
    assert_string_equal(out.key, "/a/config");
    assert_string_equal(out.value, "{\"version\": 2}");
    assert_int_equal(out.mod_revision, 42);
    assert_int_equal(out.create_revision, 7);
    tg_store__kv_clear(&out);
    json_object_set_new(kv, "mod_revision", json_string("-3"));
    assert_int_equal(tg_store__kv(kv, &out), -22);
    json_object_set_new(kv, "mod_revision", json_string("4x"));
    assert_int_equal(tg_store__kv(kv, &out), -22);
    json_object_del(kv, "key");
    assert_int_equal(tg_store__kv(kv, &out), -22);
    json_decref(kv);
    assert_int_equal(tg_store__int(NULL), 0);
    json_t *big = json_string("9223372036854775807");
    assert_int_equal(tg_store__int(big), INT64_MAX);
    json_decref(big);
}

static void test_config_value(void **state)
{
    (void)state;
    json_t *c = NULL;
    uint64_t v = 0;
    const char *ok = "{\"version\": 3, \"config\": {\"version\": 1}}";
    assert_int_equal(tg_store__config_value(ok, strlen(ok), &c, &v), 0);
    assert_int_equal(v, 3);
    assert_true(json_is_object(c));
    json_decref(c);
    const char *bad[] = {"{\"version\": 0, \"config\": {}}", "{\"config\": {}}",
                         "{\"version\": 1, \"config\": []}",
                         "{\"version\": 1, \"version\": 2, "
                         "\"config\": {}}",
                         "nope"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(tg_store__config_value(bad[i], strlen(bad[i]), &c, &v), -22);
}

static void test_instance_overlay(void **state)
{
    (void)state;
    char path[] = "/tmp/tg-instance-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text =
        "{\"store\": {\"type\": \"etcd\", \"endpoints\": [\"http://127.0.0.1:2379\"]},"
        " \"state_dir\": \"/var/lib/x\", \"workers\": 2,"
        " \"admin\": {\"address\": \"127.0.0.1:9000\"},"
        " \"listeners\": [{\"name\": \"web\", \"address\": \"127.0.0.1:8000\"}]}";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    assert_true(tg_config_is_instance_file(path));
    struct tg_err err;
    tg_err_init(&err);
    struct tg_config_instance *in = NULL;
    assert_int_equal(tg_config_instance_load(path, &in, &err), 0);
    assert_string_equal(in->cfg->store.prefix, "/tlsgate/default/");
    json_t *shared =
        json_pack("{s:i,s:i,s:{s:s},s:[{s:s,s:s},{s:s,s:s}],s:{}}", "version", 1, "workers", 8,
                  "admin", "address", "0.0.0.0:1", "listeners", "name", "web", "address",
                  "0.0.0.0:2", "name", "other", "address", "0.0.0.0:3", "store");
    char *from = NULL;
    json_t *doc = tg_config_instance_apply(in, shared, &from);
    assert_int_equal(json_integer_value(json_object_get(doc, "workers")), 2);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(doc, "admin"), "address")),
        "127.0.0.1:9000");
    json_t *ls = json_object_get(doc, "listeners");
    assert_string_equal(json_string_value(json_object_get(json_array_get(ls, 0), "address")),
                        "127.0.0.1:8000");
    assert_string_equal(json_string_value(json_object_get(json_array_get(ls, 1), "address")),
                        "0.0.0.0:3");
    assert_null(json_object_get(doc, "store"));
    assert_string_equal(json_string_value(json_object_get(doc, "state_dir")), "/var/lib/x");
    /* the shared document itself is unchanged */
    assert_int_equal(json_integer_value(json_object_get(shared, "workers")), 8);
    assert_non_null(strstr(from, "workers, admin.address, listeners[web].address"));
    free(from);
    json_decref(doc);
    json_decref(shared);
    tg_config_instance_free(in);
    tg_err_close(&err);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sized_answer_split_anywhere),
        cmocka_unit_test(test_watch_stream_messages),
        cmocka_unit_test(test_over_cap_and_not_http),
        cmocka_unit_test(test_base64),
        cmocka_unit_test(test_kv_records),
        cmocka_unit_test(test_config_value),
        cmocka_unit_test(test_instance_overlay),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
