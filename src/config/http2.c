/* http2: the settings an HTTP/2 session advertises and enforces (proxy/h2.c), and whether
 * plaintext listeners take HTTP/2 with prior knowledge (h2c). */
#include "config/internal.h"

#include <stdlib.h>

#include "core/core.h"

static const struct tg_config__key http2_keys[] = {
    {"max_concurrent_streams", TG_J_INT, "an integer", "128", "1..10000", 0},
    {"max_header_list_size", TG_J_INT, "an integer (bytes)", "limits.max_header_bytes",
     "1024..1048576", 0},
    {"initial_window_size", TG_J_INT, "an integer (bytes)", "65535", "1024..65535", 0},
    {"max_frame_size", TG_J_INT, "an integer (bytes)", "16384", "16384..16777215", 0},
    {"cleartext", TG_J_BOOL, "true or false", "false", NULL, 0},
    {NULL, 0, NULL, NULL, NULL, 0},
};

/* After parse_limits: max_header_list_size defaults to limits.max_header_bytes. */
void tg_config__parse_http2(struct tg_config__ctx *c, json_t *obj)
{
    struct tg_http2_conf *h = &c->cfg->http2;
    uint32_t *slots[] = {&h->max_concurrent_streams, &h->max_header_list_size,
                         &h->initial_window_size, &h->max_frame_size};
    static const json_int_t lo[] = {1, 1024, 1024, 16384}, hi[] = {10000, 1048576, 65535, 16777215};

    h->max_concurrent_streams = 128;
    h->max_header_list_size = c->cfg->limits.max_header_bytes;
    h->initial_window_size = 65535;
    h->max_frame_size = 16384;
    h->cleartext = false;
    if (obj == NULL)
        return;
    tg_config__check_keys(c, obj, "/http2", http2_keys);
    for (size_t i = 0; i < TG_ARRAY_SIZE(slots); i++) {
        json_t *v = tg_config__get(obj, http2_keys, http2_keys[i].name);
        if (v == NULL)
            continue;
        json_int_t n = json_integer_value(v);
        if (n < lo[i] || n > hi[i]) {
            char *p = tg_config__ptr_join("/http2", http2_keys[i].name);
            tg_config__error(c, p, "%lld is out of range (allowed: %s)", (long long)n,
                             http2_keys[i].allowed);
            free(p);
            continue;
        }
        *slots[i] = (uint32_t)n;
    }
    json_t *v = tg_config__get(obj, http2_keys, "cleartext");
    if (v != NULL)
        h->cleartext = json_is_true(v);
}
