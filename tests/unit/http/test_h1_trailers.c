/* Unit tests for the chunked trailer fields http/h1.c keeps for responses (tg_h1_trailers): only
 * fields a trailer may carry, copied out of the caller's buffers, within the section's limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http/http.h"

struct seen {
    int dones;
    bool over;
    char got[512]; /* "name=value;" per kept field, at on_done */
};

static int on_head(struct tg_h1_msg *m)
{
    (void)m;
    return 0;
}

static int on_body(struct tg_h1_msg *m, const char *at, size_t len)
{
    (void)m;
    (void)at;
    (void)len;
    return 0;
}

static int on_done(struct tg_h1_msg *m)
{
    struct seen *s = m->user;
    s->dones++;
    s->got[0] = '\0';
    const struct tg_http_head *t = tg_h1_trailers(m, &s->over);
    for (uint32_t i = 0; t != NULL && i < t->n_fields; i++) {
        size_t n = strlen(s->got);
        snprintf(s->got + n, sizeof(s->got) - n, "%.*s=%.*s;", (int)t->fields[i].name_len,
                 t->fields[i].name, (int)t->fields[i].value_len, t->fields[i].value);
    }
    return 0;
}

static const struct tg_h1_callbacks cb = {on_head, on_body, on_done};

#define HEAD "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n"

/* Feeds the head and body in one piece, then the trailer section one byte at a time, each byte
 * in its own heap buffer freed right after (so kept fields must have been copied); returns the
 * last result. */
static enum tg_h1_result feed_bytes(struct tg_h1_msg *m, const char *text)
{
    size_t consumed, head = strlen(HEAD);
    assert_memory_equal(text, HEAD, head);
    enum tg_h1_result res = tg_h1_execute(m, text, 0, head, &consumed);
    for (size_t i = head; text[i] != '\0' && res == TG_H1_OK; i++) {
        char *b = malloc(1);
        assert_non_null(b);
        b[0] = text[i];
        res = tg_h1_execute(m, b, 0, 1, &consumed);
        free(b);
    }
    return res;
}

static void test_kept_fields_are_copied_and_filtered(void **state)
{
    (void)state;
    struct seen s = {0};
    struct tg_h1_msg m;
    tg_h1_init(&m, HTTP_RESPONSE, 8, &cb, &s);
    m.pause_on_done = true;
    m.max_trailer_bytes = 1024;
    assert_int_equal(feed_bytes(&m, HEAD "X-Checksum: abc\r\nContent-Length: 5\r\nX_Under: 1\r\n"
                                         "Set-Cookie: a=b\r\nGrpc-Status: 0\r\nX-Empty:\r\n\r\n"),
                     TG_H1_PAUSED);
    assert_int_equal(s.dones, 1);
    assert_false(s.over);
    assert_string_equal(s.got, "X-Checksum=abc;Grpc-Status=0;X-Empty=;");

    /* The next response on the connection has none of them. */
    tg_h1_reset(&m);
    assert_int_equal(feed_bytes(&m, HEAD "\r\n"), TG_H1_PAUSED);
    assert_int_equal(s.dones, 2);
    assert_string_equal(s.got, "");
    tg_h1_free(&m);
}

static void test_section_over_a_limit_is_dropped_whole(void **state)
{
    (void)state;
    struct seen s = {0};
    struct tg_h1_msg m;
    tg_h1_init(&m, HTTP_RESPONSE, 2, &cb, &s);
    m.pause_on_done = true;
    m.max_trailer_bytes = 40;
    /* Over the byte limit. */
    assert_int_equal(feed_bytes(&m, HEAD "X-A: 1\r\nX-Long: 01234567890123456789012345\r\n\r\n"),
                     TG_H1_PAUSED);
    assert_true(s.over);
    assert_string_equal(s.got, "");
    /* Over max_fields (2). */
    tg_h1_reset(&m);
    assert_int_equal(feed_bytes(&m, HEAD "X-A: 1\r\nX-B: 2\r\nX-C: 3\r\n\r\n"), TG_H1_PAUSED);
    assert_true(s.over);
    assert_string_equal(s.got, "");
    /* Within both. */
    tg_h1_reset(&m);
    assert_int_equal(feed_bytes(&m, HEAD "X-A: 1\r\nX-B: 2\r\n\r\n"), TG_H1_PAUSED);
    assert_false(s.over);
    assert_string_equal(s.got, "X-A=1;X-B=2;");
    tg_h1_free(&m);
}

static void test_not_kept_without_a_limit(void **state)
{
    (void)state;
    struct seen s = {0};
    struct tg_h1_msg m;
    tg_h1_init(&m, HTTP_RESPONSE, 8, &cb, &s);
    m.pause_on_done = true; /* max_trailer_bytes 0: the request parser's way */
    assert_int_equal(feed_bytes(&m, HEAD "X-Checksum: abc\r\n\r\n"), TG_H1_PAUSED);
    assert_false(s.over);
    assert_string_equal(s.got, "");
    assert_null(m.tbuf.data); /* nothing allocated */
    tg_h1_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kept_fields_are_copied_and_filtered),
        cmocka_unit_test(test_section_over_a_limit_is_dropped_whole),
        cmocka_unit_test(test_not_kept_without_a_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
