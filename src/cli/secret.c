/* The 'secret' verb: seals secrets to the internal keystore ("enc:" values), opens them again,
 * and makes admin password hashes. Secrets are read from stdin or a file, never from argv. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "cli/cli.h"
#include "config/config.h"
#include "core/core.h"
#include "tls/tls.h"

#define SECRET_MAX 65536

static void usage(FILE *f)
{
    fprintf(
        f, "usage: tlsgate secret encrypt -c FILE [--in F]\n"
           "       tlsgate secret decrypt -c FILE [--in F]\n"
           "       tlsgate secret hash [--password-file F]\n"
           "\n"
           "encrypt  reads a secret from stdin (or F; one trailing newline is dropped) and prints\n"
           "         an \"enc:\" value, usable wherever the config takes a password. It is sealed\n"
           "         to the key of the config's keystore named \"internal\" (docs/secrets.md).\n"
           "decrypt  reads an \"enc:\" value from stdin (or F) and prints the secret.\n"
           "hash     reads a password from stdin (or F) and prints an admin password_hash\n"
           "         (scrypt, parameters inside).\n"
           "Secrets are never taken from the command line. Exit status: 0, or 2 on any "
           "problem.\n");
}

/* Reads at most SECRET_MAX bytes into a fixed buffer (so no copy is left by reallocation), drops
 * one trailing newline (and a CR before it). */
