/* segment.c - create, attach and lay out the shared-memory segment.
 *
 * The layout itself (and who writes what, with which memory order) is drawn
 * in layout.h. This file only computes the offsets, fills the header once
 * and checks, on every attach, that the header describes a segment this
 * build can use: right magic, right version, our uid, and every region
 * inside the file. The address helpers in segment.h trust the header, so
 * the geometry is checked here, once, before any of them runs.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "shm/segment.h"
#include "shm/ring.h"

#define SEG_PREFIX "/fasterapi."

/* Holder ids are 14 bits in a chunk state word (layout.h). */
#define SEG_MAX_SLOTS 0x4000u

/* Sets *cause to a malloc'd message (if cause is not NULL) and returns -1,
 * keeping errno as it was so callers can still report the syscall error. */
static int seg__fail(char **cause, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int seg__fail(char **cause, const char *fmt, ...)
{
    int saved = errno;
    va_list ap;

    if (cause != NULL) {
        va_start(ap, fmt);
        if (vasprintf(cause, fmt, ap) < 0)
            *cause = NULL;
        va_end(ap);
    }
    errno = saved;
    return -1;
}

static uint64_t seg__align(uint64_t v, uint64_t to)
{
    return (v + to - 1) / to * to;
}

int fa_seg_name_check(const char *name, char **cause)
{
    size_t n;

    if (name == NULL || name[0] == '\0')
        return seg__fail(cause, "the instance name is empty (use letters, digits, '_', '.', '-')");
    n = strlen(name);
    if (n > FA_NAME_MAX - 1)
        return seg__fail(cause, "instance name '%.60s%s' is %zu characters long; at most %d are allowed",
                         name, n > 60 ? "..." : "", n, FA_NAME_MAX - 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '_' || c == '.' || c == '-')
            continue;
        if (c > ' ' && c < 0x7f)
            return seg__fail(cause, "instance name '%s' contains '%c'; use only letters, "
                             "digits, '_', '.' and '-'", name, c);
        return seg__fail(cause, "instance name contains byte 0x%02x at position %zu; use only "
                         "letters, digits, '_', '.' and '-'", c, i + 1);
    }
    return 0;
}

static void seg__shm_name(char *out, size_t outlen, const char *name)
{
    snprintf(out, outlen, SEG_PREFIX "%s", name);
}

/* --- geometry --- */

/* Offsets of a segment for the given parameters, computed in 64 bits with
 * every product checked: the sizes come from the command line. */
struct seg_geom {
    uint64_t off_http_slots, off_py_slots, off_rings, ring_stride;
    uint64_t off_chunk_meta, off_chunks, size;
};

static int seg__geom(const struct fa_seg_params *p, struct seg_geom *g, char **cause)
{
    uint64_t n_arenas = (uint64_t)p->n_http + p->max_py;
    uint64_t n_rings, n_chunks, v;
    long page = sysconf(_SC_PAGESIZE);

    if (p->n_http == 0 || p->max_py == 0)
        return seg__fail(cause, "the segment needs at least one HTTP worker and one Python "
                         "worker slot (got %u and %u)", p->n_http, p->max_py);
    if (n_arenas > SEG_MAX_SLOTS)
        return seg__fail(cause, "too many worker slots: %u HTTP + %u Python > %u",
                         p->n_http, p->max_py, SEG_MAX_SLOTS);
    if (p->ring_cap < 2 || (p->ring_cap & (p->ring_cap - 1)) != 0 || p->ring_cap > (1u << 24))
        return seg__fail(cause, "ring capacity %u is not a power of two between 2 and 2^24",
                         p->ring_cap);
    if (p->chunk_size == 0 || p->chunk_size % 64 != 0 || p->chunk_size > (1u << 30))
        return seg__fail(cause, "chunk size %u is not a multiple of 64 between 64 and 1 GiB",
                         p->chunk_size);
    if (p->chunks_per_arena == 0 || p->chunks_per_arena >= FA_CHUNK_NONE)
        return seg__fail(cause, "chunks per arena must be at least 1 (got %u)",
                         p->chunks_per_arena);

    g->off_http_slots = seg__align(sizeof(struct fa_seg_header_sh), FA_CACHELINE);
    g->off_py_slots = g->off_http_slots + (uint64_t)p->n_http * sizeof(struct fa_slot_sh);
    g->off_rings = seg__align(g->off_py_slots + (uint64_t)p->max_py * sizeof(struct fa_slot_sh),
                              FA_CACHELINE);
    g->ring_stride = seg__align(sizeof(struct fa_ring_sh) +
                                (uint64_t)p->ring_cap * sizeof(struct fa_desc), FA_CACHELINE);
    n_rings = 2 * (uint64_t)p->n_http * p->max_py;
    g->off_chunk_meta = seg__align(g->off_rings + n_rings * g->ring_stride, FA_CACHELINE);
    n_chunks = n_arenas * p->chunks_per_arena;
    g->off_chunks = seg__align(g->off_chunk_meta + n_chunks * sizeof(struct fa_chunk_meta_sh),
                               (uint64_t)page);
    /* n_chunks < 2^46 and chunk_size <= 2^30: check the product. */
    if (__builtin_mul_overflow(n_chunks, (uint64_t)p->chunk_size, &v) ||
        __builtin_add_overflow(v, g->off_chunks, &v) || v > ((uint64_t)1 << 46))
        return seg__fail(cause, "segment too large: %llu chunks of %u bytes",
                         (unsigned long long)n_chunks, p->chunk_size);
    g->size = seg__align(v, (uint64_t)page);
    return 0;
}

