/* module.c - the built-in module `_fasterapi` (see module.h).
 *
 * Shaped like CPython's Modules/_pickle.c: multi-phase init, state in a
 * module state struct (no C globals), heap types created from specs in the
 * exec slot. Comments say whether a reference is new, borrowed or stolen.
 */
#include "pyworker/module.h"   /* Python.h first */
#include "pyworker/serve.h"

#include <unistd.h>

#include "pyworker/headers.h"
#include "pyworker/json.h"
#include "shm/chunk.h"

typedef struct {
    PyTypeObject *shmbuf_type;   /* strong */
    PyTypeObject *hdrs_type;     /* strong: RequestHeaders (headers.h) */
    struct fa_json_cache json;   /* strong references inside */
    int slot;                    /* -1 outside serve mode */
    uint32_t gen;
    uint32_t n_http;
} fa_pymod_state;

static inline fa_pymod_state *pymod__state(PyObject *mod)
{
    return (fa_pymod_state *)PyModule_GetState(mod);
}

/* ------------------------------------------------------------------ */
/* ShmBuffer                                                            */
/* ------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    const char *data;            /* NULL when disarmed */
    Py_ssize_t len;
    Py_ssize_t exports;
    /* Deferred free, set by fa_shmbuf_disarm when views outlive the call. */
    const struct fa_seg *seg;
    uint32_t arena;
    uint32_t first;
    int owns_chain;
} shmbuf_object;

static int shmbuf_getbuffer(PyObject *self, Py_buffer *view, int flags)
{
    shmbuf_object *b = (shmbuf_object *)self;

    if (b->data == NULL) {
        PyErr_SetString(PyExc_BufferError,
                        "the request body is gone: it lived in shared memory only "
                        "during the handler call (copy it with bytes(body) to keep it)");
        view->obj = NULL;
        return -1;
    }
    if (PyBuffer_FillInfo(view, self, (void *)b->data, b->len, 1, flags) < 0)
        return -1;
    b->exports++;
    return 0;
}

static void shmbuf_releasebuffer(PyObject *self, Py_buffer *view)
{
    shmbuf_object *b = (shmbuf_object *)self;

    (void)view;
    if (--b->exports == 0 && b->owns_chain) {
        fa_msg_free(b->seg, b->arena, b->first);
        b->owns_chain = 0;
    }
}

static void shmbuf_dealloc(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);

    /* exports > 0 is impossible here: each export holds a reference. */
    tp->tp_free(self);
    Py_DECREF(tp);   /* heap type instances own a reference to their type */
}

static PyType_Slot shmbuf_slots[] = {
    {Py_tp_dealloc, shmbuf_dealloc},
    {Py_bf_getbuffer, shmbuf_getbuffer},
    {Py_bf_releasebuffer, shmbuf_releasebuffer},
    {Py_tp_doc, "Read-only view of a request body in shared memory (internal)."},
    {0, NULL},
};

static PyType_Spec shmbuf_spec = {
    .name = FA_PYMOD_NAME ".ShmBuffer",
    .basicsize = sizeof(shmbuf_object),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = shmbuf_slots,
};

PyObject *fa_shmbuf_new(PyObject *mod)
{
    fa_pymod_state *st = pymod__state(mod);
    shmbuf_object *b;

    b = PyObject_New(shmbuf_object, st->shmbuf_type);   /* new; holds a type ref */
    if (b == NULL)
        return NULL;
    b->data = NULL;
    b->len = 0;
    b->exports = 0;
    b->seg = NULL;
    b->arena = 0;
    b->first = FA_CHUNK_NONE;
    b->owns_chain = 0;
    return (PyObject *)b;
}

void fa_shmbuf_arm(PyObject *buf, const char *data, Py_ssize_t len)
{
    shmbuf_object *b = (shmbuf_object *)buf;

    b->data = data;
    b->len = len;
}

Py_ssize_t fa_shmbuf_exports(PyObject *buf)
{
    return ((shmbuf_object *)buf)->exports;
}

