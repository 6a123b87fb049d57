/* Source documents of other gateways as JSON trees with each key's line: a strict TOML 1.0
 * parser of ours (micro-gw.conf, deployment.toml) and line tables for JSON texts. */
#ifndef TG_CONFIG_TOML_H
#define TG_CONFIG_TOML_H

#include <stddef.h>

#include <jansson.h>

/* One key or value of a document, named by its JSON pointer (RFC 6901). */
struct tg_doc_pos {
    char *ptr;
    int line, col; /* 1-based; col counts bytes */
};

/* The positions of one document, in the order they were met. */
struct tg_doc_lines {
    struct tg_doc_pos *v;
    size_t n, cap;
};

/* Where and why a TOML text was refused. */
struct tg_toml_error {
    int line, col;
    char msg[200];
};

/* Parses TOML 1.0 from buf (len bytes, need not be NUL-terminated) into a JSON object: tables
 * and inline tables become objects, arrays and arrays of tables arrays, strings (all four
 * kinds) strings, integers and floats numbers, booleans booleans. Dates and times, duplicate
 * keys, tables defined twice and any syntax error are refused. On success returns 0 and sets
 * *out (caller frees with json_decref) and, when lines is not NULL, appends each key's position
 * to it; on failure returns -EINVAL with err filled and *out NULL. lines is freed by the caller
 * in every case. */
int tg_config_toml_parse(const char *buf, size_t len, json_t **out, struct tg_doc_lines *lines,
                         struct tg_toml_error *err);

/* Appends the position of each key (object members) and array element of a JSON text to
 * lines; 0, or -EINVAL if the text is not valid JSON (positions met before the error kept). */
int tg_config_json_lines(const char *text, size_t len, struct tg_doc_lines *lines);

/* The position of ptr in lines: 0, or -ENOENT. */
int tg_config_doc_find(const struct tg_doc_lines *lines, const char *ptr, int *line, int *col);

void tg_config_doc_lines_free(struct tg_doc_lines *lines);

#endif