static int read_input(const char *file, char *buf, size_t *len)
{
    int fd = file ? open(file, O_RDONLY | O_CLOEXEC) : STDIN_FILENO;
    size_t n = 0;
    int rc = 0;
    if (fd < 0)
        return -errno;
    for (;;) {
        if (n == SECRET_MAX) {
            rc = -EFBIG;
            break;
        }
        ssize_t r = read(fd, buf + n, SECRET_MAX - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = -errno;
            break;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    if (file != NULL)
        close(fd);
    if (n > 0 && buf[n - 1] == '\n')
        n--;
    if (n > 0 && buf[n - 1] == '\r')
        n--;
    buf[n] = '\0';
    *len = n;
    return rc;
}

static int with_internal(const char *verb, const char *config, const char *in)
{
    struct tg_config *cfg = NULL;
    struct tg_err err;
    char *buf = tg_xcalloc(SECRET_MAX + 1, 1);
    size_t len = 0;
    int rc = TG_EXIT_USAGE;

    tg_err_init(&err);
    if (config == NULL) {
        fprintf(stderr,
                "tlsgate secret %s: -c FILE is required (the config with the keystore "
                "named \"internal\")\n",
                verb);
        goto out;
    }
    if (tg_cli_load_config(config, &cfg, &err) != 0) {
        tg_err_print(&err, stderr);
        fprintf(stderr, "tlsgate secret %s: the config has errors\n", verb);
        goto out;
    }
    const struct tg_keystore_conf *internal = tg_config_keystore(cfg, "internal");
    if (internal == NULL) {
        fprintf(stderr, "tlsgate secret %s: %s has no keystore named \"internal\"\n", verb, config);
        goto out;
    }
    int r = read_input(in, buf, &len);
    if (r != 0) {
        fprintf(stderr, "tlsgate secret %s: cannot read %s: %s\n", verb, in ? in : "stdin",
                r == -EFBIG ? "more than 64 KiB" : strerror(-r));
        goto out;
    }
    char why[512] = "", *res = NULL;
    size_t res_len = 0;
    if (strcmp(verb, "encrypt") == 0) {
        if (len == 0) {
            fprintf(stderr, "tlsgate secret encrypt: the secret is empty\n");
            goto out;
        }
        if (tg_tls_secret_encrypt(internal, (const uint8_t *)buf, len, &res, why, sizeof(why)) !=
            0) {
            fprintf(stderr, "tlsgate secret encrypt: %s\n", why);
            goto out;
        }
        printf("%s\n", res);
        free(res);
    } else {
        /* Surrounding blanks are copy-and-paste noise, never part of a value. */
        char *v = buf;
        while (*v == ' ' || *v == '\t' || *v == '\n' || *v == '\r')
            v++;
        size_t vl = strlen(v);
        while (vl > 0 &&
               (v[vl - 1] == ' ' || v[vl - 1] == '\t' || v[vl - 1] == '\n' || v[vl - 1] == '\r'))
            v[--vl] = '\0';
        if (tg_tls_secret_decrypt(internal, v, &res, &res_len, why, sizeof(why)) != 0) {
            fprintf(stderr, "tlsgate secret decrypt: cannot decrypt: %s\n", why);
            goto out;
        }
        fwrite(res, 1, res_len, stdout);
        fputc('\n', stdout);
        OPENSSL_cleanse(res, res_len);
        free(res);
    }
    if (fflush(stdout) != 0)
        goto out;
    rc = TG_EXIT_OK;
out:
    OPENSSL_cleanse(buf, SECRET_MAX + 1);
    free(buf);
    tg_config_free(cfg);
    tg_err_close(&err);
    return rc;
}

static int hash(const char *in)
{
    char *buf = tg_xcalloc(SECRET_MAX + 1, 1), *res = NULL;
    size_t len = 0;
    int rc = TG_EXIT_USAGE;
    int r = read_input(in, buf, &len);
    if (r != 0) {
        fprintf(stderr, "tlsgate secret hash: cannot read %s: %s\n", in ? in : "stdin",
                r == -EFBIG ? "more than 64 KiB" : strerror(-r));
        goto out;
    }
    if (len == 0) {
        fprintf(stderr, "tlsgate secret hash: the password is empty\n");
        goto out;
    }
    if (tg_tls_password_hash(buf, len, &res) != 0) {
        fprintf(stderr, "tlsgate secret hash: OpenSSL cannot compute scrypt\n");
        goto out;
    }
    printf("%s\n", res);
    rc = TG_EXIT_OK;
out:
    free(res);
    OPENSSL_cleanse(buf, SECRET_MAX + 1);
    free(buf);
    return rc;
}

int tg_cli_secret(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"in", required_argument, NULL, 'i'},
        {"password-file", required_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config = NULL, *in = NULL;
    int c;

    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? TG_EXIT_USAGE : TG_EXIT_OK;
    }
    const char *verb = argv[1];
    bool is_hash = strcmp(verb, "hash") == 0;
    if (!is_hash && strcmp(verb, "encrypt") != 0 && strcmp(verb, "decrypt") != 0) {
        fprintf(stderr, "tlsgate secret: unknown command '%s' (encrypt, decrypt, hash)\n\n", verb);
        usage(stderr);
        return TG_EXIT_USAGE;
    }
    char **av = argv + 1; /* the verb stands as getopt's program name */
    int ac = argc - 1;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(ac, av, ":c:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config = optarg;
            break;
        case 'i':
        case 'p':
            if ((c == 'p') != is_hash) {
                fprintf(stderr, "tlsgate secret %s: use %s\n", verb,
                        is_hash ? "--password-file F" : "--in F");
                return TG_EXIT_USAGE;
            }
            in = optarg;
            break;
        case 'h':
            usage(stdout);
            return TG_EXIT_OK;
        case ':':
            fprintf(stderr, "tlsgate secret %s: %s needs a value\n", verb, av[optind - 1]);
            return TG_EXIT_USAGE;
        default:
            fprintf(stderr, "tlsgate secret %s: unknown option %s\n", verb, av[optind - 1]);
            return TG_EXIT_USAGE;
        }
    }
    if (optind < ac) {
        fprintf(stderr,
                "tlsgate secret %s: unexpected argument (secrets are read from stdin or a "
                "file, never from the command line)\n",
                verb);
        return TG_EXIT_USAGE;
    }
    if (is_hash)
        return hash(in);
    return with_internal(verb, config, in);
}
