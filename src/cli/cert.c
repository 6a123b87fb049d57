/* Placeholder for the 'cert' verb until its implementation lands. */
#include <stdio.h>

#include "cli/cli.h"

int tg_cli_cert(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "tlsgate: 'cert' is not built yet\n");
    return TG_EXIT_RUNTIME;
}