/* Checks that a mapped header describes a segment that fits in `size`
 * bytes, so the inline helpers in segment.h stay inside the mapping. */
static int seg__check_geom(const struct fa_seg_header_sh *h, uint64_t size, char **cause)
{
    struct fa_seg_params p = {
        .n_http = h->n_http, .max_py = h->max_py, .ring_cap = h->ring_cap,
        .chunk_size = h->chunk_size, .chunks_per_arena = h->chunks_per_arena,
    };
    struct seg_geom g;
    char *why = NULL;

    if (seg__geom(&p, &g, &why) < 0) {
        seg__fail(cause, "the segment header is corrupt: %s", why ? why : "bad geometry");
        free(why);
        return -1;
    }
    if (h->n_arenas != h->n_http + h->max_py ||
        h->off_http_slots != g.off_http_slots || h->off_py_slots != g.off_py_slots ||
        h->off_rings != g.off_rings || h->ring_stride != g.ring_stride ||
        h->off_chunk_meta != g.off_chunk_meta || h->off_chunks != g.off_chunks ||
        h->size != g.size || g.size != size)
        return seg__fail(cause, "the segment header is corrupt: its offsets do not match "
                         "its sizes (segment %llu bytes, header says %llu)",
                         (unsigned long long)size, (unsigned long long)h->size);
    return 0;
}

/* --- create --- */

static void seg__format(struct fa_seg *seg, const struct fa_seg_params *p,
                        const struct seg_geom *g)
{
    struct fa_seg_header_sh *h = seg->hdr;
    uint64_t n_rings = 2 * (uint64_t)p->n_http * p->max_py;
    uint64_t n_chunks = ((uint64_t)p->n_http + p->max_py) * p->chunks_per_arena;
    struct fa_chunk_meta_sh *meta;

    /* ftruncate gave zeroes: slots are EMPTY, counters 0, rings empty.
     * Only what is not zero is written, plus the rings for clarity. */
    h->size = g->size;
    h->n_http = p->n_http;
    h->max_py = p->max_py;
    h->ring_cap = p->ring_cap;
    h->chunk_size = p->chunk_size;
    h->chunks_per_arena = p->chunks_per_arena;
    h->n_arenas = p->n_http + p->max_py;
    h->off_http_slots = g->off_http_slots;
    h->off_py_slots = g->off_py_slots;
    h->off_rings = g->off_rings;
    h->ring_stride = g->ring_stride;
    h->off_chunk_meta = g->off_chunk_meta;
    h->off_chunks = g->off_chunks;
    h->owner_uid = (uint32_t)getuid();
    h->started_at = (uint64_t)time(NULL);
    snprintf(h->name, sizeof(h->name), "%s", p->name);
    atomic_store_explicit(&h->master_pid, (int32_t)getpid(), memory_order_relaxed);

    for (uint64_t i = 0; i < n_rings; i++)
        fa_ring_format((struct fa_ring_sh *)(seg->base + g->off_rings + i * g->ring_stride));
    meta = (struct fa_chunk_meta_sh *)(seg->base + g->off_chunk_meta);
    for (uint64_t i = 0; i < n_chunks; i++) {
        atomic_store_explicit(&meta[i].state, FA_CHUNK_FREE, memory_order_relaxed);
        meta[i].next = FA_CHUNK_NONE;
        meta[i].len = 0;
    }
    /* Magic and version last: a reader that sees them sees a whole header
     * (attachers come later in practice; this also marks a half-made file). */
    h->version = FA_SHM_VERSION;
    atomic_thread_fence(memory_order_release);
    h->magic = FA_SHM_MAGIC;
}

/* A segment of our name exists. Returns 1 if it is stale (its master is
 * gone, or it was never finished) and may be replaced, 0 with *cause if it
 * must be left alone. Reads the header with pread: no mapping needed. */
