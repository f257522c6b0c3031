/* envelope.c - request head reader, response head writer (see envelope.h).
 *
 * msgpack, as far as the envelopes need it (big-endian lengths):
 *   0x00-0x7f fixint   0xcc-0xcf uint 8/16/32/64   0xd0-0xd3 int 8..64
 *   0xa0-0xbf fixstr   0xd9-0xdb str 8/16/32       0xc4-0xc6 bin 8/16/32
 *   0x90-0x9f fixarray 0xdc-0xdd array 16/32       (maps, floats, ext, nil,
 *   bool: only skipped, in items after the ninth)
 */
#include "pyworker/envelope.h"

#include <string.h>

#define ENV_MIN_ITEMS 9
#define ENV_SKIP_DEPTH 16

struct rd {
    const unsigned char *p, *end;
};

static inline uint32_t be16(const unsigned char *p)
{
    return (uint32_t)p[0] << 8 | p[1];
}

static inline uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Each reader: 0, -1 wrong type, -2 truncated. */

static int rd_uint(struct rd *r, uint64_t *v)
{
    const unsigned char *p = r->p;
    size_t have = (size_t)(r->end - p);
    unsigned n;

    if (have < 1)
        return -2;
    if (p[0] < 0x80) {
        *v = p[0];
        r->p = p + 1;
        return 0;
    }
    if (p[0] < 0xcc || p[0] > 0xcf)
        return -1;
    n = 1u << (p[0] - 0xcc);
    if (have < 1 + n)
        return -2;
    *v = 0;
    for (unsigned i = 1; i <= n; i++)
        *v = *v << 8 | p[i];
    r->p = p + 1 + n;
    return 0;
}

static inline __attribute__((always_inline)) int rd_str(struct rd *r, const char **s,
                                                       uint32_t *len)
{
    const unsigned char *p = r->p;
    size_t have = (size_t)(r->end - p), hdr;
    uint32_t n;

    if (have < 1)
        return -2;
    if (p[0] >= 0xa0 && p[0] <= 0xbf) {
        n = p[0] & 0x1f;
        hdr = 1;
    } else if (p[0] == 0xd9 || p[0] == 0xc4) {
        if (have < 2)
            return -2;
        n = p[1];
        hdr = 2;
    } else if (p[0] == 0xda || p[0] == 0xc5) {
        if (have < 3)
            return -2;
        n = be16(p + 1);
        hdr = 3;
    } else if (p[0] == 0xdb || p[0] == 0xc6) {
        if (have < 5)
            return -2;
        n = be32(p + 1);
        hdr = 5;
    } else {
        return -1;
    }
    if (have - hdr < n)
        return -2;
    *s = (const char *)p + hdr;
    *len = n;
    r->p = p + hdr + n;
    return 0;
}

static int rd_array(struct rd *r, uint32_t *n)
{
    const unsigned char *p = r->p;
    size_t have = (size_t)(r->end - p);

    if (have < 1)
        return -2;
    if (p[0] >= 0x90 && p[0] <= 0x9f) {
        *n = p[0] & 0x0f;
        r->p = p + 1;
        return 0;
    }
    if (p[0] == 0xdc) {
        if (have < 3)
            return -2;
        *n = be16(p + 1);
        r->p = p + 3;
        return 0;
    }
    if (p[0] == 0xdd) {
        if (have < 5)
            return -2;
        *n = be32(p + 1);
        r->p = p + 5;
        return 0;
    }
    return -1;
}

/* Skips one object of any type. */
static int rd_skip(struct rd *r, int depth)
{
    const unsigned char *p = r->p;
    size_t have = (size_t)(r->end - p), fixed = 0, lenbytes = 0, extra = 0;
    uint64_t items = 0;
    unsigned c;

    if (depth > ENV_SKIP_DEPTH)
        return -1;
    if (have < 1)
        return -2;
    c = p[0];
    if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3) {
        r->p = p + 1;
        return 0;
    }
    if (c >= 0xa0 && c <= 0xbf) {
        fixed = c & 0x1f;
    } else if (c >= 0x80 && c <= 0x8f) {
        items = 2u * (c & 0x0f);
    } else if (c >= 0x90 && c <= 0x9f) {
        items = c & 0x0f;
    } else {
        switch (c) {
        case 0xc4: case 0xd9: lenbytes = 1; break;
        case 0xc5: case 0xda: lenbytes = 2; break;
        case 0xc6: case 0xdb: lenbytes = 4; break;
        case 0xc7: lenbytes = 1; extra = 1; break;                 /* ext 8/16/32: + type */
        case 0xc8: lenbytes = 2; extra = 1; break;
        case 0xc9: lenbytes = 4; extra = 1; break;
        case 0xca: fixed = 4; break;
        case 0xcb: fixed = 8; break;
        case 0xcc: case 0xd0: fixed = 1; break;
        case 0xcd: case 0xd1: fixed = 2; break;
        case 0xce: case 0xd2: fixed = 4; break;
        case 0xcf: case 0xd3: fixed = 8; break;
        case 0xd4: fixed = 2; break;                               /* fixext: type + data */
        case 0xd5: fixed = 3; break;
        case 0xd6: fixed = 5; break;
        case 0xd7: fixed = 9; break;
        case 0xd8: fixed = 17; break;
        case 0xdc: case 0xde: lenbytes = 2; break;
        case 0xdd: case 0xdf: lenbytes = 4; break;
        default: return -1;                                        /* 0xc1: never used */
        }
    }
    p++;
    have--;
    if (lenbytes) {
        uint32_t n;

        if (have < lenbytes)
            return -2;
        n = lenbytes == 1 ? p[0] : lenbytes == 2 ? be16(p) : be32(p);
        p += lenbytes;
        have -= lenbytes;
        if (c == 0xdc || c == 0xdd)
            items = n;
        else if (c == 0xde || c == 0xdf)
            items = 2ull * n;
        else
            fixed = n + extra;
    }
    if (have < fixed)
        return -2;
    r->p = p + fixed;
    for (uint64_t i = 0; i < items; i++) {
        int rc = rd_skip(r, depth + 1);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* The n strings of an array: checked, skipped. */
static int rd_strings(struct rd *r, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        const char *s;
        uint32_t len;
        int rc = rd_str(r, &s, &len);

        if (rc < 0)
            return rc;
    }
    return 0;
}

