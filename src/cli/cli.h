/* Command-line verbs; each takes the arguments after the verb name and returns the exit code. */
#ifndef TG_CLI_CLI_H
#define TG_CLI_CLI_H

/* Exit codes of the product contract. */
#define TG_EXIT_OK      0
#define TG_EXIT_RUNTIME 1
#define TG_EXIT_USAGE   2

struct tg_config;
struct tg_err;

/* Loads file, or (file NULL) the embedded default with its certificate in $TLSGATE_STATE_DIR
 * (default ./tlsgate-state), made if missing and renewed when fewer than 30 days are left. 0, or
 * -errno with the problems in err. */
int tg_cli_load_config(const char *file, struct tg_config **out, struct tg_err *err);

int tg_cli_run(int argc, char **argv);     /* cli/run.c */
int tg_cli_check(int argc, char **argv);   /* cli/check.c */
int tg_cli_cert(int argc, char **argv);    /* cli/cert.c */
int tg_cli_secret(int argc, char **argv);  /* cli/secret.c */
int tg_cli_import(int argc, char **argv);  /* cli/import.c */
int tg_cli_version(int argc, char **argv); /* cli/main.c */
int tg_cli_store(int argc, char **argv);   /* cli/store.c */

#endif
