/* Error log writer: formats into a stack buffer and emits each line with one write(2). */
#include "core/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static _Atomic int log_level = TG_LOG_INFO;
static int log_format = TG_LOG_TEXT;
static int log_fd = 2;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void tg_log_setup(enum tg_log_level level, enum tg_log_format format, int fd)
{
    atomic_store(&log_level, (int)level);
    log_format = format;
    log_fd = fd;
}

void tg_log_set_level(enum tg_log_level level)
{
    atomic_store(&log_level, (int)level);
}

bool tg_log_enabled(enum tg_log_level level)
{
    return (int)level <= atomic_load_explicit(&log_level, memory_order_relaxed);
}

int tg_log_level_parse(const char *s, enum tg_log_level *out)
{
    for (size_t i = 0; i < TG_ARRAY_SIZE(level_names); i++)
        if (strcmp(s, level_names[i]) == 0) {
            *out = (enum tg_log_level)i;
            return 0;
        }
    if (strcmp(s, "warning") == 0) {
        *out = TG_LOG_WARN;
        return 0;
    }
    return -1;
}

static size_t json_escape(char *dst, size_t cap, const char *s)
{
    size_t n = 0;
    for (; *s && n + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            dst[n++] = '\\';
            dst[n++] = (char)c;
        } else if (c < 0x20) {
            n += (size_t)snprintf(dst + n, cap - n, "\\u%04x", c);
        } else {
            dst[n++] = (char)c;
        }
    }
    dst[n] = '\0';
    return n;
}

void tg_log(enum tg_log_level level, const char *fmt, ...)
{
    if (!tg_log_enabled(level))
        return;
    int saved = errno;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char ts[64];
    snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000));

    char line[4096 + 512];
    int n;
    if (log_format == TG_LOG_JSON) {
        char esc[4096];
        json_escape(esc, sizeof(esc), msg);
        n = snprintf(line, sizeof(line), "{\"time\":\"%s\",\"level\":\"%s\",\"msg\":\"%s\"}\n", ts,
                     level_names[level], esc);
    } else {
        for (char *p = msg; *p; p++)
            if (*p == '\n' || *p == '\r')
                *p = ' ';
        n = snprintf(line, sizeof(line), "%s [%s] %s\n", ts, level_names[level], msg);
    }
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof(line)) {
        n = (int)sizeof(line) - 1;
        line[n - 1] = '\n';
    }
    ssize_t w = write(log_fd, line, (size_t)n);
    (void)w;
    errno = saved;
}
