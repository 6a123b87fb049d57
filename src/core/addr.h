/* Socket address helpers shared by config (resolving) and net (listeners, peers). */
#ifndef TG_CORE_ADDR_H
#define TG_CORE_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* Formats an address as "1.2.3.4:5" or "[::1]:5". */
void tg_addr_format(const struct sockaddr_storage *ss, char *buf, size_t len);
/* Same family, address and port. */
bool tg_addr_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b);

#endif
