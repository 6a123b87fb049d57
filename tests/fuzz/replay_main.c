/* Replays a fuzz corpus (files or directories given as arguments) through LLVMFuzzerTestOneInput.
 * A -dict=FILE argument reads a libFuzzer dictionary as libFuzzer does (a malformed line fails the
 * replay, so a broken dictionary never reaches a campaign) and runs each entry as an input.
 */
#include <ctype.h>
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        return -1;
    }
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 4096;
            buf = realloc(buf, cap);
            if (buf == NULL)
                abort();
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        if (n == 0)
            break;
        len += n;
    }
    fclose(f);
    LLVMFuzzerTestOneInput(buf, len);
    free(buf);
    return 0;
}

static int run_path(const char *path, unsigned *count)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        perror(path);
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        ++*count;
        return run_file(path);
    }
    DIR *d = opendir(path);
    if (d == NULL) {
        perror(path);
        return -1;
    }
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char sub[4096];
        snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
        if (run_path(sub, count) != 0)
            rc = -1;
    }
    closedir(d);
    return rc;
}

static int hexval(int c)
{
    return isdigit(c) ? c - '0' : tolower(c) - 'a' + 10;
}

/* One dictionary line: [name=]"value" with \\, \" and \xHH escapes. Returns the value's length
 * in out, 0 for a blank or comment line, -1 for a malformed one. */
static long dict_line(const char *line, uint8_t *out)
{
    while (*line == ' ' || *line == '\t')
        line++;
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    if (n == 0 || line[0] == '#')
        return 0;
    const char *q = memchr(line, '"', n);
    if (q == NULL || line[n - 1] != '"' || q == line + n - 1)
        return -1;
    long len = 0;
    const char *end = line + n - 1; /* the closing quote */
    for (const char *p = q + 1; p < end; p++) {
        if (*p != '\\') {
            out[len++] = (uint8_t)*p;
        } else if (p + 1 < end && (p[1] == '\\' || p[1] == '"')) {
            out[len++] = (uint8_t) * ++p;
        } else if (p[1] == 'x' && p + 3 < end && isxdigit((unsigned char)p[2]) &&
                   isxdigit((unsigned char)p[3])) {
            out[len++] = (uint8_t)(hexval((unsigned char)p[2]) * 16 + hexval((unsigned char)p[3]));
            p += 3;
        } else {
            return -1;
        }
    }
    return len == 0 ? -1 : len;
}

static int run_dict(const char *path, unsigned *count)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        perror(path);
        return -1;
    }
    char line[4096];
    uint8_t value[4096];
    int rc = 0, lineno = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        lineno++;
        long n = dict_line(line, value);
        if (n < 0) {
            fprintf(stderr, "%s:%d: not a dictionary entry ([name=]\"value\")\n", path, lineno);
            rc = -1;
        } else if (n > 0) {
            uint8_t *copy = malloc((size_t)n); /* exact size, for ASan */
            if (copy == NULL)
                abort();
            memcpy(copy, value, (size_t)n);
            LLVMFuzzerTestOneInput(copy, (size_t)n);
            free(copy);
            ++*count;
        }
    }
    fclose(f);
    return rc;
}

int main(int argc, char **argv)
{
    unsigned count = 0;
    int rc = 0;
    for (int i = 1; i < argc; i++) {
        int r = strncmp(argv[i], "-dict=", 6) == 0 ? run_dict(argv[i] + 6, &count)
                                                   : run_path(argv[i], &count);
        if (r != 0)
            rc = 1;
    }
    printf("replayed %u inputs\n", count);
    if (count == 0) {
        fprintf(stderr, "no corpus inputs found\n");
        return 1;
    }
    return rc;
}
