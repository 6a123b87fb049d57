/* ACME answers (RFC 8555 §7.1): directory, order, authorization and problem documents, read from
 * untrusted bytes into the few fields the client uses, each checked for type and length. */
#include "tls/internal.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/core.h"

#define MAX_FIELD  2048 /* a URL, token or status longer than this is refused */
#define MAX_AUTHZS 100

/* The string member key of obj, copied; NULL if absent. -1 via *bad if present but not a
 * string of sane length. */
static char *str(json_t *obj, const char *key, bool *bad)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL)
        return NULL;
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > MAX_FIELD ||
        strlen(json_string_value(v)) != json_string_length(v)) {
        *bad = true;
        return NULL;
    }
    return tg_xstrdup(json_string_value(v));
}

void tg_acme__doc_free(struct tg_acme__doc *d)
{
    free(d->new_nonce);
    free(d->new_account);
    free(d->new_order);
    free(d->status);
    for (size_t i = 0; i < d->n_authzs; i++)
        free(d->authzs[i]);
    free(d->authzs);
    free(d->finalize);
    free(d->certificate);
    free(d->identifier);
    for (size_t i = 0; i < d->n_chals; i++) {
        free(d->chals[i].type);
        free(d->chals[i].url);
        free(d->chals[i].token);
        free(d->chals[i].status);
    }
    free(d->problem_type);
    free(d->problem_detail);
    memset(d, 0, sizeof(*d));
}

static void problem(json_t *obj, struct tg_acme__doc *d, bool *bad)
{
    if (!json_is_object(obj))
        return;
    d->problem_type = str(obj, "type", bad);
    json_t *det = json_object_get(obj, "detail");
    if (json_is_string(det)) {
        /* Kept for the log, cut and without control bytes. */
        size_t n = TG_MIN(json_string_length(det), (size_t)400);
        d->problem_detail = tg_xmalloc(n + 1);
        const char *s = json_string_value(det);
        for (size_t i = 0; i < n; i++)
            d->problem_detail[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? ' ' : s[i];
        d->problem_detail[n] = '\0';
    }
}

int tg_acme__parse(enum tg_acme__kind kind, const char *body, size_t len, struct tg_acme__doc *d,
                   char *why, size_t why_len)
{
    memset(d, 0, sizeof(*d));
    if (len > TG_ACME_MAX_RESP) {
        snprintf(why, why_len, "answer larger than %d bytes", TG_ACME_MAX_RESP);
        return -1;
    }
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL || !json_is_object(root)) {
        snprintf(why, why_len, "not a JSON object%s%.100s", root ? "" : ": ",
                 root ? "" : jerr.text);
        json_decref(root);
        return -1;
    }
    bool bad = false;
    const char *missing = NULL;
    switch (kind) {
    case TG_ACME_DIRECTORY:
        d->new_nonce = str(root, "newNonce", &bad);
        d->new_account = str(root, "newAccount", &bad);
        d->new_order = str(root, "newOrder", &bad);
        missing = !d->new_nonce     ? "newNonce"
                  : !d->new_account ? "newAccount"
                  : !d->new_order   ? "newOrder"
                                    : NULL;
        break;
    case TG_ACME_ORDER: {
        d->status = str(root, "status", &bad);
        d->finalize = str(root, "finalize", &bad);
        d->certificate = str(root, "certificate", &bad);
        json_t *az = json_object_get(root, "authorizations");
        if (!json_is_array(az) || json_array_size(az) > MAX_AUTHZS) {
            missing = "authorizations";
            break;
        }
        d->authzs = tg_xcalloc(json_array_size(az) + 1, sizeof(char *));
        for (size_t i = 0; i < json_array_size(az); i++) {
            json_t *e = json_array_get(az, i);
            if (!json_is_string(e) || json_string_length(e) > MAX_FIELD) {
                bad = true;
                break;
            }
            d->authzs[d->n_authzs++] = tg_xstrdup(json_string_value(e));
        }
        problem(json_object_get(root, "error"), d, &bad);
        missing = !d->status ? "status" : !d->finalize ? "finalize" : NULL;
        break;
    }
    case TG_ACME_AUTHZ: {
        d->status = str(root, "status", &bad);
        json_t *id = json_object_get(root, "identifier");
        if (json_is_object(id))
            d->identifier = str(id, "value", &bad);
        json_t *cs = json_object_get(root, "challenges");
        if (!json_is_array(cs)) {
            missing = "challenges";
            break;
        }
        for (size_t i = 0; i < json_array_size(cs) && d->n_chals < TG_ARRAY_SIZE(d->chals); i++) {
            json_t *e = json_array_get(cs, i);
            if (!json_is_object(e)) {
                bad = true;
                break;
            }
            bool cbad = false;
            char *type = str(e, "type", &cbad), *url = str(e, "url", &cbad);
            char *token = str(e, "token", &cbad), *st = str(e, "status", &cbad);
            if (type == NULL || url == NULL || cbad) {
                free(type);
                free(url);
                free(token);
                free(st);
                bad = bad || cbad;
                continue;
            }
            d->chals[d->n_chals].type = type;
            d->chals[d->n_chals].url = url;
            d->chals[d->n_chals].token = token;
            d->chals[d->n_chals].status = st;
            d->n_chals++;
            if (d->problem_type == NULL)
                problem(json_object_get(e, "error"), d, &bad);
        }
        missing = !d->status ? "status" : !d->identifier ? "identifier" : NULL;
        break;
    }
    case TG_ACME_PROBLEM:
        problem(root, d, &bad);
        missing = !d->problem_type ? "type" : NULL;
        break;
    }
    json_decref(root);
    if (bad || missing != NULL) {
        static const char *const what[] = {"directory", "order", "authorization", "problem"};
        if (missing != NULL)
            snprintf(why, why_len, "%s without a usable \"%s\"", what[kind], missing);
        else
            snprintf(why, why_len, "%s with a member of the wrong type or length", what[kind]);
        tg_acme__doc_free(d);
        return -1;
    }
    return 0;
}