int fa_shmbuf_disarm(PyObject *buf, const struct fa_seg *seg, uint32_t arena, uint32_t first)
{
    shmbuf_object *b = (shmbuf_object *)buf;

    b->data = NULL;
    b->len = 0;
    if (b->exports == 0)
        return 0;
    b->seg = seg;
    b->arena = arena;
    b->first = first;
    b->owns_chain = 1;
    return 1;
}

/* ------------------------------------------------------------------ */
/* Module functions                                                     */
/* ------------------------------------------------------------------ */

PyDoc_STRVAR(worker_info_doc,
"worker_info() -> dict\n\n"
"This worker's identity: {'slot': int, 'gen': int, 'pid': int, 'n_http': int}.\n"
"slot is -1 outside serve mode (e.g. while describing the app).");

static PyObject *fa_worker_info(PyObject *mod, PyObject *Py_UNUSED(ignored))
{
    fa_pymod_state *st = pymod__state(mod);

    /* new */
    return Py_BuildValue("{s:i,s:k,s:l,s:k}",
                         "slot", st->slot,
                         "gen", (unsigned long)st->gen,
                         "pid", (long)getpid(),
                         "n_http", (unsigned long)st->n_http);
}

PyDoc_STRVAR(dumps_doc,
"dumps(obj, /, default=None) -> bytes\n\n"
"obj as JSON, UTF-8: the encoder that writes handlers' results into shared\n"
"memory, here into a bytes object. The same bytes as\n"
"json.dumps(obj, separators=(',', ':'), ensure_ascii=False,\n"
"allow_nan=False).encode(), for what json encodes; besides, an object with a\n"
"__json__() method is encoded as what that returns, a dataclass instance as\n"
"an object of its fields, and anything else as what default(obj) returns\n"
"(default: this call's, else the one set_json_default() set), if any.\n"
"Errors name the path of the bad value, e.g. TypeError: Object of type set\n"
"is not JSON serializable (at $.items[3].tags). NaN and infinities raise\n"
"ValueError, and so does nesting deeper than 256 levels.");

static PyObject *fa_dumps(PyObject *mod, PyObject *const *args, Py_ssize_t nargs,
                          PyObject *kwnames)
{
    Py_ssize_t nkw = kwnames != NULL ? PyTuple_GET_SIZE(kwnames) : 0;
    PyObject *deflt = nargs == 2 ? args[1] : NULL;   /* borrowed */

    if (nargs < 1 || nargs > 2) {
        PyErr_Format(PyExc_TypeError, "dumps() takes 1 or 2 positional arguments (%zd given)",
                     nargs);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, i);   /* borrowed */

        if (deflt != NULL || !PyUnicode_Check(name) ||
            PyUnicode_CompareWithASCIIString(name, "default") != 0) {
            PyErr_Format(PyExc_TypeError, "dumps() got an unexpected or repeated keyword "
                         "argument '%S'", name);
            return NULL;
        }
        deflt = args[nargs + i];
    }
    if (deflt == Py_None)
        deflt = NULL;
    if (deflt != NULL && !PyCallable_Check(deflt)) {
        PyErr_Format(PyExc_TypeError, "dumps(): default must be callable or None, not %s",
                     Py_TYPE(deflt)->tp_name);
        return NULL;
    }
    return fa_json_dumps(&pymod__state(mod)->json, args[0], deflt);
}

PyDoc_STRVAR(set_json_default_doc,
"set_json_default(fn, /) -> None\n\n"
"fn(obj) is called for a value the JSON encoder does not know (after\n"
"__json__ and dataclasses) and what it returns is encoded instead; it raises\n"
"TypeError to refuse. None removes it. Used for the bodies dispatch returns\n"
"and by dumps() without its own default.");

static PyObject *fa_set_json_default(PyObject *mod, PyObject *fn)
{
    fa_pymod_state *st = pymod__state(mod);

    if (fn != Py_None && !PyCallable_Check(fn)) {
        PyErr_Format(PyExc_TypeError, "set_json_default(): expected a callable or None, not %s",
                     Py_TYPE(fn)->tp_name);
        return NULL;
    }
    Py_XSETREF(st->json.default_fn, fn == Py_None ? NULL : Py_NewRef(fn));
    Py_RETURN_NONE;
}

