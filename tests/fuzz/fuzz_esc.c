/* libFuzzer harness for the log escaper: whatever the bytes and wherever the output is cut, the
 * JSON form is a valid JSON string body and the text form unescapes back to the input; both are
 * valid UTF-8 with no raw control byte; the object writer always gives one valid object. The
 * first input byte picks the cut. */
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../utf8_oracle.h"
#include "core/esc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_common(const char *out, size_t n, size_t cap)
{
    if (n >= cap || strlen(out) != n || !utf8_valid(out, n))
        abort();
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f)
            abort();
}

static void check_json(const char *out, size_t n, size_t cap)
{
    check_common(out, n, cap);
    char *doc = malloc(n + 2);
    if (doc == NULL)
        abort();
    doc[0] = '"';
    memcpy(doc + 1, out, n);
    doc[n + 1] = '"';
    json_t *j = json_loadb(doc, n + 2, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    if (j == NULL || !json_is_string(j))
        abort();
    json_decref(j);
    free(doc);
}

/* Unescapes the text form; the result must be a prefix of the input (all of it when uncut). */
static void check_text(const char *out, size_t n, size_t cap, const uint8_t *in, size_t len,
                       bool whole)
{
    check_common(out, n, cap);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned v = (unsigned char)out[i];
        if (out[i] == '\\') {
            if (i + 1 < n && (out[i + 1] == '\\' || out[i + 1] == '"')) {
                v = (unsigned char)out[++i];
            } else if (i + 3 < n && out[i + 1] == 'x' && sscanf(out + i + 2, "%2x", &v) == 1) {
                i += 3;
            } else {
                abort(); /* a cut escape */
            }
        } else if (out[i] == ' ' || out[i] == '"') {
            abort(); /* TG_ESC_SPACES | TG_ESC_QUOTES were asked for */
        }
        if (o >= len || in[o++] != v)
            abort();
    }
    if (whole && o != len)
        abort();
}

/* A quoted value in an error-log line: `k="` + tg_esc_quote(in) + `" z=1`, written with
 * TG_ESC_KEEP_PAIRS. Read as logfmt, the value ends at our closing quote, the field after it is
 * ours, and the value unescapes to a prefix of the input (all of it when qcap is ample). */
static void check_quoted(const uint8_t *in, size_t len, size_t qcap)
{
    char *q = malloc(qcap);
    size_t msgcap = qcap + 16;
    char *msg = malloc(msgcap);
    size_t linecap = msgcap * 6 + 1;
    char *line = malloc(linecap);
    if (q == NULL || msg == NULL || line == NULL)
        abort();
    size_t qn = tg_esc_quote(q, qcap, (const char *)in, len);
    if (qn >= qcap || strlen(q) != qn)
        abort();
    int m = snprintf(msg, msgcap, "k=\"%s\" z=1", q);
    if (m < 0 || (size_t)m >= msgcap)
        abort();
    size_t n = tg_esc_text(line, linecap, msg, (size_t)m, TG_ESC_KEEP_PAIRS);
    check_common(line, n, linecap);
    size_t i = 3, o = 0;
    while (i < n && line[i] != '"') {
        unsigned v = (unsigned char)line[i];
        if (line[i] == '\\') {
            if (i + 1 < n && (line[i + 1] == '\\' || line[i + 1] == '"')) {
                v = (unsigned char)line[++i];
            } else if (i + 3 < n && line[i + 1] == 'x' && sscanf(line + i + 2, "%2x", &v) == 1) {
                i += 3;
            } else {
                abort();
            }
        }
        if (o >= len || in[o++] != v)
            abort();
        i++;
    }
    if (i >= n || strcmp(line + i, "\" z=1") != 0)
        abort();
    if (qcap > 2 * len && o != len)
        abort();
    free(line);
    free(msg);
    free(q);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t cut = data[0];
    const uint8_t *in = data + 1;
    size_t len = size - 1;
    size_t cap = len * 6 + 1; /* the worst case: every byte a 6-byte escape */
    char *out = malloc(cap);
    if (out == NULL)
        abort();
    const char *s = (const char *)in;

    size_t n = tg_esc_json(out, cap, s, len);
    check_json(out, n, cap);
    size_t small = cut < cap ? cut : cap;
    if (small > 0) {
        n = tg_esc_json(out, small, s, len);
        check_json(out, n, small);
    }

    unsigned flags = TG_ESC_QUOTES | TG_ESC_SPACES;
    n = tg_esc_text(out, cap, s, len, flags);
    check_text(out, n, cap, in, len, true);
    if (small > 0) {
        n = tg_esc_text(out, small, s, len, flags);
        check_text(out, n, small, in, len, false);
    }

    if (memchr(in, '\0', len) == NULL) { /* a C-string value, as in log messages */
        check_quoted(in, len, 2 * len + 1);
        check_quoted(in, len, cut + 1);
    }

    /* The object writer stays one valid object however little room it has. */
    char line[300];
    size_t lcap = 4 + cut;
    struct tg_jobj o;
    tg_jobj_init(&o, line, lcap);
    tg_jobj_strn(&o, "sni", s, len, SIZE_MAX);
    tg_jobj_begin(&o, "tls");
    tg_jobj_strn(&o, "alpn", s, len, cut);
    tg_jobj_end(&o);
    tg_jobj_uint(&o, "status", len);
    n = tg_jobj_finish(&o, true);
    if (n >= lcap || line[n - 1] != '\n' || !utf8_valid(line, n))
        abort();
    json_t *j = json_loadb(line, n, JSON_ALLOW_NUL, NULL);
    if (j == NULL || !json_is_object(j))
        abort();
    json_decref(j);
    free(out);
    return 0;
}
