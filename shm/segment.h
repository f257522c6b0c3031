/* segment.h - create, attach and address the shared-memory segment.
 *
 * struct fa_seg is the per-process handle: it holds the base address where
 * this process mapped the segment. Fields are read-only after create/attach.
 */
#ifndef FA_SHM_SEGMENT_H
#define FA_SHM_SEGMENT_H

#include <stddef.h>
#include "shm/layout.h"

struct fa_seg {
    char *base;                      /* mapping address (read-only field) */
    struct fa_seg_header_sh *hdr;    /* == base */
    size_t size;
    int writable;
    char shm_name[FA_NAME_MAX + 16]; /* "/fasterapi.<name>" */
};

struct fa_seg_params {
    const char *name;          /* instance name, [A-Za-z0-9_.-]{1,47} */
    uint32_t n_http;           /* HTTP worker slots */
    uint32_t max_py;           /* Python worker slots */
    uint32_t ring_cap;         /* power of two, >= 2 */
    uint32_t chunk_size;       /* multiple of 64 */
    uint32_t chunks_per_arena;
};

/* Validates an instance name; 0 or -1 with a message in *cause (malloc'd). */
int fa_seg_name_check(const char *name, char **cause);

/* Creates /fasterapi.<name> with mode 0600 and lays it out. A segment of
 * that name whose master is still alive is refused (-1, *cause says so);
 * a stale one (master gone) is replaced. Returns 0 or -1 with *cause. */
int fa_seg_create(struct fa_seg *seg, const struct fa_seg_params *p, char **cause);

/* Maps an existing segment, read-only unless `writable`. Checks magic, layout
 * version and owner (must be the caller's uid). Returns 0 or -1 with *cause. */
int fa_seg_attach(struct fa_seg *seg, const char *name, int writable, char **cause);

/* Maps an inherited segment fd (after exec: the fd stays valid). */
int fa_seg_attach_fd(struct fa_seg *seg, int fd, char **cause);

void fa_seg_detach(struct fa_seg *seg);

/* Removes the name (the mapping stays valid for whoever has it). */
int fa_seg_unlink(const char *name);

/* Address helpers. Indices are trusted here: callers validate what came
 * from another process before calling them. */
static inline struct fa_slot_sh *fa_seg_http_slot(const struct fa_seg *s, uint32_t h)
{
    return (struct fa_slot_sh *)(s->base + s->hdr->off_http_slots) + h;
}
static inline struct fa_slot_sh *fa_seg_py_slot(const struct fa_seg *s, uint32_t p)
{
    return (struct fa_slot_sh *)(s->base + s->hdr->off_py_slots) + p;
}
/* Request ring HTTP h -> Python p, response ring Python p -> HTTP h. */
static inline struct fa_ring_sh *fa_seg_req_ring(const struct fa_seg *s, uint32_t h, uint32_t p)
{
    return (struct fa_ring_sh *)(s->base + s->hdr->off_rings +
                                 s->hdr->ring_stride * ((uint64_t)h * s->hdr->max_py + p));
}
static inline struct fa_ring_sh *fa_seg_resp_ring(const struct fa_seg *s, uint32_t h, uint32_t p)
{
    uint64_t n = (uint64_t)s->hdr->n_http * s->hdr->max_py;
    return (struct fa_ring_sh *)(s->base + s->hdr->off_rings +
                                 s->hdr->ring_stride * (n + (uint64_t)h * s->hdr->max_py + p));
}
/* Requests in flight to Python slot p, summed over the HTTP workers' request
 * rings (each counter has one writer: the HTTP worker; a racy snapshot). */
static inline uint32_t fa_seg_py_in_flight(const struct fa_seg *s, uint32_t p)
{
    uint32_t n = 0;
    for (uint32_t h = 0; h < s->hdr->n_http; h++)
        n += atomic_load_explicit(&fa_seg_req_ring(s, h, p)->in_flight, memory_order_relaxed);
    return n;
}

/* Arena ids: HTTP slot h owns arena h, Python slot p owns arena n_http + p. */
static inline uint32_t fa_seg_http_arena(const struct fa_seg *s, uint32_t h) { (void)s; return h; }
static inline uint32_t fa_seg_py_arena(const struct fa_seg *s, uint32_t p) { return s->hdr->n_http + p; }

static inline struct fa_chunk_meta_sh *fa_seg_chunk_meta(const struct fa_seg *s, uint32_t arena, uint32_t i)
{
    return (struct fa_chunk_meta_sh *)(s->base + s->hdr->off_chunk_meta) +
           ((uint64_t)arena * s->hdr->chunks_per_arena + i);
}
static inline char *fa_seg_chunk_data(const struct fa_seg *s, uint32_t arena, uint32_t i)
{
    return s->base + s->hdr->off_chunks +
           ((uint64_t)arena * s->hdr->chunks_per_arena + i) * s->hdr->chunk_size;
}

#endif
