/* Placeholder for the 'check' verb until its implementation lands. */
#include <stdio.h>

#include "cli/cli.h"

int tg_cli_check(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "tlsgate: 'check' is not built yet\n");
    return TG_EXIT_RUNTIME;
}
