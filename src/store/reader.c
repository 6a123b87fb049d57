/* Parsers of what etcd answers (untrusted bytes; fuzzed by tests/fuzz/fuzz_etcd.c): the HTTP/1.1
 * response (llhttp: status, chunked or sized body, capped), the newline-separated JSON messages
 * of a watch stream, base64 keys and values, and key-value records. */
#include "store/internal.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "core/core.h"

static int on_status_done(llhttp_t *p)
{
    struct tg_store__reader *r = p->data;
    r->status = p->status_code;
    return 0;
}

static int on_headers_done(llhttp_t *p)
{
    struct tg_store__reader *r = p->data;
    r->status = p->status_code;
    r->head_done = true;
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    struct tg_store__reader *r = p->data;
    if (r->len + len > r->max)
        return -1;
    if (r->len + len + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 4096;
        while (cap < r->len + len + 1)
            cap *= 2;
        r->body = tg_xrealloc(r->body, cap);
        r->cap = cap;
    }
    memcpy(r->body + r->len, at, len);
    r->len += len;
    r->body[r->len] = '\0';
    return 0;
}

static int on_done(llhttp_t *p)
{
    struct tg_store__reader *r = p->data;
    r->done = true;
    return HPE_PAUSED;
}

void tg_store__reader_init(struct tg_store__reader *r, size_t max)
{
    memset(r, 0, sizeof(*r));
    llhttp_settings_init(&r->settings);
    r->settings.on_status_complete = on_status_done;
    r->settings.on_headers_complete = on_headers_done;
    r->settings.on_body = on_body;
    r->settings.on_message_complete = on_done;
    llhttp_init(&r->p, HTTP_RESPONSE, &r->settings);
    r->p.data = r;
    r->max = max;
}

void tg_store__reader_free(struct tg_store__reader *r)
{
    free(r->body);
    r->body = NULL;
    r->len = r->cap = r->off = 0;
}

int tg_store__reader_feed(struct tg_store__reader *r, const char *buf, size_t len)
{
    if (r->failed)
        return -1;
    if (r->done)
        return 0; /* bytes after the answer are ignored */
    enum llhttp_errno e = llhttp_execute(&r->p, buf, len);
    if (e == HPE_OK || (e == HPE_PAUSED && r->done))
        return 0;
    r->failed = true;
    return -1;
}

int tg_store__reader_finish(struct tg_store__reader *r)
{
    if (r->failed)
        return -1;
    if (r->done)
        return 0;
    enum llhttp_errno e = llhttp_finish(&r->p);
    if (e != HPE_OK && !(e == HPE_PAUSED && r->done)) {
        r->failed = true;
        return -1;
    }
    return 0;
}

json_t *tg_store__reader_next_line(struct tg_store__reader *r)
{
    while (r->off < r->len) {
        char *start = r->body + r->off;
        char *nl = memchr(start, '\n', r->len - r->off);
        if (nl == NULL) {
            if (r->off > 0) { /* keep only the partial message */
                memmove(r->body, start, r->len - r->off);
                r->len -= r->off;
                r->off = 0;
                r->body[r->len] = '\0';
            }
            return NULL;
        }
        size_t n = (size_t)(nl - start);
        r->off += n + 1;
        json_t *j = json_loadb(start, n, 0, NULL);
        if (json_is_object(j))
            return j;
        json_decref(j); /* blank or broken lines are skipped */
    }
    r->len = r->off = 0;
    return NULL;
}

char *tg_store__b64(const void *p, size_t len)
{
    char *out = tg_xmalloc(4 * ((len + 2) / 3) + 1);
    EVP_EncodeBlock((unsigned char *)out, p, (int)len);
    return out;
}

int tg_store__unb64(const char *s, unsigned char **out, size_t *out_len)
{
    size_t n = strlen(s), pad = 0;
    *out = NULL;
    *out_len = 0;
    if (n % 4 != 0 || n > (64u << 20))
        return -EINVAL;
    while (pad < 2 && pad < n && s[n - 1 - pad] == '=')
        pad++;
    for (size_t i = 0; i < n - pad; i++) { /* '=' only as the last one or two */
        char ch = s[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '+' || ch == '/'))
            return -EINVAL;
    }
    unsigned char *buf = tg_xmalloc(n / 4 * 3 + 1);
    int got = n ? EVP_DecodeBlock(buf, (const unsigned char *)s, (int)n) : 0;
    if (got < 0 || (size_t)got < pad) {
        free(buf);
        return -EINVAL;
    }
    size_t len = (size_t)got - pad; /* EVP_DecodeBlock counts padding as zero bytes */
    char *again = tg_store__b64(buf, len);
    bool canonical = strcmp(again, s) == 0; /* no stray bits in the last character */
    free(again);
    if (!canonical) {
        free(buf);
        return -EINVAL;
    }
    buf[len] = '\0';
    *out = buf;
    *out_len = len;
    return 0;
}

int64_t tg_store__int(json_t *v)
{
    if (json_is_integer(v))
        return json_integer_value(v);
    const char *s = json_string_value(v);
    if (s == NULL || *s == '\0')
        return 0;
    char *end = NULL;
    errno = 0;
    long long n = strtoll(s, &end, 10);
    return errno != 0 || *end != '\0' || n < 0 ? -1 : (int64_t)n;
}

int tg_store__kv(json_t *kv, struct tg_store__kv *out)
{
    memset(out, 0, sizeof(*out));
    const char *k = json_string_value(json_object_get(kv, "key"));
    if (k == NULL)
        return -EINVAL;
    unsigned char *key = NULL, *val = NULL;
    size_t klen = 0, vlen = 0;
    json_t *v = json_object_get(kv, "value");
    if (tg_store__unb64(k, &key, &klen) != 0 || memchr(key, '\0', klen) != NULL ||
        (v != NULL &&
         (!json_is_string(v) || tg_store__unb64(json_string_value(v), &val, &vlen) != 0))) {
        free(key);
        free(val);
        return -EINVAL;
    }
    out->key = (char *)key;
    out->value = (char *)(val ? val : (unsigned char *)tg_xstrdup(""));
    out->value_len = vlen;
    out->mod_revision = tg_store__int(json_object_get(kv, "mod_revision"));
    out->create_revision = tg_store__int(json_object_get(kv, "create_revision"));
    if (out->mod_revision < 0 || out->create_revision < 0) {
        tg_store__kv_clear(out);
        return -EINVAL;
    }
    return 0;
}

void tg_store__kv_clear(struct tg_store__kv *kv)
{
    free(kv->key);
    if (kv->value != NULL)
        memset(kv->value, 0, kv->value_len);
    free(kv->value);
    memset(kv, 0, sizeof(*kv));
}

int tg_store__config_value(const char *text, size_t len, json_t **config, uint64_t *version)
{
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
    json_t *v = json_object_get(root, "version"), *c = json_object_get(root, "config");
    if (!json_is_integer(v) || json_integer_value(v) < 1 || !json_is_object(c)) {
        json_decref(root);
        return -EINVAL;
    }
    *version = (uint64_t)json_integer_value(v);
    *config = json_incref(c);
    json_decref(root);
    return 0;
}

char *tg_store_b64(const void *p, size_t len)
{
    return tg_store__b64(p, len);
}

int tg_store_unb64(const char *s, unsigned char **out, size_t *out_len)
{
    return tg_store__unb64(s ? s : "", out, out_len);
}
