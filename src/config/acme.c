/* The top-level "acme" section and keystores of type "acme" (their names; their files live in
 * the state directory). */
#include "config/internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "core/core.h"

static const struct tg_config__key acme_keys[] = {
    {"directory", TG_J_STR, "a string (URL)", NULL, "an https:// URL", TG_K_REQUIRED},
    {"email", TG_J_STR, "a string", "none", NULL, 0},
    {"truststore", TG_J_STR, "a string (truststore name)", "\"system\"", NULL, 0},
    {"challenges", TG_J_ARR, "a list of strings", "[\"tls-alpn-01\", \"http-01\"]",
     "tls-alpn-01, http-01", 0},
    {"key_type", TG_J_STR, "a string", "\"ec-p256\"", "ec-p256, rsa-2048", 0},
    {"renew_before_days", TG_J_INT, "an integer", "30 (or a third of a short lifetime)", "1..3650",
     0},
    {"eab", TG_J_OBJ, "an object", "none", NULL, 0},
    {NULL, 0, NULL, NULL, NULL, 0},
};

static const struct tg_config__key eab_keys[] = {
    {"kid", TG_J_STR, "a string", NULL, NULL, TG_K_REQUIRED},
    {"hmac_key", TG_J_STR | TG_J_OBJ,
     "a string, {\"file\": F}, {\"env\": NAME} or an \"enc:\" value", NULL, NULL, TG_K_REQUIRED},
    {NULL, 0, NULL, NULL, NULL, 0},
};

static const struct tg_config__key acme_keystore_keys[] = {
    {"type", TG_J_STR, "a string", NULL, "acme", TG_K_REQUIRED},
    {"names", TG_J_ARR, "a list of DNS names", NULL, "at least one", TG_K_REQUIRED},
    {NULL, 0, NULL, NULL, NULL, 0},
};

/* A DNS name an ACME server can validate: letters, digits, '-', dots between labels. */
static bool dns_name_ok(const char *s)
{
    size_t n = strlen(s), label = 0;
    if (n == 0 || n > 253 || s[0] == '.' || s[n - 1] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '.') {
            if (label == 0)
                return false;
            label = 0;
            continue;
        }
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-'))
            return false;
        if (++label > 63)
            return false;
    }
    return true;
}

void tg_config__parse_acme_keystore(struct tg_config__ctx *c, json_t *obj,
                                    struct tg_keystore_conf *ks)
{
    tg_config__check_keys(c, obj, ks->path, acme_keystore_keys);
    json_t *names = tg_config__get(obj, acme_keystore_keys, "names");
    char *nptr = tg_config__ptr_join(ks->path, "names");
    if (names != NULL && json_array_size(names) == 0)
        tg_config__error(c, nptr, "must list at least one DNS name");
    if (names != NULL) {
        ks->names = tg_xcalloc(json_array_size(names) + 1, sizeof(char *));
        size_t i;
        json_t *v;
        json_array_foreach(names, i, v)
        {
            char idx[24];
            snprintf(idx, sizeof(idx), "%zu", i);
            char *eptr = tg_config__ptr_join(nptr, idx);
            if (!json_is_string(v))
                tg_config__error(c, eptr, "must be a string (got %s)",
                                 tg_config__json_type_words(v));
            else if (!dns_name_ok(json_string_value(v)))
                tg_config__error(c, eptr,
                                 "\"%s\" is not a DNS name an ACME server can validate (lower "
                                 "case letters, digits, '-', labels separated by dots; no "
                                 "wildcards)",
                                 json_string_value(v));
            else
                ks->names[ks->n_names++] = tg_xstrdup(json_string_value(v));
            free(eptr);
        }
    }
    free(nptr);
    ks->cert_file = tg_xasprintf("%s/acme/%s.crt", c->cfg->state_dir, ks->name);
    ks->key_file = tg_xasprintf("%s/acme/%s.key", c->cfg->state_dir, ks->name);
}

