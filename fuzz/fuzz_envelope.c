/* fuzz_envelope.c - libFuzzer target: the request envelope decoder of the
 * Python worker (pyworker/serve.c: serve__unpack_head, the field checks of
 * serve__call, and the body location of serve__body).
 *
 * Those are static functions woven into code that builds Python objects, so
 * this file carries a copy of their C part, line for line, without the
 * Python calls (fuzz/README.md says which refactor would let the real
 * functions be fuzzed; keep this copy in step with serve.c until then).
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
 * the body located for the handler is exactly the bytes after the head.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include <msgpack.h>

#define SERVE_ENVELOPE_MIN 9
#define MAX_CHUNKS 256

static void fz_fail(const char *what)
{
    fprintf(stderr, "fuzz_envelope: %s\n", what);
    abort();
}

/* The decoder's state that serve.c keeps in struct serve. */
struct dec {
    struct iovec iov[MAX_CHUNKS];
    msgpack_zone zone;
    char *gather;
    size_t gather_cap;
};

/* ---- copied from pyworker/serve.c (C part only) ------------------------- */

static inline int serve__mp_str(const msgpack_object *o, const char **p, uint32_t *n)
{
    if (o->type == MSGPACK_OBJECT_STR) {
        *p = o->via.str.ptr;
        *n = o->via.str.size;
        return 0;
    }
    if (o->type == MSGPACK_OBJECT_BIN) {
        *p = o->via.bin.ptr;
        *n = o->via.bin.size;
        return 0;
    }
    return -1;
}

static int serve__unpack_head(struct dec *s, int niov, msgpack_object *o, size_t *head_len)
{
    msgpack_unpack_return r;
    size_t off = 0, have = 0;

    msgpack_zone_clear(&s->zone);
    r = msgpack_unpack(s->iov[0].iov_base, s->iov[0].iov_len, &off, &s->zone, o);
    if (r == MSGPACK_UNPACK_SUCCESS || r == MSGPACK_UNPACK_EXTRA_BYTES) {
        *head_len = off;
        return 0;
    }
    if (r != MSGPACK_UNPACK_CONTINUE)
        return -1;
    for (int k = 0; k < niov; k++) {
        size_t need = have + s->iov[k].iov_len;

        if (need > s->gather_cap) {
            size_t cap = s->gather_cap ? s->gather_cap : 65536;
            char *g;

            while (cap < need)
                cap *= 2;
            if ((g = realloc(s->gather, cap)) == NULL)
                return -1;
            s->gather = g;
            s->gather_cap = cap;
        }
        memcpy(s->gather + have, s->iov[k].iov_base, s->iov[k].iov_len);
        have = need;
        if (k == 0)
            continue;
        off = 0;
        msgpack_zone_clear(&s->zone);
        r = msgpack_unpack(s->gather, have, &off, &s->zone, o);
        if (r == MSGPACK_UNPACK_SUCCESS || r == MSGPACK_UNPACK_EXTRA_BYTES) {
            *head_len = off;
            return 0;
        }
        if (r != MSGPACK_UNPACK_CONTINUE)
            return -1;
    }
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

/* serve__call's checks, in its order, without building Python objects. */
static void decode(struct dec *s, int niov, uint32_t total)
{
    msgpack_object env, *a;
    size_t head_len;
    const char *p;
    uint32_t n;
    int k;
    size_t skip = 0;

    if (serve__unpack_head(s, niov, &env, &head_len) < 0 || env.type != MSGPACK_OBJECT_ARRAY ||
        env.via.array.size < SERVE_ENVELOPE_MIN)
        return;
    if (head_len > total)
        fz_fail("head longer than the message");
    a = env.via.array.ptr;
    if (a[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return;
    if (serve__mp_str(&a[1], &p, &n) < 0)
        return;
    check_inside(s, niov, p, n);
    touch(p, n);
    if (serve__mp_str(&a[2], &p, &n) < 0)
        return;
    check_inside(s, niov, p, n);
    touch(p, n);
    if (a[4].type != MSGPACK_OBJECT_ARRAY || a[5].type != MSGPACK_OBJECT_ARRAY ||
        (a[5].via.array.size & 1) != 0 || a[7].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        a[7].via.u64 > 65535)
        return;
    if (serve__mp_str(&a[3], &p, &n) < 0)
        return;
    check_inside(s, niov, p, n);
    touch(p, n);
    for (uint32_t i = 0; i < a[4].via.array.size; i++) {
        if (serve__mp_str(&a[4].via.array.ptr[i], &p, &n) < 0)
            return;
        check_inside(s, niov, p, n);
        touch(p, n);
    }
    for (uint32_t i = 0; i < a[5].via.array.size / 2; i++) {
        const char *vp;
        uint32_t vn;

        if (serve__mp_str(&a[5].via.array.ptr[2 * i], &p, &n) < 0 ||
            serve__mp_str(&a[5].via.array.ptr[2 * i + 1], &vp, &vn) < 0)
            return;
        check_inside(s, niov, p, n);
        check_inside(s, niov, vp, vn);
        touch(p, n);
        touch(vp, vn);
    }
    if (serve__mp_str(&a[6], &p, &n) < 0)
        return;
    check_inside(s, niov, p, n);
    touch(p, n);
    if (serve__body_at(s, niov, head_len, total, &k, &skip) < 0)
        fz_fail("the head ends beyond the message (serve__body's ValueError path)");
    if (k >= 0) {
        /* The body as serve__body gathers it must be the message's tail. */
        size_t blen = total - head_len, got = 0;

        for (; k < niov && got < blen; k++, skip = 0) {
            size_t m = s->iov[k].iov_len - skip;

            if (m > blen - got)
                m = blen - got;
            if (memcmp((const char *)s->iov[k].iov_base + skip, msg_copy + head_len + got, m) != 0)
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
 * ASan such a malloc aborts or takes seconds, and the run would stop on it
 * again and again; inputs whose first object declares more elements than
 * bytes remain are therefore skipped. Returns 1 for those. */
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
    if (huge_count(data, size))
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
        decode(&dec, niov, (uint32_t)size);
    for (int k = 0; k < niov; k++)
        free(dec.iov[k].iov_base);
    return 0;
}
