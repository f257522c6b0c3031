/* module.h - `_fasterapi`, the built-in module of fasterapi-pyworker.
 *
 * The module gives the Python package what only the C side knows:
 * worker_info() (slot, generation, pid, HTTP worker count), and the C JSON
 * encoder (json.h): dumps(obj, default=None) -> bytes and
 * set_json_default(fn). It also owns the heap type that exports a request body living in
 * shared memory to Python (ShmBuffer, used by serve.c only; Python code never
 * creates one).
 *
 * Register with fa_pymod_register() before Py_InitializeFromConfig(); get the
 * module object after initialisation with PyImport_ImportModule("_fasterapi").
 */
#ifndef FA_PYWORKER_MODULE_H
#define FA_PYWORKER_MODULE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

struct fa_seg;
struct fa_json_cache;

#define FA_PYMOD_NAME "_fasterapi"

/* Adds _fasterapi to the interpreter's built-in modules. Before init only.
 * 0 or -1. */
int fa_pymod_register(void);

/* Records the worker identity that worker_info() reports (serve mode). */
void fa_pymod_set_worker(PyObject *mod, int slot, uint32_t gen, uint32_t n_http);

/* The JSON encoder's cache in the module state (borrowed pointer, valid
 * while the module lives). */
struct fa_json_cache *fa_pymod_json(PyObject *mod);

/* The RequestHeaders type (headers.h), borrowed. */
PyTypeObject *fa_pymod_hdrs_type(PyObject *mod);

/* --- ShmBuffer: a read-only buffer exporter over a request body in shm ---
 *
 * serve.c arms one with the body's address, wraps it in a memoryview
 * (PyMemoryView_FromObject) for the handler, and after the call asks
 * whether any view is still alive. If none is, the request chunks are freed
 * at once and the exporter is reused for the next request. If the app kept
 * a view (even a slice of the memoryview, which release() cannot see), the
 * chunks are handed to the exporter, which frees them when its last export
 * is released: a view never reads a chunk that was given back to its owner.
 * A disarmed exporter refuses new exports, so an app that kept
 * `memoryview.obj` cannot read a later request's body either. */

/* New reference, or NULL with an exception set. */
PyObject *fa_shmbuf_new(PyObject *mod);
/* Points an idle exporter at [data, data + len). */
void fa_shmbuf_arm(PyObject *buf, const char *data, Py_ssize_t len);
/* Live exports (memoryviews over it, direct or through slices). */
Py_ssize_t fa_shmbuf_exports(PyObject *buf);
/* Disarms the exporter: no new export is possible. If exports are still
 * alive, the chain `first` of `arena` is freed (fa_msg_free) when the last
 * one goes away, and the function returns 1; otherwise it returns 0 and the
 * caller frees the chain itself. */
int fa_shmbuf_disarm(PyObject *buf, const struct fa_seg *seg, uint32_t arena,
                     uint32_t first);

#endif