static int seg__existing_is_stale(const char *shm_name, const char *name, char **cause)
{
    struct fa_seg_header_sh h;
    struct stat st;
    ssize_t got;
    int32_t pid;
    int fd;

    fd = shm_open(shm_name, O_RDONLY, 0);
    if (fd < 0) {
        if (errno == ENOENT)
            return 1;        /* removed meanwhile: try again */
        if (errno == EACCES)
            seg__fail(cause, "/dev/shm%s exists and belongs to another user; "
                      "pick another --name", shm_name);
        else
            seg__fail(cause, "cannot open the existing /dev/shm%s: %s",
                      shm_name, strerror(errno));
        return 0;
    }
    if (fstat(fd, &st) < 0) {
        seg__fail(cause, "cannot stat the existing /dev/shm%s: %s", shm_name, strerror(errno));
        close(fd);
        return 0;
    }
    if (st.st_uid != getuid()) {
        seg__fail(cause, "/dev/shm%s exists and belongs to uid %u; pick another --name",
                  shm_name, (unsigned)st.st_uid);
        close(fd);
        return 0;
    }
    got = pread(fd, &h, sizeof(h), 0);
    close(fd);
    /* Shorter than a header or no magic yet: a creator died between
     * shm_open and the end of seg__format (magic is written last). */
    if (got < (ssize_t)sizeof(h) || h.magic == 0)
        return 1;
    if (h.magic != FA_SHM_MAGIC) {
        seg__fail(cause, "/dev/shm%s exists but is not a FasterAPI segment; remove it "
                  "or pick another --name", shm_name);
        return 0;
    }
    /* master_pid's place is only known for our own layout version. */
    if (h.version != FA_SHM_VERSION) {
        seg__fail(cause, "/dev/shm%s has layout version %u, this build uses version %u: "
                  "another fasterapi build may be running as '%s'; stop it, or remove "
                  "/dev/shm%s if none is", shm_name, h.version, FA_SHM_VERSION, name,
                  shm_name);
        return 0;
    }
    pid = atomic_load_explicit(&h.master_pid, memory_order_relaxed);
    /* EPERM: the pid exists but is not ours to signal; it is alive. */
    if (pid > 0 && (kill(pid, 0) == 0 || errno == EPERM)) {
        seg__fail(cause, "a server named '%s' is already running (pid %d); stop it "
                  "or pick another --name", name, (int)pid);
        return 0;
    }
    return 1;
}

int fa_seg_create(struct fa_seg *seg, const struct fa_seg_params *p, char **cause)
{
    char shm_name[sizeof(seg->shm_name)];
    struct seg_geom g;
    void *base;
    int fd = -1, tries;

    memset(seg, 0, sizeof(*seg));
    if (fa_seg_name_check(p->name, cause) < 0 || seg__geom(p, &g, cause) < 0)
        return -1;
    seg__shm_name(shm_name, sizeof(shm_name), p->name);

    /* A stale segment is unlinked and the exclusive create retried; a few
     * rounds cover a racing peer that does the same. */
    for (tries = 0; tries < 4; tries++) {
        fd = shm_open(shm_name, O_RDWR | O_CREAT | O_EXCL, 0600);
        if (fd >= 0 || errno != EEXIST)
            break;
        if (seg__existing_is_stale(shm_name, p->name, cause) == 0)
            return -1;
        if (shm_unlink(shm_name) < 0 && errno != ENOENT)
            return seg__fail(cause, "cannot remove the stale /dev/shm%s: %s",
                             shm_name, strerror(errno));
    }
    if (fd < 0)
        return seg__fail(cause, "cannot create /dev/shm%s: %s", shm_name,
                         errno == EEXIST ? "it keeps reappearing" : strerror(errno));

    /* The umask may have narrowed 0600; every worker must reopen it rw. */
    if (fchmod(fd, 0600) < 0) {
        seg__fail(cause, "cannot set mode 0600 on /dev/shm%s: %s", shm_name, strerror(errno));
        goto fail;
    }
    if (ftruncate(fd, (off_t)g.size) < 0) {
        seg__fail(cause, "cannot size /dev/shm%s to %llu bytes: %s", shm_name,
                  (unsigned long long)g.size, strerror(errno));
        goto fail;
    }
    base = mmap(NULL, g.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) {
        seg__fail(cause, "cannot map /dev/shm%s (%llu bytes): %s", shm_name,
                  (unsigned long long)g.size, strerror(errno));
        goto fail;
    }
    close(fd);

    seg->base = base;
    seg->hdr = base;
    seg->size = g.size;
    seg->writable = 1;
    memcpy(seg->shm_name, shm_name, sizeof(shm_name));
    seg__format(seg, p, &g);
    return 0;

fail:
    {
        int saved = errno;
        close(fd);
        shm_unlink(shm_name);
        errno = saved;
    }
    return -1;
}

/* --- attach --- */

/* Maps fd (its whole size) and checks the header. `what` names the segment
 * in messages. Does not close fd. */