int fa_env_parse(const void *buf, size_t len, struct fa_env *e, const char **why)
{
    struct rd r = {(const unsigned char *)buf, (const unsigned char *)buf + len};
    uint32_t items, n;
    uint64_t port, flags;
    int rc;

#define STEP(call, what)       \
    do {                       \
        if ((rc = (call)) < 0) { \
            *why = (what);     \
            return rc;         \
        }                      \
    } while (0)

    STEP(rd_array(&r, &items), "the head is not a msgpack array");
    if (items < ENV_MIN_ITEMS) {
        *why = "the head is an array of fewer than 9 items";
        return -1;
    }
    STEP(rd_uint(&r, &e->route_id), "route id is not an unsigned int");
    STEP(rd_str(&r, &e->method, &e->method_len), "method is not a string");
    STEP(rd_str(&r, &e->path, &e->path_len), "path is not a string");
    STEP(rd_str(&r, &e->query, &e->query_len), "query is not a string");
    STEP(rd_array(&r, &e->n_params), "params is not an array");
    e->params = r.p;
    STEP(rd_strings(&r, e->n_params), "a path parameter is not a string");
    STEP(rd_array(&r, &n), "headers is not an array");
    if (n & 1) {
        *why = "headers is not an array of name, value pairs";
        return -1;
    }
    e->n_headers = n / 2;
    e->headers = r.p;
    STEP(rd_strings(&r, n), "a header name or value is not a string");
    STEP(rd_str(&r, &e->host, &e->host_len), "client host is not a string");
    STEP(rd_uint(&r, &port), "client port is not an unsigned int");
    if (port > 65535) {
        *why = "client port is above 65535";
        return -1;
    }
    e->port = (uint32_t)port;
    STEP(rd_uint(&r, &flags), "flags is not an unsigned int");
    e->flags = (uint32_t)(flags & 0xff);   /* bits 0..2 defined; the rest reserved */
    for (uint32_t i = ENV_MIN_ITEMS; i < items; i++)   /* what a newer HTTP worker adds */
        STEP(rd_skip(&r, 0), "an item after the flags is not msgpack");
#undef STEP
    e->end = r.p;
    e->head_len = (size_t)(r.p - (const unsigned char *)buf);
    return 0;
}

const unsigned char *fa_env_str(const struct fa_env *e, const unsigned char *p, const char **s,
                                uint32_t *n)
{
    struct rd r = {p, e->end};

    if (rd_str(&r, s, n) < 0) {   /* cannot happen: fa_env_parse read it */
        *s = "";
        *n = 0;
    }
    return r.p;
}

/* ------------------------------------------------------------------ */
/* Writer                                                               */
/* ------------------------------------------------------------------ */

static inline int out_room(struct fa_env_out *o, size_t n)
{
    if (o->overflow || (size_t)(o->end - o->p) < n) {
        o->overflow = 1;
        return 0;
    }
    return 1;
}

static inline void put_be(char *p, uint64_t v, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        p[i] = (char)(v >> (8 * (n - 1 - i)));
}

void fa_env_put_array(struct fa_env_out *o, uint32_t n)
{
    if (n < 16) {
        if (out_room(o, 1))
            *o->p++ = (char)(0x90 | n);
    } else if (n < 65536) {
        if (out_room(o, 3)) {
            o->p[0] = (char)0xdc;
            put_be(o->p + 1, n, 2);
            o->p += 3;
        }
    } else if (out_room(o, 5)) {
        o->p[0] = (char)0xdd;
        put_be(o->p + 1, n, 4);
        o->p += 5;
    }
}

void fa_env_put_uint(struct fa_env_out *o, uint64_t v)
{
    unsigned n, tag;

    if (v < 128) {
        if (out_room(o, 1))
            *o->p++ = (char)v;
        return;
    }
    n = v < 256 ? 1 : v < 65536 ? 2 : v <= UINT32_MAX ? 4 : 8;
    tag = n == 1 ? 0xcc : n == 2 ? 0xcd : n == 4 ? 0xce : 0xcf;
    if (out_room(o, 1 + n)) {
        o->p[0] = (char)tag;
        put_be(o->p + 1, v, n);
        o->p += 1 + n;
    }
}

void fa_env_put_str(struct fa_env_out *o, const char *s, size_t n)
{
    size_t hdr = n < 32 ? 1 : n < 256 ? 2 : n < 65536 ? 3 : 5;

    if (n > UINT32_MAX || !out_room(o, hdr + n)) {
        o->overflow = 1;
        return;
    }
    if (hdr == 1) {
        o->p[0] = (char)(0xa0 | n);
    } else {
        o->p[0] = (char)(hdr == 2 ? 0xd9 : hdr == 3 ? 0xda : 0xdb);
        put_be(o->p + 1, n, (unsigned)hdr - 1);
    }
    memcpy(o->p + hdr, s, n);
    o->p += hdr + n;
}
