/* libFuzzer harness for "enc:" values (tls/secret.c): open the text with a fixed EC P-256 and a
 * fixed RSA 2048 internal key; nothing may crash, a refused value must say why, and a value opens
 * under at most one of the keys. The corpus holds values that `tlsgate secret encrypt` made for
 * these keys (test keys, used nowhere else). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "tls/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char EC_KEY_PEM[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgAhQK+1tom62iUYeJ\n"
    "iaUZC6Kb5yiiQPhI8inr8XALsgahRANCAARr8KQRqw5xeWVBhZSmbB+xth82Rrui\n"
    "y2UeUi8kStCmp8hPZlGQQrLGgt2PwEs0psEXLiHizntkZ2nFLsgMRCQF\n"
    "-----END PRIVATE KEY-----\n";

static const char RSA_KEY_PEM[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQDaob2zO46pzsPx\n"
    "BhvJA00lEeFurKou4oI/9rCIheKzQYT08uOYPIk8n81qgFTx+W9i40ioJqubm4AY\n"
    "39r8fjaNPqtb2SC01Ck4i6MsI4vxVaXBkkslAZQmtxYpZ5O0qVJBvMjATjHSp0jo\n"
    "fxSyZAms00F4nhB1eP8NppZlTRRSTGyEvqMksbrSIPfxAzZnpoqcfDPOLoEz7inn\n"
    "T6q9B1QXlYOXDpeqs2OI4urH07w64iNn5gBPX+J2mHUcxaaZ0uDEjHzlLuXLuYKD\n"
    "QCq7Bh9DRVWFY35WJlUbQ/BSnnXRtn803HpfBi6Qb3RfxVmHy6nrJRlM60sN/0XT\n"
    "MpuWdexBAgMBAAECggEANXVqfe6gZ999tEvW0+wpexi361ivZTbv+8VtbXh1UfkB\n"
    "kmZopcMZmHgHoZS/EIq6BG9IRwtrlykq5YopEOeonZlXC6aYE3c0HBYywBpx/8D+\n"
    "Popvst0DtYK7mcSwjnJ/gUDwwmrsTlKmpmjabfM9lWNzhRN7OUosbVFQQXVbNHL1\n"
    "CJmF1AR8KIQdFH06jpM32i3uxD+7GXzRAkfost6NF00PsGo6O6GJuOFHTZ0Zx+N8\n"
    "JYLwQLr5rFqH737anNeKh70ywwdcbgPNVEJseIOJFTIJ0GxLcoCjITIwmydqvFW9\n"
    "PHMugkDE65exGR2Fh56QIOZgLxLcYPdw+NXvPS8XBQKBgQD7DA+Xv49AbLzrALAe\n"
    "a8aWrm1xmUj1NOVDA2Cuw1ryIAgrAyX0AHg6VSWzFsKDaby8o3XEm8/7+G50hskU\n"
    "YyIDtPM4J/NFrZCsCmwgV8IdkzL2KsQJSybKzrnVWTnC7CEU1koHZsn2/+JTo/Oi\n"
    "pdxVeYKZpID2CMop+e14QZwgdQKBgQDe8faYUQE7EOWtLmZNoMeCAPfEXUhAqk6j\n"
    "WnCFLbiKXvEXhM83XeOL/JKMcj/+ynjgMQqCpRzhPFawRAVQ3hn4keS8WsJfqdsQ\n"
    "iH75+mdcw2FFMOrrJcNxbZlmn6joNdcEUwHchf/eHPz95QePjqBS+IOY3RrqbIrg\n"
    "iTkv8zVjHQKBgDZAxgHiWP/wP+d9b5IzcmhP68D4AmdTdhREX5mFCFt5Bqrc9E/F\n"
    "5jWc/xez3Hdv22Tc4m+JyKnIZ35xPnVUcx5f9Yv2PkGZn8E+Q129+WpQzFucpF7p\n"
    "yclcYZa0wKHaS8/n+3mcAhuJ8wxmSxmkRHiIWOwBPAlvntjxdRte+nGdAoGASyA1\n"
    "/HWveHvlKUptZtM652/0DdNxOXkqLpmXOQmDGf2MOGSkfv/AYbemmnUVY4JO4R0l\n"
    "cYi6BpwSiishr3JoRf7DmUTsIthV3WhhgVMD6Zpc+LfXMY30IhDQlGhQvo8F+YsP\n"
    "IYR2CB60kcnPlmx1UgA0OBqpqz0QP0F+Z84Iu3ECgYA/8utcwBsTx+BDgNrR5JGe\n"
    "L9+D97gHNvyDuYi6z7fyfEoLlxxRhYQb/BELslkzl3Nk9PEhHbM4isoxmp9vDAN7\n"
    "bEOHMtWK0uyui1mJh0k4vaFoMGbFkPjtggxRTktdVvgwt9POGLqwWiAfROpmKg2k\n"
    "grIWilwRCJV26tIXZqmp6A==\n"
    "-----END PRIVATE KEY-----\n";

static EVP_PKEY *pem_key(const char *pem)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    if (k == NULL)
        abort();
    return k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static EVP_PKEY *keys[2];
    if (keys[0] == NULL) {
        keys[0] = pem_key(EC_KEY_PEM);
        keys[1] = pem_key(RSA_KEY_PEM);
    }
    /* Config values are NUL-terminated strings. */
    char *value = malloc(size + 1);
    if (value == NULL)
        abort();
    memcpy(value, data, size);
    value[size] = '\0';
    int opened = 0;
    for (size_t k = 0; k < 2; k++) {
        char *plain = NULL, why[256] = "";
        size_t len = 0;
        if (tg_tls__secret_open(keys[k], value, &plain, &len, why, sizeof(why)) != 0) {
            if (why[0] == '\0' || plain != NULL)
                abort(); /* a refused value must say why, and gives nothing */
            continue;
        }
        if (plain == NULL || plain[len] != '\0')
            abort();
        opened++;
        free(plain);
    }
    if (opened > 1)
        abort(); /* made for one key only */
    free(value);
    return 0;
}