static int seg__map(struct fa_seg *seg, int fd, int writable, const char *what, char **cause)
{
    const struct fa_seg_header_sh *h;
    struct stat st;
    void *base;

    if (fstat(fd, &st) < 0)
        return seg__fail(cause, "cannot stat %s: %s", what, strerror(errno));
    if (st.st_uid != getuid())
        return seg__fail(cause, "%s belongs to uid %u, not to you (uid %u)", what,
                         (unsigned)st.st_uid, (unsigned)getuid());
    if (st.st_size < (off_t)sizeof(struct fa_seg_header_sh))
        return seg__fail(cause, "%s is only %lld bytes: it is being created, or its "
                         "creator crashed", what, (long long)st.st_size);
    base = mmap(NULL, (size_t)st.st_size, writable ? PROT_READ | PROT_WRITE : PROT_READ,
                MAP_SHARED, fd, 0);
    if (base == MAP_FAILED)
        return seg__fail(cause, "cannot map %s: %s", what, strerror(errno));
    h = base;
    if (h->magic != FA_SHM_MAGIC) {
        seg__fail(cause, h->magic == 0 ? "%s is not initialised yet (or its creator crashed)"
                  : "%s is not a FasterAPI segment (bad magic)", what);
        goto fail;
    }
    atomic_thread_fence(memory_order_acquire);   /* pairs with seg__format's release */
    if (h->version != FA_SHM_VERSION) {
        seg__fail(cause, "%s has layout version %u but this program understands version %u; "
                  "use the fasterapi and shm-stat of the same build", what, h->version,
                  FA_SHM_VERSION);
        goto fail;
    }
    if (h->owner_uid != (uint32_t)getuid()) {
        seg__fail(cause, "%s: segment belongs to uid %u, not to you (uid %u)", what,
                  h->owner_uid, (unsigned)getuid());
        goto fail;
    }
    if (seg__check_geom(h, (uint64_t)st.st_size, cause) < 0)
        goto fail;
    seg->base = base;
    seg->hdr = base;
    seg->size = (size_t)st.st_size;
    seg->writable = writable;
    return 0;

fail:
    munmap(base, (size_t)st.st_size);
    return -1;
}

int fa_seg_attach(struct fa_seg *seg, const char *name, int writable, char **cause)
{
    char shm_name[sizeof(seg->shm_name)], what[sizeof(shm_name) + 16];
    struct stat st;
    int fd, r;

    memset(seg, 0, sizeof(*seg));
    if (fa_seg_name_check(name, cause) < 0)
        return -1;
    seg__shm_name(shm_name, sizeof(shm_name), name);
    snprintf(what, sizeof(what), "/dev/shm%s", shm_name);
    fd = shm_open(shm_name, writable ? O_RDWR : O_RDONLY, 0);
    if (fd < 0) {
        if (errno == ENOENT)
            return seg__fail(cause, "no server named '%s' is running (no %s)", name, what);
        /* The file mode is 0600, so EACCES means another user's segment. */
        if (errno == EACCES && stat(what, &st) == 0)
            return seg__fail(cause, "%s: segment belongs to uid %u, not to you (uid %u)",
                             what, (unsigned)st.st_uid, (unsigned)getuid());
        return seg__fail(cause, "cannot open %s: %s", what, strerror(errno));
    }
    r = seg__map(seg, fd, writable, what, cause);
    close(fd);
    if (r == 0)
        memcpy(seg->shm_name, shm_name, sizeof(shm_name));
    return r;
}

int fa_seg_attach_fd(struct fa_seg *seg, int fd, char **cause)
{
    char what[64];
    int fl;

    memset(seg, 0, sizeof(*seg));
    fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return seg__fail(cause, "the inherited segment fd %d is not open: %s", fd,
                         strerror(errno));
    snprintf(what, sizeof(what), "the segment on fd %d", fd);
    if (seg__map(seg, fd, (fl & O_ACCMODE) == O_RDWR, what, cause) < 0)
        return -1;
    /* The header's name is the creator's, checked then; re-check it since
     * it is only used for messages and unlink. */
    if (memchr(seg->hdr->name, '\0', sizeof(seg->hdr->name)) != NULL &&
        fa_seg_name_check(seg->hdr->name, NULL) == 0)
        seg__shm_name(seg->shm_name, sizeof(seg->shm_name), seg->hdr->name);
    return 0;
}

void fa_seg_detach(struct fa_seg *seg)
{
    if (seg->base != NULL)
        munmap(seg->base, seg->size);
    memset(seg, 0, sizeof(*seg));
}

int fa_seg_unlink(const char *name)
{
    char shm_name[FA_NAME_MAX + 16];

    if (fa_seg_name_check(name, NULL) < 0) {
        errno = EINVAL;
        return -1;
    }
    seg__shm_name(shm_name, sizeof(shm_name), name);
    return shm_unlink(shm_name);
}
