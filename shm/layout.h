/* layout.h - the shared-memory segment: the contract between every process.
 *
 * Types only (no functions): every process role includes it, and so does
 * shm-stat. A struct that lives in the segment ends in _sh and holds only
 * fixed-width integers, atomics and offsets, never pointers.
 *
 *   +------------------------+  offset 0
 *   | fa_seg_header_sh       |  magic, version, sizes, offsets, master pid
 *   +------------------------+  off_http_slots
 *   | fa_slot_sh [n_http]    |  one per HTTP worker slot (cache-line aligned)
 *   +------------------------+  off_py_slots
 *   | fa_slot_sh [max_py]    |  one per Python worker slot (the load board)
 *   +------------------------+  off_rings
 *   | request rings          |  n_http * max_py SPSC rings, HTTP h -> Python p,
 *   |   [h * max_py + p]     |  each fa_ring_sh + ring_cap descriptors
 *   | response rings         |  n_http * max_py SPSC rings, Python p -> HTTP h
 *   |   [h * max_py + p]     |
 *   +------------------------+  off_chunk_meta
 *   | fa_chunk_meta_sh [n]   |  one state word + chain link per chunk
 *   +------------------------+  off_chunks (page aligned)
 *   | chunk data [n]         |  chunk_size bytes each; arena a owns chunks
 *   |                        |  [a * chunks_per_arena, (a+1) * chunks_per_arena)
 *   +------------------------+  size
 *
 * Arenas: arena h (0 <= h < n_http) belongs to HTTP worker slot h (request
 * envelopes); arena n_http + p belongs to Python worker slot p (responses).
 * Only the owner of an arena allocates from it; the receiver of a message
 * frees its chunks (see chunk.h).
 */
#ifndef FA_SHM_LAYOUT_H
#define FA_SHM_LAYOUT_H

#include <stdatomic.h>
#include <stdint.h>

#define FA_SHM_MAGIC      0x48534146u /* "FASH" little-endian */
#define FA_SHM_VERSION    3u
#define FA_CACHELINE      64
#define FA_NAME_MAX       48          /* instance name, without "/fasterapi." */

#define FA_CHUNK_NONE     UINT32_MAX  /* end of a chunk chain */

/* Slot states (fa_slot_sh.state). Written by the slot's process and by the master. */
enum fa_slot_state {
    FA_SLOT_EMPTY = 0,   /* no process */
    FA_SLOT_STARTING,    /* forked/exec'd, not serving yet */
    FA_SLOT_READY,       /* serving: HTTP workers may send requests (Python slots) */
    FA_SLOT_DRAINING,    /* finishing what it has, takes nothing new */
    FA_SLOT_DEAD         /* reaped by the master; generation already bumped */
};

/* A ring descriptor: one message, carried by value through an SPSC ring.
 * The receiver copies it out before use and bounds-checks every field. */
struct fa_desc {
    uint32_t chunk;   /* first chunk, index relative to the sender's arena */
    uint32_t len;     /* message bytes, spread over the chain from `chunk` */
    uint32_t gen;     /* Python slot generation the request was sent to /
                         the response comes from */
    uint32_t token;   /* HTTP worker's request id (opaque to the Python side,
                         echoed back in the response) */
};

/* A single-producer single-consumer ring of descriptors.
 *
 *   head (consumer)             tail (producer)
 *     v                           v
 *   [ . | d | d | d | d | . | . | . ]   slots[i & (cap - 1)]
 *
 * Memory order:
 *   producer: writes slots[tail & mask], then store(tail + n, release)
 *   consumer: load(tail, acquire), copies slots out, store(head + n, release)
 *   producer: load(head, acquire) before reusing a slot.
 *   want_space: producer sets it (seq_cst) when it finds the ring full, then
 *   re-checks; the consumer, after releasing head, exchanges it 1 -> 0 and if
 *   it was 1 rings the producer's doorbell. Indices are free-running uint32.
 */
