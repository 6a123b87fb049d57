/* Console sessions: a random token in an HttpOnly, Secure, SameSite=Strict cookie, and a CSRF
 * token the page keeps in memory and sends with every write. Both compared in constant time. */
#include "admin/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#define N_SESS 64
#define TTL_MS (8ull * 3600 * 1000)

struct sess {
    char token[TG_ADMIN_TOKEN_LEN + 1];
    char csrf[TG_ADMIN_TOKEN_LEN + 1];
    char user[64];
    uint64_t expires;
};

static uv_once_t once = UV_ONCE_INIT;
static uv_mutex_t mu;
static struct sess sessions[N_SESS];

static void init_once(void)
{
    uv_mutex_init(&mu);
}

static void random_hex(char *out)
{
    unsigned char b[TG_ADMIN_TOKEN_LEN / 2];
    if (RAND_bytes(b, sizeof(b)) != 1)
        abort();
    for (size_t i = 0; i < sizeof(b); i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
}

void tg__admin_session_new(const char *user, char *token, char *csrf)
{
    uv_once(&once, init_once);
    uint64_t now = tg_now_ms();
    uv_mutex_lock(&mu);
    struct sess *slot = &sessions[0];
    for (size_t i = 0; i < N_SESS; i++)
        if (sessions[i].expires < slot->expires)
            slot = &sessions[i]; /* a free (0) or the oldest one */
    random_hex(slot->token);
    random_hex(slot->csrf);
    snprintf(slot->user, sizeof(slot->user), "%s", user);
    slot->expires = now + TTL_MS;
    memcpy(token, slot->token, TG_ADMIN_TOKEN_LEN + 1);
    memcpy(csrf, slot->csrf, TG_ADMIN_TOKEN_LEN + 1);
    uv_mutex_unlock(&mu);
}

bool tg__admin_session_find(const char *token, char *user, size_t user_len, char *csrf)
{
    uv_once(&once, init_once);
    if (strlen(token) != TG_ADMIN_TOKEN_LEN)
        return false;
    uint64_t now = tg_now_ms();
    bool found = false;
    uv_mutex_lock(&mu);
    for (size_t i = 0; i < N_SESS; i++) {
        struct sess *s = &sessions[i];
        bool live = s->expires > now;
        bool same = CRYPTO_memcmp(s->token, token, TG_ADMIN_TOKEN_LEN) == 0;
        if (live && same && !found) {
            found = true;
            snprintf(user, user_len, "%s", s->user);
            memcpy(csrf, s->csrf, TG_ADMIN_TOKEN_LEN + 1);
        }
    }
    uv_mutex_unlock(&mu);
    return found;
}

void tg__admin_session_end(const char *token)
{
    uv_once(&once, init_once);
    uv_mutex_lock(&mu);
    for (size_t i = 0; i < N_SESS; i++)
        if (strlen(token) == TG_ADMIN_TOKEN_LEN &&
            CRYPTO_memcmp(sessions[i].token, token, TG_ADMIN_TOKEN_LEN) == 0)
            memset(&sessions[i], 0, sizeof(sessions[i]));
    uv_mutex_unlock(&mu);
}

bool tg__admin_cookie(const char *header, char *token)
{
    static const char name[] = "tg_session=";
    for (const char *p = header; p != NULL && *p;) {
        while (*p == ' ' || *p == ';')
            p++;
        if (strncmp(p, name, sizeof(name) - 1) == 0) {
            p += sizeof(name) - 1;
            size_t n = strcspn(p, "; ");
            if (n != TG_ADMIN_TOKEN_LEN)
                return false;
            memcpy(token, p, n);
            token[n] = '\0';
            return true;
        }
        p = strchr(p, ';');
    }
    return false;
}