void tg_config__parse_acme(struct tg_config__ctx *c, json_t *obj)
{
    struct tg_acme_conf *a = &c->cfg->acme;
    a->truststore_idx = SIZE_MAX;
    a->challenges[0] = TG_ACME_TLS_ALPN;
    a->challenges[1] = TG_ACME_HTTP;
    a->renew_before_days = -1;
    if (obj == NULL)
        return;
    a->enabled = true;
    tg_config__check_keys(c, obj, "/acme", acme_keys);
    json_t *v = tg_config__get(obj, acme_keys, "directory");
    if (v != NULL) {
        const char *s = json_string_value(v);
        if (strncmp(s, "https://", 8) != 0 || s[8] == '\0')
            tg_config__error(c, "/acme/directory",
                             "\"%s\" is not an https:// URL (ACME servers are reached over "
                             "HTTPS)",
                             s);
        else
            a->directory = tg_xstrdup(s);
    }
    v = tg_config__get(obj, acme_keys, "email");
    if (v != NULL) {
        const char *s = json_string_value(v);
        const char *at = strchr(s, '@');
        if (at == NULL || at == s || at[1] == '\0' || strpbrk(s, " \t\r\n,<>") != NULL)
            tg_config__error(c, "/acme/email", "\"%s\" is not an email address", s);
        else
            a->email = tg_xstrdup(s);
    }
    v = tg_config__get(obj, acme_keys, "truststore");
    if (v != NULL && strcmp(json_string_value(v), "system") != 0) {
        const char *s = json_string_value(v);
        for (size_t i = 0; i < c->cfg->n_truststores; i++)
            if (strcmp(c->cfg->truststores[i].name, s) == 0)
                a->truststore_idx = i;
        if (a->truststore_idx == SIZE_MAX)
            tg_config__error(c, "/acme/truststore",
                             "\"%s\" is not a truststore (define it under truststores, or use "
                             "\"system\")",
                             s);
        else
            a->truststore = tg_xstrdup(s);
    }
    v = tg_config__get(obj, acme_keys, "challenges");
    if (v != NULL) {
        size_t i, n = 0;
        json_t *e;
        a->challenges[0] = a->challenges[1] = 0;
        if (json_array_size(v) == 0)
            tg_config__error(c, "/acme/challenges", "must list at least one challenge type");
        json_array_foreach(v, i, e)
        {
            char ptr[48];
            snprintf(ptr, sizeof(ptr), "/acme/challenges/%zu", i);
            const char *s = json_is_string(e) ? json_string_value(e) : "";
            int t = strcmp(s, "tls-alpn-01") == 0 ? TG_ACME_TLS_ALPN
                    : strcmp(s, "http-01") == 0   ? TG_ACME_HTTP
                                                  : 0;
            if (t == 0)
                tg_config__error(c, ptr,
                                 "\"%s\" is not a challenge type tlsgate answers (allowed: "
                                 "tls-alpn-01, http-01)",
                                 s);
            else if (n < 2 && (n == 0 || a->challenges[0] != t))
                a->challenges[n++] = t;
            else
                tg_config__error(c, ptr, "\"%s\" is listed twice", s);
        }
    }
    v = tg_config__get(obj, acme_keys, "key_type");
    if (v != NULL) {
        const char *s = json_string_value(v);
        if (strcmp(s, "rsa-2048") == 0)
            a->rsa_bits = 2048;
        else if (strcmp(s, "ec-p256") != 0)
            tg_config__error(c, "/acme/key_type",
                             "\"%s\" is not a key type (allowed: ec-p256, rsa-2048)", s);
    }
    v = tg_config__get(obj, acme_keys, "renew_before_days");
    if (v != NULL) {
        json_int_t d = json_integer_value(v);
        if (d < 1 || d > 3650)
            tg_config__error(c, "/acme/renew_before_days", "must be 1..3650 (got %lld)",
                             (long long)d);
        else
            a->renew_before_days = (int)d;
    }
    v = tg_config__get(obj, acme_keys, "eab");
    if (v != NULL) {
        tg_config__check_keys(c, v, "/acme/eab", eab_keys);
        json_t *k = tg_config__get(v, eab_keys, "kid");
        if (k != NULL)
            a->eab_kid = tg_xstrdup(json_string_value(k));
        k = tg_config__get(v, eab_keys, "hmac_key");
        if (k != NULL)
            tg_config__parse_password(c, k, "/acme/eab/hmac_key", &a->eab_hmac_key, NULL);
    }
}

/* After keystores and the acme section: an acme keystore needs the section. */
void tg_config__check_acme(struct tg_config__ctx *c)
{
    for (size_t i = 0; i < c->cfg->n_keystores; i++) {
        const struct tg_keystore_conf *ks = &c->cfg->keystores[i];
        if (ks->type != NULL && strcmp(ks->type, "acme") == 0 && !c->cfg->acme.enabled) {
            char *tptr = tg_config__ptr_join(ks->path, "type");
            tg_config__error(c, tptr,
                             "keystore \"%s\" is of type acme, but there is no top-level "
                             "\"acme\" section (it needs at least \"directory\")",
                             ks->name);
            free(tptr);
        }
    }
}

void tg_config__acme_free(struct tg_acme_conf *a)
{
    free(a->directory);
    free(a->email);
    free(a->truststore);
    free(a->eab_kid);
    if (a->eab_hmac_key != NULL)
        OPENSSL_cleanse(a->eab_hmac_key, strlen(a->eab_hmac_key));
    free(a->eab_hmac_key);
}
