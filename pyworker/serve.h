/* serve.h - the Python worker's serve loop: pop request envelopes from every
 * HTTP worker's ring, call the app's dispatch, write responses into this
 * slot's arena and push them back (PROTOCOL.md, DESIGN.md "Life of a Python
 * request").
 */
#ifndef FA_PYWORKER_SERVE_H
#define FA_PYWORKER_SERVE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <signal.h>
#include <stdint.h>

struct fa_seg;

struct fa_serve_config {
    const struct fa_seg *seg;     /* attached, writable */
    uint32_t slot;                /* this Python slot, < max_py */
    uint32_t gen;                 /* this incarnation's generation */
    int efd;                      /* this slot's doorbell eventfd */
    const int *http_efds;         /* one per HTTP slot, n_http entries */
    PyObject *dispatch;           /* borrowed: fasterapi._boot.load()'s result */
    PyObject *module;             /* borrowed: the _fasterapi module */
    volatile sig_atomic_t *stop;  /* set by the SIGTERM handler */
    int lazy_headers;             /* fasterapi._boot.LAZY_HEADERS: headers as a
                                     RequestHeaders (headers.h), not a list */
    PyObject *loop_step;          /* borrowed or NULL: fasterapi._boot.loop_step */
    PyObject *loop_wait;          /* borrowed or NULL: fasterapi._boot.loop_wait */
    uint32_t concurrency;         /* deferred requests open at once, 1..65535
                                     (FASTERAPI_PY_CONCURRENCY) */
    uint64_t timeout_ns;          /* deferred request deadline, 0 = none (FASTERAPI_TIMEOUT) */
    int no_batch;                 /* FASTERAPI_NO_BATCH: one request per pop, publish
                                     each response at once (perf's off switch) */
    int no_pool;                  /* FASTERAPI_NO_POOL: no string, tuple or object
                                     caches (perf's off switch) */
};

/* _fasterapi's functions for deferred and streamed responses (PROTOCOL.md):
 * defer, respond, start, send, abort, writable, disconnected, pending,
 * concurrency, wake_loop. They act on the serve loop running in this
 * process and raise RuntimeError when none runs. module.c adds them. */
extern PyMethodDef fa_serve_methods[];

/* Runs until *stop is set and every request ring is empty (everything popped
 * was answered), or until the parent process goes away. Called with the GIL
 * held; releases it only while sleeping. Returns 0 on a clean stop, -1 with a
 * message on stderr on a fatal error: out of memory at start-up, a dead
 * master, or, once stopping, an HTTP worker that has taken no response (ring
 * space, chunks) for 5 s. */
int fa_serve_run(const struct fa_serve_config *cfg);

#endif
