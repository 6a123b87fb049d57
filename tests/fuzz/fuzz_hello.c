/* libFuzzer harness for the ClientHello record made before the handshake (tls/hello.c,
 * tg_tls__hello_record): the client's supported_versions, cipher suites and supported_groups are
 * untrusted bytes whose inner lengths may lie. Input: a flags byte (bit 0 supported_versions
 * sent, bit 1 SSLv2-format hello, bit 2 supported_groups sent, bit 3 ALPN sent, bits 4-5 the
 * listener's version range), the legacy version (2 bytes), then the three fields, each as a
 * 2-byte length and its bytes. Each field is copied to an exact-size buffer so ASan sees any read
 * past it; the record must stay within what was offered. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/ssl.h>

#include "tls/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint16_t enabled_suites[] = {0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f,
                                          0xc02c, 0xc030, 0xcca9, 0xcca8};
static const uint16_t enabled_groups[] = {0x001d, 0x0017, 0x0018};

static bool suite_enabled(void *arg, unsigned id)
{
    (void)arg;
    for (size_t i = 0; i < sizeof(enabled_suites) / sizeof(enabled_suites[0]); i++)
        if (enabled_suites[i] == id)
            return true;
    return false;
}

/* The next length-prefixed field as an exact-size copy (what is left if the length lies). */
static unsigned char *field(const uint8_t **p, size_t *left, size_t *len)
{
    size_t n = 0;
    if (*left >= 2) {
        n = (size_t)(*p)[0] << 8 | (*p)[1];
        *p += 2;
        *left -= 2;
    }
    if (n > *left)
        n = *left;
    unsigned char *copy = malloc(n ? n : 1);
    if (copy == NULL)
        abort();
    memcpy(copy, *p, n);
    *p += n;
    *left -= n;
    *len = n;
    return copy;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int ranges[4][2] = {{TLS1_3_VERSION, TLS1_3_VERSION},
                                     {TLS1_2_VERSION, TLS1_3_VERSION},
                                     {TLS1_2_VERSION, TLS1_2_VERSION},
                                     {TLS1_VERSION, TLS1_3_VERSION}};
    if (size < 3)
        return 0;
    unsigned flags = data[0];
    const uint8_t *p = data + 3;
    size_t left = size - 3;
    struct tg_tls__hello_fields in = {
        .legacy_version = (unsigned)data[1] << 8 | data[2],
        .has_versions = flags & 1,
        .isv2 = flags & 2,
        .has_groups = flags & 4,
        .has_alpn = flags & 8,
    };
    unsigned char *versions = field(&p, &left, &in.versions_len);
    unsigned char *suites = field(&p, &left, &in.suites_len);
    unsigned char *groups = field(&p, &left, &in.groups_len);
    in.versions = versions;
    in.suites = suites;
    in.groups = groups;
    const int *range = ranges[(flags >> 4) & 3];
    struct tg_tls__hello_ours ours = {
        .min_version = range[0],
        .max_version = range[1],
        .suite_enabled = suite_enabled,
        .groups = enabled_groups,
        .n_groups = sizeof(enabled_groups) / sizeof(enabled_groups[0]),
    };
    struct tg_tls__hello h;
    memset(&h, 0xa5, sizeof(h)); /* every field must be set, whatever was here */
    tg_tls__hello_record(&h, &in, &ours);

    if (h.min_version != 0 && h.min_version > h.max_version)
        abort();
    if (h.n_suites > in.suites_len / (in.isv2 ? 3 : 2) || (h.suite_match && h.n_suites == 0))
        abort();
    if (!h.groups_sent && (h.n_groups != 0 || h.group_match))
        abort();
    if (h.groups_sent && (size_t)h.n_groups > in.groups_len / 2)
        abort();
    if (h.alpn_sent != in.has_alpn)
        abort();
    free(versions);
    free(suites);
    free(groups);
    return 0;
}
