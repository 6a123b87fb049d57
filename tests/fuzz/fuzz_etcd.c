/* libFuzzer harness for what the store reads from etcd (untrusted bytes from the network):
 *  - the input as an HTTP/1.1 answer, fed in two pieces at a split the first byte chooses, then
 *    the end of the connection: the body kept never exceeds the cap and is NUL-terminated;
 *  - every watch message taken from that body, each event's key-value record decoded (revisions
 * never negative, the value NUL-terminated) and a record's value read as a stored config;
 *  - base64 decoding of the body: what decodes encodes back to the same text. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "store/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CAP 65536

static void records(json_t *msg)
{
    json_t *res = json_object_get(msg, "result");
    json_t *events = json_object_get(res ? res : msg, "events");
    json_t *kvs = json_object_get(msg, "kvs");
    for (int pass = 0; pass < 2; pass++) {
        json_t *arr = pass == 0 ? events : kvs;
        for (size_t i = 0; i < json_array_size(arr); i++) {
            json_t *kv = json_array_get(arr, i);
            if (pass == 0)
                kv = json_object_get(kv, "kv");
            struct tg_store__kv out;
            if (tg_store__kv(kv, &out) != 0)
                continue;
            if (out.mod_revision < 0 || out.create_revision < 0 || out.value[out.value_len] != '\0')
                abort();
            json_t *c = NULL;
            uint64_t v = 0;
            if (tg_store__config_value(out.value, out.value_len, &c, &v) == 0) {
                if (!json_is_object(c) || v < 1)
                    abort();
                json_decref(c);
            }
            tg_store__kv_clear(&out);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t cut = data[0] % size;
    const char *p = (const char *)data + 1;
    size_t n = size - 1;
    cut = cut > n ? n : cut;
    struct tg_store__reader r;
    tg_store__reader_init(&r, CAP);
    if (tg_store__reader_feed(&r, p, cut) == 0 && tg_store__reader_feed(&r, p + cut, n - cut) == 0)
        (void)tg_store__reader_finish(&r);
    if (r.len > CAP || (r.body != NULL && r.body[r.len] != '\0'))
        abort();
    if (r.body != NULL) {
        char *copy = malloc(r.len + 1);
        memcpy(copy, r.body, r.len + 1);
        json_t *m;
        while ((m = tg_store__reader_next_line(&r)) != NULL) {
            records(m);
            json_decref(m);
        }
        unsigned char *dec = NULL;
        size_t dlen = 0;
        if (tg_store__unb64(copy, &dec, &dlen) == 0) {
            char *enc = tg_store__b64(dec, dlen);
            if (strcmp(enc, copy) != 0 && !(dlen == 0 && copy[0] == '\0'))
                abort();
            free(enc);
            free(dec);
        }
        free(copy);
    }
    tg_store__reader_free(&r);
    return 0;
}
