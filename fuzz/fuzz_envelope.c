/* fuzz_envelope.c - libFuzzer target: the request envelope decoder of the
 * Python worker: pyworker/envelope.c (fa_env_parse, fa_env_str, the real
 * functions) behind a copy of serve.c's serve__parse_head, which gathers a
 * head that spans chunks (a static function; keep the copy in step), and
 * serve__body's location of the body.
 *
 * Input: 1 byte chunk size selector, 1 byte of "early end" policy, then the
 * message as an HTTP worker writes it into its arena (PROTOCOL.md:
 * msgpack array head, then the raw body). The message is cut into chunks as
 * fa_msg_write/fa_msg_reserve would, each chunk in its own exact-size heap
 * block, so ASan sees any read past a chunk, and the decoder runs over the
 * resulting iovecs exactly as serve.c does after fa_msg_iov.
 *
 * Checks beyond ASan: the head length lies within the message; every string
 * the decoder hands on lies inside one chunk or inside the gather buffer;
 * the body located for the handler is exactly the bytes after the head; and
 * a head that fa_env_parse accepts is valid msgpack with the same fields and
 * the same length for msgpack-c (the library the HTTP worker packs it with).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include <msgpack.h>

#include "pyworker/envelope.h"

#define MAX_CHUNKS 256

static void fz_fail(const char *what)
{
    fprintf(stderr, "fuzz_envelope: %s\n", what);
    abort();
}

/* The decoder's state that serve.c keeps in struct serve. */
struct dec {
    struct iovec iov[MAX_CHUNKS];
    msgpack_zone zone;          /* for the msgpack-c cross-check only */
    char *gather;
    size_t gather_cap;
};

/* ---- copied from pyworker/serve.c --------------------------------------- */

static int serve__parse_head(struct dec *s, int niov, struct fa_env *e, const char **why)
{
    size_t have = 0;
    int r;

    r = fa_env_parse(s->iov[0].iov_base, s->iov[0].iov_len, e, why);
    if (r != -2)
        return r;
    for (int k = 0; k < niov; k++) {
        size_t need = have + s->iov[k].iov_len;

        if (need > s->gather_cap) {
            size_t cap = s->gather_cap ? s->gather_cap : 65536;
            char *g;

            while (cap < need)
                cap *= 2;
            if ((g = realloc(s->gather, cap)) == NULL) {
                *why = "out of memory gathering a head that spans chunks";
                return -1;
            }
            s->gather = g;
            s->gather_cap = cap;
        }
        memcpy(s->gather + have, s->iov[k].iov_base, s->iov[k].iov_len);
        have = need;
        if (k == 0)
            continue;
        r = fa_env_parse(s->gather, have, e, why);
        if (r != -2)
            return r;
    }
    *why = "the head is cut short by the end of the message";
    return -1;
}

/* serve__body without the Python objects: where the handler's body is.
 * Returns 0 and (k, skip) of its first byte, or -1 ("body offset beyond
 * the message"). */
static int serve__body_at(struct dec *s, int niov, size_t head_len, uint32_t total,
                          int *k_out, size_t *skip_out)
{
    size_t blen = total - head_len, skip = head_len;
    int k = 0;

    if (blen == 0) {
        *k_out = -1;
        return 0;
    }
    while (k < niov && skip >= s->iov[k].iov_len) {
        skip -= s->iov[k].iov_len;
        k++;
    }
    if (k >= niov)
        return -1;
    *k_out = k;
    *skip_out = skip;
    return 0;
}

/* ---- checks ------------------------------------------------------------- */

static const char *msg_copy;   /* the whole message, for comparisons */

static void check_inside(const struct dec *s, int niov, const char *p, uint32_t n)
{
    if (n == 0)
        return;
    for (int k = 0; k < niov; k++) {
        const char *b = s->iov[k].iov_base;
        if (p >= b && p + n <= b + s->iov[k].iov_len)
            return;
    }
    if (s->gather && p >= s->gather && p + n <= s->gather + s->gather_cap)
        return;
    fz_fail("a decoded string lies outside the chunks and the gather buffer");
}

static void touch(const char *p, uint32_t n)
{
    volatile unsigned char x = 0;

    for (uint32_t i = 0; i < n; i++)
        x ^= (unsigned char)p[i];
    (void)x;
}

