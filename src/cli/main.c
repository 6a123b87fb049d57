/* tlsgate entry point: dispatches to the verbs run, check, cert, secret, import, store and version.
 */
#include <stdio.h>
#include <string.h>

#include <jansson.h>
#include <nghttp2/nghttp2ver.h>
#include <openssl/crypto.h>
#include <openssl/opensslv.h>
#include <uv.h>

#include "cli/cli.h"
#include "core/core.h"
#include "tls/tls.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: tlsgate <command> [options]\n"
                 "\n"
                 "commands:\n"
                 "  run [-c FILE]        run the gateway (embedded default config without -c)\n"
                 "  check [-c FILE]      validate a config and print each listener's TLS policy\n"
                 "  cert ca|server|client  make development certificates\n"
                 "  secret encrypt|decrypt|hash  seal secrets to the internal keystore, hash "
                 "passwords\n"
                 "  import krakend|mgw|kaazing|corda|apim FILE [-o OUT]  another gateway's TLS "
                 "setup as a tlsgate config\n"
                 "  store push|pull|status -c FILE  seed, show and inspect the shared store "
                 "(etcd)\n"
                 "  version              print versions and build options\n"
                 "\n"
                 "Run 'tlsgate <command> --help' for a command's options.\n");
}

int tg_cli_version(int argc, char **argv)
{
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: tlsgate version\n\nPrints the tlsgate version, library versions and build "
               "options.\n");
        return TG_EXIT_OK;
    }
    printf("tlsgate %s\n", TG_VERSION);
    printf("OpenSSL: %s (built with %s)\n", OpenSSL_version(OPENSSL_VERSION), OPENSSL_VERSION_TEXT);
    printf("libuv: %s\n", uv_version_string());
    printf("jansson: %s\n", JANSSON_VERSION);
    printf("nghttp2: %s\n", NGHTTP2_VERSION);
    printf("build: C11%s%s%s\n",
#ifdef TG_SANITIZE
           ", AddressSanitizer+UBSan",
#else
           "",
#endif
           tg_fault_available() ? ", fault injection (TLSGATE_TEST_FAULT; a test build)" : "",
#ifdef NDEBUG
           ", NDEBUG"
#else
           ""
#endif
    );
    return TG_EXIT_OK;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return TG_EXIT_USAGE;
    }
    const char *verb = argv[1];
    tg_tls_secrets_init(); /* configs may hold "enc:" passwords */
    if (strcmp(verb, "run") == 0)
        return tg_cli_run(argc - 1, argv + 1);
    if (strcmp(verb, "check") == 0)
        return tg_cli_check(argc - 1, argv + 1);
    if (strcmp(verb, "cert") == 0)
        return tg_cli_cert(argc - 1, argv + 1);
    if (strcmp(verb, "secret") == 0)
        return tg_cli_secret(argc - 1, argv + 1);
    if (strcmp(verb, "import") == 0)
        return tg_cli_import(argc - 1, argv + 1);
    if (strcmp(verb, "store") == 0)
        return tg_cli_store(argc - 1, argv + 1);
    if (strcmp(verb, "version") == 0 || strcmp(verb, "--version") == 0)
        return tg_cli_version(argc - 1, argv + 1);
    if (strcmp(verb, "help") == 0 || strcmp(verb, "--help") == 0 || strcmp(verb, "-h") == 0) {
        usage(stdout);
        return TG_EXIT_OK;
    }
    fprintf(stderr, "tlsgate: unknown command '%s'\n\n", verb);
    usage(stderr);
    return TG_EXIT_USAGE;
}
