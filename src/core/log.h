/* Error log: one line per event, text or JSON, written with a single write(2) so threads never
 * interleave. */
#ifndef TG_CORE_LOG_H
#define TG_CORE_LOG_H

#include <stdbool.h>
#include <stdint.h>

#include "core/core.h"

enum tg_log_level { TG_LOG_ERROR = 0, TG_LOG_WARN = 1, TG_LOG_INFO = 2, TG_LOG_DEBUG = 3 };
enum tg_log_format { TG_LOG_TEXT = 0, TG_LOG_JSON = 1 };

/* Sets level, format and destination fd (default: stderr, info, text). Call before threads start.
 */
void tg_log_setup(enum tg_log_level level, enum tg_log_format format, int fd);
void tg_log_set_level(enum tg_log_level level);
bool tg_log_enabled(enum tg_log_level level);
/* Logs one message; the message must not contain secrets. */
void tg_log(enum tg_log_level level, const char *fmt, ...) TG_PRINTF(2, 3);
/* Error-log lines lost to failed writes (a full disk) since start. Once a write works again, one
 * line says how many are missing. */
uint64_t tg_log_lost(void);
/* Parses "error", "warn", "info", "debug"; returns 0 or -1. */
int tg_log_level_parse(const char *s, enum tg_log_level *out);

#define tg_log_error(...) tg_log(TG_LOG_ERROR, __VA_ARGS__)
#define tg_log_warn(...)  tg_log(TG_LOG_WARN, __VA_ARGS__)
#define tg_log_info(...)                                                                           \
    do {                                                                                           \
        if (tg_log_enabled(TG_LOG_INFO))                                                           \
            tg_log(TG_LOG_INFO, __VA_ARGS__);                                                      \
    } while (0)
#define tg_log_debug(...)                                                                          \
    do {                                                                                           \
        if (tg_log_enabled(TG_LOG_DEBUG))                                                          \
            tg_log(TG_LOG_DEBUG, __VA_ARGS__);                                                     \
    } while (0)

#endif
