/* headers.h - RequestHeaders: the request headers dispatch receives when
 * the package asks for them lazily (PROTOCOL.md, fasterapi._boot.LAZY_HEADERS).
 *
 * A read-only sequence of (name, value) str tuples, names lower-cased,
 * values latin-1 decoded, in request order: what the list would hold. It
 * is made from the envelope's bytes in shared memory only when something
 * reads it, so a handler that never looks at the headers costs no str and
 * no tuple for them. When dispatch returns, serve.c disarms it: if the app
 * still holds it, it is built then (from the bytes, still valid), else it
 * is reused for the next request.
 *
 * The type is a heap type of the _fasterapi module (module.c creates it
 * with fa_hdrs_spec); one object serves request after request.
 */
#ifndef FA_PYWORKER_HEADERS_H
#define FA_PYWORKER_HEADERS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

struct fa_env;

extern PyType_Spec fa_hdrs_spec;

/* New reference to an idle object of type tp, or NULL with an exception. */
PyObject *fa_hdrs_new(PyTypeObject *tp);
/* Points an idle object at e's headers (e and the bytes it points to must
 * stay valid until fa_hdrs_disarm). */
void fa_hdrs_arm(PyObject *h, const struct fa_env *e);
/* Ends the request: if the app holds the object (a reference besides the
 * caller's), builds the list now. 1 if the object is held (the caller must
 * not reuse it), 0 if it is free for the next request; -1 with an
 * exception set if building failed (the object then reads as empty). */
int fa_hdrs_disarm(PyObject *h);

#endif