struct fa_ring_sh {
    _Atomic uint32_t tail;
    _Atomic uint32_t in_flight;   /* request rings: requests the producer (HTTP
                                     worker h) sent to p and has no answer for;
                                     written by the producer only (the load
                                     board is the sum over h) */
    char pad0[FA_CACHELINE - 2 * sizeof(uint32_t)];
    _Atomic uint32_t head;
    char pad1[FA_CACHELINE - sizeof(uint32_t)];
    _Atomic uint32_t want_space;
    char pad2[FA_CACHELINE - sizeof(uint32_t)];
    struct fa_desc slots[];   /* ring_cap entries */
};

/* Per-chunk state word, one step per CAS or release store:
 *
 *   FREE --owner allocates--> WRITING(owner) --sent--> SENT(holder, gen)
 *     ^                                                       |
 *     +---------------- receiver frees (release) -------------+
 *
 * Encoding: bits 30..31 state, bits 16..29 holder slot id (the receiving
 * process: HTTP slots 0..n_http-1, Python slots n_http+p), bits 0..15
 * generation of the Python slot involved. FREE is 0.
 * `next` and `len` are written by the owner while WRITING and read by the
 * receiver after it acquired the descriptor (the ring's release/acquire
 * orders them).
 */
#define FA_CHUNK_FREE     0u
#define FA_CHUNK_WRITING  1u
#define FA_CHUNK_SENT     2u
#define FA_CHUNK_STATE(w)   ((w) >> 30)
#define FA_CHUNK_HOLDER(w)  (((w) >> 16) & 0x3fffu)
#define FA_CHUNK_GEN(w)     ((w) & 0xffffu)
#define FA_CHUNK_WORD(state, holder, gen) \
    (((uint32_t)(state) << 30) | (((uint32_t)(holder) & 0x3fffu) << 16) | ((uint32_t)(gen) & 0xffffu))

struct fa_chunk_meta_sh {
    _Atomic uint32_t state;
    uint32_t next;    /* next chunk of the message in the same arena, or FA_CHUNK_NONE */
    uint32_t len;     /* bytes used in this chunk (<= chunk_size) */
    uint32_t stamp;   /* the sender's: written with SENT (fa_msg_writer.stamp). HTTP
                         workers put the request ring index of the message there, so
                         that a restarted one can tell the envelopes its predecessor
                         marked SENT but never published (index >= the ring's tail) */
};

/* Per-slot counters, read by shm-stat. Each written by one process only
 * (relaxed atomics), on its own cache line. */
struct fa_stats_sh {
    _Atomic uint64_t requests;     /* completed */
    _Atomic uint64_t errors;       /* answered >= 500 */
    _Atomic uint64_t bytes_in;
    _Atomic uint64_t bytes_out;
    _Atomic uint64_t connections;  /* HTTP: open connections now */
    _Atomic uint64_t busy_ns;      /* Python: time spent in handlers */
    _Atomic uint64_t restarts;     /* written by the master */
    _Atomic uint64_t rss_kb;       /* written by the master */
    _Atomic uint64_t queued;       /* HTTP: requests waiting for a Python worker now */
};

/* Latency of a Python slot's requests as the HTTP workers see them (push to
 * answer): bucket i counts requests that took [2^i, 2^(i+1)) microseconds.
 * Written by every HTTP worker with relaxed atomic adds; read by shm-stat. */
#define FA_LAT_BUCKETS 32
struct fa_lat_sh {
    _Atomic uint64_t count;
    _Atomic uint64_t sum_us;
    _Atomic uint64_t bucket[FA_LAT_BUCKETS];
};

/* The request a Python worker is running now, written by that worker before
 * and after each handler call (relaxed; start_ns is written last with
 * release, and 0 means idle). The master reads it for --timeout. */
struct fa_current_sh {
    _Atomic uint64_t start_ns;     /* CLOCK_MONOTONIC when the handler started; 0: idle */
    _Atomic uint32_t route_id;
    _Atomic uint32_t http;         /* HTTP slot the request came from */
    _Atomic uint32_t token;
    _Atomic uint32_t queued_us;    /* reserved: time the request waited in the ring */
};

