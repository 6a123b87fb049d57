/* Symbols shared only inside the store module. */
#ifndef TG_STORE_INTERNAL_H
#define TG_STORE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <llhttp.h>

#include "store/store.h"

/* reader.c: an HTTP/1.1 response from etcd, read incrementally (llhttp). */
struct tg_store__reader {
    llhttp_t p;
    llhttp_settings_t settings;
    int status;     /* once the status line was read */
    bool head_done; /* the head is complete */
    bool done;      /* the whole answer is in */
    bool failed;    /* not HTTP, or the body went over max */
    char *body;     /* body bytes (NUL-terminated), chunked coding removed */
    size_t len, cap, off, max;
};
void tg_store__reader_init(struct tg_store__reader *r, size_t max_body);
void tg_store__reader_free(struct tg_store__reader *r);
/* 0, or -1 once the bytes are not an HTTP response (or the body is over max). */
int tg_store__reader_feed(struct tg_store__reader *r, const char *buf, size_t len);
/* The connection ended: 0 when that completes the answer (or it was complete). */
int tg_store__reader_finish(struct tg_store__reader *r);
/* The next complete newline-ended JSON object of the body (a watch stream's message), a new
 * reference; NULL when none is complete yet. Consumed bytes are dropped. */
json_t *tg_store__reader_next_line(struct tg_store__reader *r);

/* Base64 (standard, padded) of len bytes: a new string. */
char *tg_store__b64(const void *p, size_t len);
/* Decodes standard padded base64 into a new NUL-terminated buffer; -EINVAL if malformed or
 * not canonical (stray bits in the last character), as etcd never writes. */
int tg_store__unb64(const char *s, unsigned char **out, size_t *out_len);
/* etcd's int64 fields arrive as JSON strings ("12"); absent is 0; -1 when not a number. */
int64_t tg_store__int(json_t *v);

/* One key-value record of a range or watch answer, decoded. */
struct tg_store__kv {
    char *key;
    char *value; /* value_len bytes, NUL-terminated */
    size_t value_len;
    int64_t mod_revision, create_revision;
};
/* 0, or -EINVAL when kv is not {"key": b64, "value": b64, "mod_revision": "N", ...}. */
int tg_store__kv(json_t *kv, struct tg_store__kv *out);
void tg_store__kv_clear(struct tg_store__kv *kv);
/* The stored config value {"version": N, "config": {...}}: 0 with *config (a new reference)
 * and *version, or -EINVAL. */
int tg_store__config_value(const char *text, size_t len, json_t **config, uint64_t *version);

#endif
