/* The one escaping writer for everything the gateway logs or serves as JSON: client-controlled
 * bytes (SNI, method, target, Host, ALPN, certificate subjects) can never end a line, fake a field
 * or make a JSON line invalid. */
#ifndef TG_CORE_ESC_H
#define TG_CORE_ESC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Rules shared by both forms: well-formed UTF-8 (no overlongs, surrogates or code points above
 * U+10FFFF) is copied as is, except the C1 controls U+0080..U+009F and the line breaks U+2028 and
 * U+2029, which some readers split lines on. A byte that is not part of a well-formed sequence is
 * written as the text `\xHH` (in JSON as `\\xHH`, which decodes to `\xHH`). Output is cut only
 * between whole escapes and whole UTF-8 sequences, and is always NUL-terminated when cap > 0. */

/* Text form: escape `"` as `\"` (for values between quotes, and tokens). */
#define TG_ESC_QUOTES 0x1u
/* Text form: escape space as `\x20`, so an unquoted value can never fake `key=value` tokens. */
#define TG_ESC_SPACES 0x2u

/* Text form: `\\` and `\"` in s are escapes a producer already wrote (tg_esc_quote) and stay as
 * they are; any other `\` is still `\\`. For the error log, whose messages hold quoted values. */
#define TG_ESC_KEEP_PAIRS 0x4u

/* Writes s[0..len) for a value the text error log puts between quotes: `\` as `\\` and `"` as
 * `\"`, everything else as is (the log writer, with TG_ESC_KEEP_PAIRS, escapes the rest and
 * keeps these), so the value can never end its quotes early or escape the closing one. Cut only
 * between whole escapes; NUL-terminated when cap > 0. Returns the bytes written. */
size_t tg_esc_quote(char *dst, size_t cap, const char *s, size_t len);

/* Writes the JSON string body (no surrounding quotes) for s[0..len) into dst: `"` and `\`
 * backslashed, \b \f \n \r \t as short escapes, other controls and DEL as \u00XX. Returns the
 * number of bytes written, not counting the NUL. */
size_t tg_esc_json(char *dst, size_t cap, const char *s, size_t len);

/* Writes s[0..len) for a text log line into dst: `\` as `\\`, controls, DEL and each byte of an
 * escaped or invalid sequence as `\xHH`, plus what flags (TG_ESC_*) ask. Returns the number of
 * bytes written, not counting the NUL. */
size_t tg_esc_text(char *dst, size_t cap, const char *s, size_t len, unsigned flags);

/* A JSON object written into a caller's buffer; nothing is allocated. Whatever is added, the
 * result is one valid JSON object: a string value that does not fit is cut (see above), a member
 * or nested object that does not fit at all is left out. */
struct tg_jobj {
    char *buf;
    size_t cap;
    size_t len;
    unsigned depth; /* objects open, each owed a '}' (room for them is kept free) */
    unsigned skip;  /* nested objects left out for want of room, not yet ended */
    bool more;      /* the current object has a member: the next needs a comma */
};

/* Starts the object in buf (cap >= 4, room for "{}\n" and the NUL). */
void tg_jobj_init(struct tg_jobj *o, char *buf, size_t cap);
/* Adds "key":"s" with s escaped; s NULL adds "key":null. */
void tg_jobj_str(struct tg_jobj *o, const char *key, const char *s);
/* Adds "key":"s[0..len)", the escaped value cut to at most max bytes (SIZE_MAX: no limit). */
void tg_jobj_strn(struct tg_jobj *o, const char *key, const char *s, size_t len, size_t max);
void tg_jobj_int(struct tg_jobj *o, const char *key, int64_t v);
void tg_jobj_uint(struct tg_jobj *o, const char *key, uint64_t v);
/* Starts a nested object "key":{ ... closed by tg_jobj_end. */
void tg_jobj_begin(struct tg_jobj *o, const char *key);
void tg_jobj_end(struct tg_jobj *o);
/* Closes every open object, adds '\n' if newline, and returns the length (buf is
 * NUL-terminated). */
size_t tg_jobj_finish(struct tg_jobj *o, bool newline);

#endif
