/* The "admin" section: the admin API's listener (a listener like the others, named "admin", with
 * no routes) and its users. */
#include "config/internal.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

const struct tg_config__key tg_config__admin_keys[] = {
    {"address", TG_J_STR, "a string", NULL, "host:port or [v6]:port", TG_K_REQUIRED},
    {"tls", TG_J_OBJ, "an object", NULL, "as a listener's", TG_K_REQUIRED},
    {"users", TG_J_ARR, "a list of users", "[]", "{\"name\": N, \"password_hash\": H}", 0},
    {"max_body", TG_J_INT, "an integer", "1048576", "1024..67108864", 0},
    {NULL, 0, NULL, NULL, NULL, 0},
};

static const struct tg_config__key user_keys[] = {
    {"name", TG_J_STR, "a string", NULL, "no ':'", TG_K_REQUIRED},
    {"password_hash", TG_J_STR | TG_J_OBJ, "a string from `tlsgate secret hash`, or {\"file\": F}",
     NULL, NULL, TG_K_REQUIRED},
    {NULL, 0, NULL, NULL, NULL, 0},
};

static void parse_user(struct tg_config__ctx *c, json_t *obj, const char *ptr,
                       struct tg_admin_user *u)
{
    if (!json_is_object(obj)) {
        tg_config__error(c, ptr, "a user must be an object (got %s)",
                         tg_config__json_type_words(obj));
        return;
    }
    if (tg_config__check_keys(c, obj, ptr, user_keys) != 0)
        return;
    const char *name = json_string_value(json_object_get(obj, "name"));
    char *np = tg_config__ptr_join(ptr, "name");
    if (name[0] == '\0' || strchr(name, ':') != NULL)
        tg_config__error(c, np, "a user name must be non-empty without ':' (HTTP Basic)");
    u->name = tg_xstrdup(name);
    free(np);
    char *hp = tg_config__ptr_join(ptr, "password_hash");
    tg_config__parse_password(c, json_object_get(obj, "password_hash"), hp, &u->password_hash,
                              NULL);
    if (u->password_hash != NULL) {
        /* trailing newline of a hash file */
        size_t n = strlen(u->password_hash);
        while (n > 0 && (u->password_hash[n - 1] == '\n' || u->password_hash[n - 1] == '\r'))
            u->password_hash[--n] = '\0';
        if (strncmp(u->password_hash, "$scrypt$", 8) != 0 &&
            strncmp(u->password_hash, "$pbkdf2-sha256$", 15) != 0)
            tg_config__error(c, hp,
                             "not a password hash (make one with `tlsgate secret hash`: "
                             "\"$scrypt$...\" or \"$pbkdf2-sha256$...\")");
    }
    free(hp);
}

void tg_config__parse_admin(struct tg_config__ctx *c, json_t *obj)
{
    struct tg_config *cfg = c->cfg;
    struct tg_admin_conf *a = &cfg->admin;
    size_t idx = cfg->n_listeners;
    cfg->listeners = tg_xrealloc(cfg->listeners, (idx + 1) * sizeof(*cfg->listeners));
    memset(&cfg->listeners[idx], 0, sizeof(cfg->listeners[idx]));
    tg_config__parse_listener(c, obj, idx, true);
    cfg->n_listeners++;
    a->enabled = true;
    a->listener_idx = idx;
    a->max_body = 1024 * 1024;
    json_t *v = tg_config__get(obj, tg_config__admin_keys, "max_body");
    if (v != NULL) {
        json_int_t n = json_integer_value(v);
        if (n < 1024 || n > 64 * 1024 * 1024)
            tg_config__error(c, "/admin/max_body", "%lld is out of range (allowed: %s)",
                             (long long)n, tg_config__admin_keys[3].allowed);
        else
            a->max_body = (uint32_t)n;
    }
    json_t *users = tg_config__get(obj, tg_config__admin_keys, "users");
    size_t n = users ? json_array_size(users) : 0;
    a->users = tg_xcalloc(n ? n : 1, sizeof(*a->users));
    for (size_t i = 0; i < n; i++) {
        char *p = tg_config__ptr_index("/admin/users", i);
        parse_user(c, json_array_get(users, i), p, &a->users[i]);
        for (size_t j = 0; j < i; j++)
            if (a->users[i].name && a->users[j].name &&
                strcmp(a->users[i].name, a->users[j].name) == 0)
                tg_config__error(c, p, "user \"%s\" is listed twice", a->users[i].name);
        a->n_users++;
        free(p);
    }
    const struct tg_listener_conf *l = &cfg->listeners[idx];
    if (n == 0 && (l->tls.disabled || l->tls.client_auth.mode == TG_CAUTH_NONE))
        tg_config__error(c, "/admin",
                         "the admin API needs \"users\" (HTTP Basic) or tls.client_auth (client "
                         "certificates), or nobody could use it");
}

void tg_config__admin_free(struct tg_admin_conf *a)
{
    for (size_t i = 0; i < a->n_users; i++) {
        free(a->users[i].name);
        if (a->users[i].password_hash != NULL)
            OPENSSL_cleanse(a->users[i].password_hash, strlen(a->users[i].password_hash));
        free(a->users[i].password_hash);
    }
    free(a->users);
}
