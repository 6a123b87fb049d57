/* Config loading shared by `run` (start and reload) and `check`: a file, or the embedded default.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin.h"
#include "cli/cli.h"
#include "core/log.h"
#include "tls/tls.h"

static void log_renewal(const char *state, const struct tg_cert_default_info *info)
{
    char why[64];
    switch (info->found) {
    case TG_CERT_DEFAULT_OK:
    case TG_CERT_DEFAULT_MISSING: /* first start: nothing was replaced */
        return;
    case TG_CERT_DEFAULT_EXPIRING:
        snprintf(why, sizeof(why), "had %d day(s) left", info->days_left);
        break;
    case TG_CERT_DEFAULT_EXPIRED:
        snprintf(why, sizeof(why), "had expired");
        break;
    case TG_CERT_DEFAULT_NOT_YET_VALID:
        snprintf(why, sizeof(why), "was not valid yet");
        break;
    case TG_CERT_DEFAULT_UNUSABLE:
        snprintf(why, sizeof(why), "or its key could not be used");
        break;
    }
    tg_log_info("default certificate %s/default.crt %s: renewed with a new key, valid until %s",
                state, why, info->not_after);
}

int tg_cli_load_config(const char *file, struct tg_config **out, struct tg_err *err)
{
    if (file != NULL)
        return tg_config_load_file(file, out, err);
    const char *state = getenv("TLSGATE_STATE_DIR");
    if (state == NULL || state[0] == '\0')
        state = "./tlsgate-state";
    /* The default's keystore is <state>/default.crt and default.key, made on first use and
     * renewed here (start, reload, check) before it comes close to expiring. */
    struct tg_cert_default_info info;
    if (tg_cert_ensure_default(state, &info, err) != 0)
        return -EINVAL;
    log_renewal(state, &info);
    if (tg_cert_ensure_named(state, "admin", NULL, err) != 0 ||
        tg_admin_ensure_password(state, stderr, err) != 0)
        return -EINVAL;
    return tg_config_load_string(tg_config_default_json, strlen(tg_config_default_json),
                                 "<embedded default>", state, out, err);
}
