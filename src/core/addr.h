/* Socket address helpers shared by config (resolving) and net (listeners, peers). */
#ifndef TG_CORE_ADDR_H
#define TG_CORE_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Formats an address as "1.2.3.4:5" or "[::1]:5". */
void tg_addr_format(const struct sockaddr_storage *ss, char *buf, size_t len);
/* Parses what tg_addr_format writes ("1.2.3.4:5" or "[::1]:5", numeric only) into *out; 0, or
 * -EINVAL when s is not such an address. */
int tg_addr_parse_numeric(const char *s, struct sockaddr_storage *out);
/* An IPv4 or IPv6 address and port in 20 bytes, for what is kept per connection (a peer's
 * address as text takes up to 48). family: AF_INET, AF_INET6, or 0 for anything else; addr in
 * network order (4 bytes used for IPv4); port in host order. */
struct tg_addr_packed {
    uint8_t family;
    uint16_t port;
    uint8_t addr[16];
};
/* Room for the text of any address (tg_addr_format's longest, "[v6]:port", and its NUL). */
#define TG_ADDR_STRLEN 48
void tg_addr_pack(const struct sockaddr_storage *ss, struct tg_addr_packed *out);
void tg_addr_unpack(const struct tg_addr_packed *p, struct sockaddr_storage *out);
/* What tg_addr_format writes for the unpacked address, into buf (TG_ADDR_STRLEN bytes); returns
 * buf. */
const char *tg_addr_packed_str(const struct tg_addr_packed *p, char *buf);
/* The address alone ("1.2.3.4", "::1", "unknown") into buf (TG_ADDR_STRLEN bytes); its length. */
size_t tg_addr_packed_ip(const struct tg_addr_packed *p, char *buf);
/* Same family, address and port. */
bool tg_addr_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b);

/* An address block: "10.0.0.0/8", "2001:db8::/32", or one address (all bits). */
struct tg_cidr {
    sa_family_t family; /* AF_INET or AF_INET6 */
    uint8_t addr[16];   /* network order; bits past `bits` are zero */
    uint8_t bits;
};

/* Parses s into *out; 0, or -1 with a reason in *why (a static string). */
int tg_cidr_parse(const char *s, struct tg_cidr *out, const char **why);
/* Whether ss (IPv4, IPv6, or IPv4-mapped IPv6) lies in c. */
bool tg_cidr_match(const struct tg_cidr *c, const struct sockaddr_storage *ss);

#endif
