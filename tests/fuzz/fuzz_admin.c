/* libFuzzer harness for the admin API's request path: the parts that read untrusted bytes
 * before anything is applied. Input: "PATH\nHEADER-VALUE\nBODY" (the rest is the body).
 *  - the path: the allow-list route split and percent-decoding (then the subject parser); a
 *    decoded string is never longer than the encoded one and holds no NUL;
 *  - the header value as Basic credentials, If-Match and a Cookie;
 *  - the body as JSON: redacting hides every secret and is idempotent, restoring a redacted copy
 *    against the original gives the original back (when it holds no "***" of its own), and an
 *    RFC 7396 merge patch applied twice equals applying it once. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "admin/internal.h"
#include "tls/tls.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool has_mask(json_t *v)
{
    if (json_is_string(v))
        return strcmp(json_string_value(v), "***") == 0;
    const char *k;
    json_t *c;
    size_t i;
    if (json_is_object(v)) {
        json_object_foreach(v, k, c) if (has_mask(c)) return true;
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, c) if (has_mask(c)) return true;
    }
    return false;
}

/* No "enc:" string and no string under a secret's key survives redaction. */
static bool no_secrets(json_t *v, const char *key)
{
    static const char *const keys[] = {"password", "key_password", "password_hash", "hmac_key"};
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (strncmp(s, "enc:", 4) == 0)
            return false;
        for (size_t i = 0; key != NULL && i < 4; i++)
            if (strcmp(key, keys[i]) == 0 && strcmp(s, "***") != 0)
                return false;
        return true;
    }
    const char *k;
    json_t *c;
    size_t i;
    if (json_is_object(v)) {
        json_object_foreach(v, k, c) if (!no_secrets(c, k)) return false;
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, c) if (!no_secrets(c, key)) return false;
    }
    return true;
}

static void check_path(const char *path)
{
    char *listener = NULL, *subject = NULL;
    if (!tg__admin_allow_path(path, strlen(path), &listener, &subject))
        return;
    if (listener == NULL || listener[0] == '\0')
        abort();
    size_t before = strlen(listener);
    if (tg__admin_pct_decode(listener) == 0 && strlen(listener) > before)
        abort();
    if (subject != NULL) {
        before = strlen(subject);
        if (tg__admin_pct_decode(subject) == 0) {
            if (strlen(subject) > before)
                abort();
            char *key = NULL;
            char why[256];
            if (tg_tls_allow_parse(subject, &key, why, sizeof(why)) == 0 && key == NULL)
                abort();
            free(key);
        }
    }
    free(listener);
    free(subject);
}

static void check_header(const char *h)
{
    size_t len = 0;
    char *cred = tg__admin_b64_decode(h, &len);
    if (cred != NULL && cred[len] != '\0')
        abort();
    free(cred);
    if (tg__admin_if_match(h) < -1)
        abort();
    char token[TG_ADMIN_TOKEN_LEN + 1];
    if (tg__admin_cookie(h, token) && strlen(token) != TG_ADMIN_TOKEN_LEN)
        abort();
}

static void check_body(const char *body, size_t len)
{
    json_error_t je;
    json_t *doc = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (doc == NULL) {
        if (je.line < -1 || je.column < -1)
            abort();
        return;
    }
    json_t *red = json_deep_copy(doc);
    tg__admin_redact(red);
    if (!no_secrets(red, NULL))
        abort();
    json_t *red2 = json_deep_copy(red);
    tg__admin_redact(red2);
    if (!json_equal(red, red2))
        abort();
    if (!has_mask(doc)) {
        struct tg_err err;
        tg_err_init(&err);
        tg__admin_restore(red, doc, "", &err);
        /* every "***" came from a secret string of doc, so it is restored without error */
        if (tg_err_count(&err) != 0 || !json_equal(red, doc))
            abort();
        tg_err_close(&err);
    }
    static const char base[] = "{\"version\": 1, \"log\": {\"level\": \"info\"}, "
                               "\"listeners\": [{\"name\": \"a\"}], \"x\": {\"y\": [1, 2]}}";
    json_t *t = json_loads(base, 0, NULL);
    json_t *once = tg__admin_merge_patch(json_deep_copy(t), doc);
    json_t *twice = tg__admin_merge_patch(json_deep_copy(once), doc);
    if (!json_equal(once, twice))
        abort();
    json_decref(once);
    json_decref(twice);
    json_decref(t);
    json_decref(red);
    json_decref(red2);
    json_decref(doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1);
    memcpy(buf, data, size);
    buf[size] = '\0';
    char *nl1 = memchr(buf, '\n', size);
    char *header = NULL, *body = NULL;
    if (nl1 != NULL) {
        *nl1 = '\0';
        header = nl1 + 1;
        char *nl2 = memchr(header, '\n', size - (size_t)(header - buf));
        if (nl2 != NULL) {
            *nl2 = '\0';
            body = nl2 + 1;
        }
    }
    if (strlen(buf) == (nl1 ? (size_t)(nl1 - buf) : size))
        check_path(buf);
    if (header != NULL && strlen(header) < 4096)
        check_header(header);
    if (body != NULL)
        check_body(body, size - (size_t)(body - buf));
    free(buf);
    return 0;
}