static int mp_str_eq(const msgpack_object *o, const char *p, uint32_t n)
{
    /* msgpack-c leaves ptr NULL for an empty string */
    if (o->type == MSGPACK_OBJECT_STR)
        return o->via.str.size == n && (n == 0 || memcmp(o->via.str.ptr, p, n) == 0);
    if (o->type == MSGPACK_OBJECT_BIN)
        return o->via.bin.size == n && (n == 0 || memcmp(o->via.bin.ptr, p, n) == 0);
    return 0;
}

/* What serve__call reads from an accepted head, checked against msgpack-c
 * decoding the same bytes (contiguous: the whole message). */
static void cross_check(struct dec *s, const struct fa_env *e, const char *msg, size_t total)
{
    msgpack_object o, *a;
    size_t off = 0;
    const unsigned char *q;
    const char *p;
    uint32_t n;
    msgpack_unpack_return r;

    msgpack_zone_clear(&s->zone);
    r = msgpack_unpack(msg, total, &off, &s->zone, &o);
    if (r != MSGPACK_UNPACK_SUCCESS && r != MSGPACK_UNPACK_EXTRA_BYTES)
        fz_fail("fa_env_parse accepted a head that msgpack-c cannot decode");
    if (off != e->head_len)
        fz_fail("fa_env_parse and msgpack-c disagree on the head's length");
    if (o.type != MSGPACK_OBJECT_ARRAY || o.via.array.size < 9)
        fz_fail("fa_env_parse accepted a head that is not an array of 9 or more");
    a = o.via.array.ptr;
    if (a[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER || a[0].via.u64 != e->route_id)
        fz_fail("route id differs from msgpack-c's");
    if (!mp_str_eq(&a[1], e->method, e->method_len) || !mp_str_eq(&a[2], e->path, e->path_len) ||
        !mp_str_eq(&a[3], e->query, e->query_len) || !mp_str_eq(&a[6], e->host, e->host_len))
        fz_fail("method, path, query or host differs from msgpack-c's");
    if (a[7].type != MSGPACK_OBJECT_POSITIVE_INTEGER || a[7].via.u64 != e->port)
        fz_fail("client port differs from msgpack-c's");
    if (a[4].type != MSGPACK_OBJECT_ARRAY || a[4].via.array.size != e->n_params)
        fz_fail("params differ from msgpack-c's");
    q = e->params;
    for (uint32_t i = 0; i < e->n_params; i++) {
        q = fa_env_str(e, q, &p, &n);
        if (!mp_str_eq(&a[4].via.array.ptr[i], p, n))
            fz_fail("a parameter differs from msgpack-c's");
    }
    if (a[5].type != MSGPACK_OBJECT_ARRAY || a[5].via.array.size != 2 * e->n_headers)
        fz_fail("headers differ from msgpack-c's");
    q = e->headers;
    for (uint32_t i = 0; i < 2 * e->n_headers; i++) {
        q = fa_env_str(e, q, &p, &n);
        if (!mp_str_eq(&a[5].via.array.ptr[i], p, n))
            fz_fail("a header name or value differs from msgpack-c's");
    }
}

/* serve__call's reading of the head, without building Python objects. */
static void decode(struct dec *s, int niov, uint32_t total, int huge)
{
    struct fa_env e;
    const char *why = NULL, *p;
    const unsigned char *q;
    uint32_t n;
    int k, rc;
    size_t skip = 0;

    memset(&e, 0, sizeof(e));
    rc = serve__parse_head(s, niov, &e, &why);
    if (rc != 0) {
        if (rc != -1 || why == NULL)
            fz_fail("serve__parse_head failed without -1 and a reason");
        return;
    }
    if (e.head_len > total)
        fz_fail("head longer than the message");
    check_inside(s, niov, e.method, e.method_len);
    check_inside(s, niov, e.path, e.path_len);
    check_inside(s, niov, e.query, e.query_len);
    check_inside(s, niov, e.host, e.host_len);
    touch(e.method, e.method_len);
    touch(e.path, e.path_len);
    touch(e.query, e.query_len);
    touch(e.host, e.host_len);
    if (e.port > 65535)
        fz_fail("client port above 65535 accepted");
    q = e.params;
    for (uint32_t i = 0; i < e.n_params; i++) {
        q = fa_env_str(&e, q, &p, &n);
        check_inside(s, niov, p, n);
        touch(p, n);
    }
    q = e.headers;
    for (uint32_t i = 0; i < 2 * e.n_headers; i++) {
        q = fa_env_str(&e, q, &p, &n);
        check_inside(s, niov, p, n);
        touch(p, n);
    }
    if (!huge)
        cross_check(s, &e, msg_copy, total);
    if (serve__body_at(s, niov, e.head_len, total, &k, &skip) < 0)
        fz_fail("the head ends beyond the message (serve__body's ValueError path)");
    if (k >= 0) {
        /* The body as serve__body gathers it must be the message's tail. */
        size_t blen = total - e.head_len, got = 0;

        for (; k < niov && got < blen; k++, skip = 0) {
            size_t m = s->iov[k].iov_len - skip;

            if (m > blen - got)
                m = blen - got;
            if (memcmp((const char *)s->iov[k].iov_base + skip, msg_copy + e.head_len + got, m) != 0)
                fz_fail("the body the handler would see is not the bytes after the head");
            got += m;
        }
        if (got != blen)
            fz_fail("the body is shorter than the message says");
    }
}

/* The known msgpack-c behaviour (fuzz/README.md, findings): an array or map
 * header makes msgpack_unpack reserve count * sizeof(msgpack_object) bytes
 * before it has seen one element, so 6 bytes ask for up to 96 GiB. Under
 * ASan such a malloc aborts or takes seconds: the msgpack-c cross-check is
 * skipped for inputs whose first object declares more elements than bytes
 * remain (fa_env_parse itself allocates nothing). Returns 1 for those. */
static int huge_count(const uint8_t *p, size_t n)
{
    uint64_t pending = 1;   /* objects still to read */
    size_t i = 0;

    while (pending > 0 && i < n) {
        uint8_t b = p[i++];
        uint64_t count = 0, skip = 0;
        int container = 0;

        pending--;
        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
            continue;
        if (b >= 0x80 && b <= 0x8f) { count = 2u * (b & 0x0f); container = 1; }
        else if (b >= 0x90 && b <= 0x9f) { count = b & 0x0f; container = 1; }
        else if (b >= 0xa0 && b <= 0xbf) { skip = b & 0x1f; }
        else {
            static const uint8_t lenbytes[32] = {
                /* c0 */ 0, 0, 0, 0, 1, 2, 4, 1, 2, 4, 0, 0, 0, 0, 0, 0,
                /* d0 */ 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 4, 2, 4, 2, 4,
            };
            static const uint8_t fixed[32] = {
                /* c0 */ 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 4, 8, 1, 2, 4, 8,
                /* d0 */ 1, 2, 4, 8, 2, 3, 5, 9, 17, 0, 0, 0, 0, 0, 0, 0,
            };
            unsigned k = b - 0xc0, lb = lenbytes[k];
            uint64_t len = 0;

            if (b == 0xc1)
                return 0;   /* never used: msgpack fails at once */
            if (i + lb > n)
                return 0;
            for (unsigned j = 0; j < lb; j++)
                len = len << 8 | p[i + j];
            i += lb;
            if (b == 0xdc || b == 0xdd) { count = len; container = 1; }
            else if (b == 0xde || b == 0xdf) { count = 2 * len; container = 1; }
            else skip = len + fixed[k];   /* str/bin/ext payloads, ext type, numbers */
        }
        if (container) {
            if (count > n - i)
                return 1;
            pending += count;
        } else {
            if (skip > n - i)
                return 0;
            i += (size_t)skip;
        }
    }
    return 0;
}

static struct dec dec;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint32_t csize;
    uint8_t early;
    int niov = 0;
    size_t off = 0;

    if (size < 3)
        return 0;
    if (dec.zone.chunk_list.head == NULL && !msgpack_zone_init(&dec.zone, 8192))
        return 0;
    csize = 16u << (data[0] % 8);     /* 16 .. 2048 bytes per chunk */
    early = data[1];
    data += 2;
    size -= 2;
    if (size > (size_t)csize * MAX_CHUNKS || size > UINT32_MAX)
        return 0;
    msg_copy = (const char *)data;
    /* Cut like fa_msg_write: full chunks, except that a chunk may end early
     * (fa_msg_reserve starts a fresh chunk for a head that must not
     * straddle), chosen by the bits of `early`. */
    while (off < size && niov < MAX_CHUNKS) {
        size_t len = size - off < csize ? size - off : csize;
        char *c;

        if ((early >> (niov % 8)) & 1 && len > 1)
            len = len / 2 + 1;
        c = malloc(len);
        memcpy(c, data + off, len);
        dec.iov[niov].iov_base = c;
        dec.iov[niov].iov_len = len;
        niov++;
        off += len;
    }
    if (off == size && niov > 0)
        decode(&dec, niov, (uint32_t)size, huge_count(data, size));
    for (int k = 0; k < niov; k++)
        free(dec.iov[k].iov_base);
    return 0;
}
