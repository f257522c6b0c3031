/* envelope.h - the heads of the messages a Python worker exchanges with the
 * HTTP workers (PROTOCOL.md, "Envelopes"): a reader for the request head
 * and a writer for the response head. The subset of msgpack they use, read
 * and written in place: no allocation, no library call per field.
 *
 *   request head   [route_id, method, path, query, [param...],
 *                   [name, value, ...], client_host, client_port, flags, ...]
 *   response head  [status, [name, value, ...]]
 *
 * The reader trusts nothing: the bytes come from another process. Strings
 * may be msgpack str or bin; items after the ninth are skipped (a newer HTTP
 * worker may add some).
 */
#ifndef FA_PYWORKER_ENVELOPE_H
#define FA_PYWORKER_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>

/* A parsed request head. The pointers point into the parsed buffer. */
struct fa_env {
    uint64_t route_id;
    const char *method, *path, *query, *host;
    uint32_t method_len, path_len, query_len, host_len;
    uint32_t port;
    uint32_t flags;                   /* bit 0 keep-alive, 1 HEAD, 2 HTTP/1.0 */
    uint32_t n_params;                /* strings at `params` */
    uint32_t n_headers;               /* name/value pairs at `headers` */
    const unsigned char *params;      /* read them with fa_env_str */
    const unsigned char *headers;
    const unsigned char *end;         /* end of the parsed head */
    size_t head_len;                  /* bytes of the head: the body follows */
};

/* Parses the request head at the start of buf[0..len). 0; -1 malformed
 * (*why says what, a static string); -2 truncated (the head goes on past
 * len: parse again with more bytes). */
int fa_env_parse(const void *buf, size_t len, struct fa_env *e, const char **why);

/* Reads the string at p, one of e's params or headers that fa_env_parse
 * accepted; returns the position after it. */
const unsigned char *fa_env_str(const struct fa_env *e, const unsigned char *p, const char **s,
                                uint32_t *n);

/* The response head writer: appends to [p, end); `overflow` once it did
 * not fit (what was written is then garbage). */
struct fa_env_out {
    char *p;
    char *end;
    int overflow;
};

void fa_env_put_array(struct fa_env_out *o, uint32_t n);
void fa_env_put_uint(struct fa_env_out *o, uint64_t v);
void fa_env_put_str(struct fa_env_out *o, const char *s, size_t n);

#endif