/* Why the master killed a Python slot's process (fa_slot_sh.kill_reason). */
enum fa_kill_reason { FA_KILL_NONE = 0, FA_KILL_TIMEOUT = 1 };

/* One per process slot.
 *   state, gen, pid: master (and the slot's own process for STARTING->READY).
 *   sleeping: doorbell flag; the slot's process stores 1 before it sleeps,
 *             producers exchange it 1 -> 0 and write the eventfd if it was 1.
 *   (the load board, requests in flight per Python slot, is kept per pair
 *   in the request rings: fa_ring_sh.in_flight, see fa_seg_py_in_flight)
 *   formerly in_flight: load board (Python slots): HTTP workers add when they push a
 *             request and subtract when its response arrives.
 *   death_seq: HTTP slots: the master increments it after any Python worker
 *             death (then wakes the worker unconditionally).
 *   version:  the app version the process serves; HTTP workers send requests
 *             only to Python workers of their own version (reload).
 *   seen_epoch: HTTP slots: after an HTTP worker has flushed its pushes it
 *             stores the drain_epoch it saw. Once every live HTTP worker acked
 *             epoch E, any Python slot marked DRAINING before E was published
 *             receives no new request: it can finish its rings and exit.
 */
struct fa_slot_sh {
    _Atomic uint32_t state;
    _Atomic uint32_t gen;
    _Atomic int32_t  pid;
    _Atomic uint32_t death_seq;
    char pad0[FA_CACHELINE - 4 * sizeof(uint32_t)];
    _Atomic uint32_t sleeping;
    char pad1[FA_CACHELINE - sizeof(uint32_t)];
    uint32_t unused_in_flight;     /* see fa_ring_sh.in_flight */
    char pad2[FA_CACHELINE - sizeof(uint32_t)];
    _Atomic uint32_t version;      /* app version (reload count) this process serves */
    _Atomic uint32_t seen_epoch;   /* HTTP: last hdr->drain_epoch acknowledged */
    _Atomic uint32_t kill_reason;  /* Python: enum fa_kill_reason, set by the master before a kill */
    _Atomic uint32_t kill_token;   /* Python: token of the request that timed out */
    _Atomic uint32_t kill_http;    /* Python: its HTTP slot */
    uint32_t pad_k;
    _Atomic uint64_t kill_start_ns;/* Python: when that request had started running */
    char pad3[FA_CACHELINE - 6 * sizeof(uint32_t) - sizeof(uint64_t)];
    struct fa_current_sh current;  /* Python: written by the worker itself */
    struct fa_stats_sh stats;
    struct fa_lat_sh lat;          /* Python: written by HTTP workers */
} __attribute__((aligned(FA_CACHELINE)));

struct fa_seg_header_sh {
    uint32_t magic;
    uint32_t version;
    uint64_t size;             /* whole segment, bytes */
    uint32_t n_http;
    uint32_t max_py;
    uint32_t ring_cap;         /* descriptors per ring, power of two */
    uint32_t chunk_size;       /* bytes per chunk */
    uint32_t chunks_per_arena;
    uint32_t n_arenas;         /* n_http + max_py */
    uint64_t off_http_slots;
    uint64_t off_py_slots;
    uint64_t off_rings;
    uint64_t ring_stride;      /* bytes per ring, header + slots */
    uint64_t off_chunk_meta;
    uint64_t off_chunks;
    _Atomic int32_t master_pid;
    uint32_t owner_uid;
    _Atomic uint32_t stopping; /* master sets on shutdown */
    _Atomic uint32_t py_target;/* Python workers wanted now */
    _Atomic uint32_t scale_request; /* `fasterapi scale` writes N here, then signals the master */
    _Atomic uint32_t drain_epoch;   /* master bumps it; HTTP workers acknowledge in seen_epoch */
    _Atomic uint32_t app_version;   /* version new processes serve (reloads bump it) */
    uint64_t started_at;       /* unix seconds */
    char name[FA_NAME_MAX];
};

#endif
