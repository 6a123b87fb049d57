/* Placeholder for the 'run' verb until its implementation lands. */
#include <stdio.h>

#include "cli/cli.h"

int tg_cli_run(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "tlsgate: 'run' is not built yet\n");
    return TG_EXIT_RUNTIME;
}
