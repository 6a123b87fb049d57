/* WebSocket opening handshake checks (RFC 6455 4.1, 4.2.2): the Sec-WebSocket-Accept a server
 * must answer for the client's Sec-WebSocket-Key. */
#include "http/http.h"

#include <errno.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#define WS_GUID    "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_KEY_LEN 24 /* base64 of a 16-byte nonce */
#define WS_KEY_RAW 16

static bool key_valid(const char *key, size_t len)
{
    if (len != WS_KEY_LEN || key[22] != '=' || key[23] != '=')
        return false;
    unsigned char raw[WS_KEY_LEN];
    /* EVP_DecodeBlock keeps the padding's zero bytes: 16 bytes come back as 18. */
    return EVP_DecodeBlock(raw, (const unsigned char *)key, WS_KEY_LEN) == WS_KEY_RAW + 2;
}

int tg_ws_accept_for_key(const char *key, size_t len, char out[TG_WS_ACCEPT_LEN + 1])
{
    out[0] = '\0';
    if (!key_valid(key, len))
        return -EINVAL;
    unsigned char md[SHA_DIGEST_LENGTH];
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned mdlen = 0;
    bool ok = ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) == 1 &&
              EVP_DigestUpdate(ctx, key, len) == 1 &&
              EVP_DigestUpdate(ctx, WS_GUID, sizeof(WS_GUID) - 1) == 1 &&
              EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 && mdlen == sizeof(md);
    EVP_MD_CTX_free(ctx);
    if (!ok)
        return -EIO;
    EVP_EncodeBlock((unsigned char *)out, md, sizeof(md));
    return 0;
}

bool tg_ws_accept_ok(const char *expected, const char *value, size_t len)
{
    /* Compared exactly (RFC 6455 4.1: "does not match") once optional whitespace is off. */
    while (len > 0 && (value[0] == ' ' || value[0] == '\t')) {
        value++;
        len--;
    }
    while (len > 0 && (value[len - 1] == ' ' || value[len - 1] == '\t'))
        len--;
    return expected[0] != '\0' && len == TG_WS_ACCEPT_LEN && memcmp(expected, value, len) == 0;
}