static PyMethodDef pymod_methods[] = {
    {"worker_info", fa_worker_info, METH_NOARGS, worker_info_doc},
    {"dumps", (PyCFunction)(void (*)(void))fa_dumps, METH_FASTCALL | METH_KEYWORDS, dumps_doc},
    {"set_json_default", fa_set_json_default, METH_O, set_json_default_doc},
    {NULL, NULL, 0, NULL},
};

void fa_pymod_set_worker(PyObject *mod, int slot, uint32_t gen, uint32_t n_http)
{
    fa_pymod_state *st = pymod__state(mod);

    st->slot = slot;
    st->gen = gen;
    st->n_http = n_http;
}

struct fa_json_cache *fa_pymod_json(PyObject *mod)
{
    return &pymod__state(mod)->json;
}

PyTypeObject *fa_pymod_hdrs_type(PyObject *mod)
{
    return pymod__state(mod)->hdrs_type;
}

/* ------------------------------------------------------------------ */
/* Multi-phase init                                                     */
/* ------------------------------------------------------------------ */

static int pymod_exec(PyObject *mod)
{
    fa_pymod_state *st = pymod__state(mod);

    st->slot = -1;
    st->gen = 0;
    st->n_http = 0;
    if (fa_json_cache_init(&st->json) < 0)
        return -1;
    /* new; kept in the state, and the module gets its own reference */
    st->shmbuf_type = (PyTypeObject *)PyType_FromModuleAndSpec(mod, &shmbuf_spec, NULL);
    if (st->shmbuf_type == NULL)
        return -1;
    if (PyModule_AddType(mod, st->shmbuf_type) < 0)
        return -1;
    st->hdrs_type = (PyTypeObject *)PyType_FromModuleAndSpec(mod, &fa_hdrs_spec, NULL);   /* new */
    if (st->hdrs_type == NULL || PyModule_AddType(mod, st->hdrs_type) < 0)
        return -1;
    /* defer, respond, start, send, ...: they act on the serve loop (serve.c). */
    if (PyModule_AddFunctions(mod, fa_serve_methods) < 0)
        return -1;
    return 0;
}

static int pymod_traverse(PyObject *mod, visitproc visit, void *arg)
{
    fa_pymod_state *st = pymod__state(mod);

    if (st != NULL) {
        Py_VISIT(st->shmbuf_type);
        Py_VISIT(st->hdrs_type);
        return fa_json_cache_traverse(&st->json, visit, arg);
    }
    return 0;
}

static int pymod_clear(PyObject *mod)
{
    fa_pymod_state *st = pymod__state(mod);

    if (st != NULL) {
        Py_CLEAR(st->shmbuf_type);
        Py_CLEAR(st->hdrs_type);
        fa_json_cache_clear(&st->json);
    }
    return 0;
}

static void pymod_free(void *mod)
{
    pymod_clear((PyObject *)mod);
}

static PyModuleDef_Slot pymod_slots[] = {
    {Py_mod_exec, pymod_exec},
    {0, NULL},
};

PyDoc_STRVAR(pymod_doc,
"Built-in module of fasterapi-pyworker: what the C side of the worker exposes\n"
"to the fasterapi package.");

static struct PyModuleDef pymod_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = FA_PYMOD_NAME,
    .m_doc = pymod_doc,
    .m_size = sizeof(fa_pymod_state),
    .m_methods = pymod_methods,
    .m_slots = pymod_slots,
    .m_traverse = pymod_traverse,
    .m_clear = pymod_clear,
    .m_free = pymod_free,
};

static PyObject *pymod_init(void)
{
    return PyModuleDef_Init(&pymod_def);   /* borrowed-like: the static def */
}

int fa_pymod_register(void)
{
    return PyImport_AppendInittab(FA_PYMOD_NAME, pymod_init);
}
