/* Config loading shared by `run` (start and reload) and `check`: a file, or the embedded default.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "tls/tls.h"

int tg_cli_load_config(const char *file, struct tg_config **out, struct tg_err *err)
{
    if (file != NULL)
        return tg_config_load_file(file, out, err);
    const char *state = getenv("TLSGATE_STATE_DIR");
    if (state == NULL || state[0] == '\0')
        state = "./tlsgate-state";
    /* The default's keystore is <state>/default.crt and default.key, made on first use. */
    if (tg_cert_ensure_default(state, err) != 0)
        return -EINVAL;
    return tg_config_load_string(tg_config_default_json, strlen(tg_config_default_json),
                                 "<embedded default>", state, out, err);
}
