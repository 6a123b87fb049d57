/* libFuzzer harness for ACME answers (directory, order, authorization, problem documents): the
 * first byte picks the kind, the rest is the body. Parsing never crashes; a refusal says why; an
 * accepted document has the fields its kind requires, within their limits; parsing is
 * deterministic. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tls/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(enum tg_acme__kind kind, const struct tg_acme__doc *d)
{
    switch (kind) {
    case TG_ACME_DIRECTORY:
        if (!d->new_nonce || !d->new_account || !d->new_order)
            abort();
        break;
    case TG_ACME_ORDER:
        if (!d->status || !d->finalize || (d->n_authzs > 0 && d->authzs == NULL))
            abort();
        for (size_t i = 0; i < d->n_authzs; i++)
            if (d->authzs[i] == NULL)
                abort();
        break;
    case TG_ACME_AUTHZ:
        if (!d->status || !d->identifier || d->n_chals > 8)
            abort();
        for (size_t i = 0; i < d->n_chals; i++)
            if (!d->chals[i].type || !d->chals[i].url)
                abort();
        break;
    case TG_ACME_PROBLEM:
        if (!d->problem_type)
            abort();
        break;
    }
    if (d->problem_detail != NULL)
        for (const char *p = d->problem_detail; *p; p++)
            if ((unsigned char)*p < 0x20)
                abort(); /* control bytes never reach the log */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    enum tg_acme__kind kind = (enum tg_acme__kind)(data[0] % 4);
    const char *body = (const char *)data + 1;
    size_t len = size - 1;
    struct tg_acme__doc d, d2;
    char why[300] = "", why2[300] = "";
    int rc = tg_acme__parse(kind, body, len, &d, why, sizeof(why));
    int rc2 = tg_acme__parse(kind, body, len, &d2, why2, sizeof(why2));
    if (rc != rc2)
        abort();
    if (rc != 0) {
        if (why[0] == '\0' || strcmp(why, why2) != 0)
            abort();
        return 0;
    }
    check(kind, &d);
    if ((d.status == NULL) != (d2.status == NULL) || d.n_authzs != d2.n_authzs ||
        d.n_chals != d2.n_chals)
        abort();
    tg_acme__doc_free(&d);
    tg_acme__doc_free(&d2);
    return 0;
}
