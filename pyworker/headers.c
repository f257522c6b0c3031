/* headers.c - RequestHeaders, built on first use (see headers.h).
 *
 * States:   idle  --arm-->  armed (bytes valid, list NULL)
 *           armed --first read--> built (list set; bytes no longer read)
 *           armed/built --disarm--> idle (nobody else holds it)
 *                                or built and detached (the app holds it)
 * Every read goes through hdrs__list(), which builds when armed, so no read
 * can reach the envelope's bytes after disarm.
 */
#include "pyworker/headers.h"   /* Python.h first */

#include "pyworker/envelope.h"

typedef struct {
    PyObject_HEAD
    PyObject *list;               /* strong: the built list, or NULL */
    const struct fa_env *env;     /* armed: the envelope, else NULL */
    const unsigned char *p;       /* armed: its first header name */
    uint32_t n;                   /* pairs */
} hdrs_object;

/* The (name, value) list from the envelope. New reference, or NULL. */
static PyObject *hdrs__build(hdrs_object *h)
{
    const unsigned char *it = h->p;
    PyObject *list = PyList_New(h->n);   /* new */

    if (list == NULL)
        return NULL;
    for (uint32_t i = 0; i < h->n; i++) {
        const char *np, *vp;
        uint32_t nn, vn;
        PyObject *name, *value, *t;
        Py_UCS1 *d;
        unsigned hi = 0;

        it = fa_env_str(h->env, it, &np, &nn);
        it = fa_env_str(h->env, it, &vp, &vn);
        for (uint32_t k = 0; k < nn; k++)
            hi |= (unsigned char)np[k];
        if ((name = PyUnicode_New(nn, hi & 0x80 ? 255 : 127)) == NULL)
            goto fail;
        d = PyUnicode_1BYTE_DATA(name);
        for (uint32_t k = 0; k < nn; k++) {
            unsigned char c = (unsigned char)np[k];
            d[k] = (c >= 'A' && c <= 'Z') ? (Py_UCS1)(c + 32) : c;
        }
        if ((value = PyUnicode_DecodeLatin1(vp, vn, NULL)) == NULL) {
            Py_DECREF(name);
            goto fail;
        }
        if ((t = PyTuple_Pack(2, name, value)) == NULL) {
            Py_DECREF(name);
            Py_DECREF(value);
            goto fail;
        }
        Py_DECREF(name);
        Py_DECREF(value);
        PyList_SET_ITEM(list, i, t);   /* stolen */
    }
    return list;
fail:
    Py_DECREF(list);
    return NULL;
}

/* The list, built if need be. Borrowed, or NULL with an exception. */
static PyObject *hdrs__list(hdrs_object *h)
{
    if (h->list != NULL)
        return h->list;
    if (h->env == NULL) {
        /* Idle: only reachable by a reference the app took from a
         * request that ended without building (impossible: disarm builds
         * when the app holds one). */
        PyErr_SetString(PyExc_RuntimeError, "request headers read outside their request");
        return NULL;
    }
    h->list = hdrs__build(h);
    if (h->list != NULL)
        h->env = NULL;
    return h->list;
}

PyObject *fa_hdrs_new(PyTypeObject *tp)
{
    hdrs_object *h = PyObject_New(hdrs_object, tp);   /* new; holds a type ref */

    if (h == NULL)
        return NULL;
    h->list = NULL;
    h->env = NULL;
    h->p = NULL;
    h->n = 0;
    return (PyObject *)h;
}

void fa_hdrs_arm(PyObject *o, const struct fa_env *e)
{
    hdrs_object *h = (hdrs_object *)o;

    Py_CLEAR(h->list);
    h->env = e;
    h->p = e->headers;
    h->n = e->n_headers;
}

int fa_hdrs_disarm(PyObject *o)
{
    hdrs_object *h = (hdrs_object *)o;
    int held = Py_REFCNT(o) > 1, rc = held;

    if (held && h->list == NULL && h->env != NULL && hdrs__list(h) == NULL) {
        h->list = PyList_New(0);   /* reads as empty from now on */
        rc = -1;
    }
    h->env = NULL;
    h->p = NULL;
    if (!held)
        Py_CLEAR(h->list);
    return rc;
}

/* ------------------------------------------------------------------ */
/* The sequence                                                         */
/* ------------------------------------------------------------------ */

static Py_ssize_t hdrs_len(PyObject *self)
{
    hdrs_object *h = (hdrs_object *)self;

    if (h->list != NULL)
        return PyList_GET_SIZE(h->list);
    return h->env != NULL ? (Py_ssize_t)h->n : 0;
}

static PyObject *hdrs_subscript(PyObject *self, PyObject *key)
{
    PyObject *l = hdrs__list((hdrs_object *)self);

    return l != NULL ? PyObject_GetItem(l, key) : NULL;
}

static PyObject *hdrs_item(PyObject *self, Py_ssize_t i)
{
    PyObject *l = hdrs__list((hdrs_object *)self);

    if (l == NULL)
        return NULL;
    if (i < 0 || i >= PyList_GET_SIZE(l)) {
        PyErr_SetString(PyExc_IndexError, "request header index out of range");
        return NULL;
    }
    return Py_NewRef(PyList_GET_ITEM(l, i));
}

static int hdrs_contains(PyObject *self, PyObject *v)
{
    PyObject *l = hdrs__list((hdrs_object *)self);

    return l != NULL ? PySequence_Contains(l, v) : -1;
}

static PyObject *hdrs_iter(PyObject *self)
{
    PyObject *l = hdrs__list((hdrs_object *)self);

    return l != NULL ? PyObject_GetIter(l) : NULL;
}

static PyObject *hdrs_repr(PyObject *self)
{
    PyObject *l = hdrs__list((hdrs_object *)self);

    return l != NULL ? PyUnicode_FromFormat("RequestHeaders(%R)", l) : NULL;
}

/* Equal to a list, a tuple or another RequestHeaders with the same pairs. */
static PyObject *hdrs_richcompare(PyObject *self, PyObject *other, int op)
{
    PyObject *l = hdrs__list((hdrs_object *)self), *o = other, *r;

    if (l == NULL)
        return NULL;
    if ((op != Py_EQ && op != Py_NE))
        Py_RETURN_NOTIMPLEMENTED;
    if (Py_TYPE(other) == Py_TYPE(self)) {
        if ((o = hdrs__list((hdrs_object *)other)) == NULL)
            return NULL;
        Py_INCREF(o);
    } else if (PyTuple_Check(other)) {
        if ((o = PySequence_List(other)) == NULL)   /* new */
            return NULL;
    } else if (PyList_Check(other)) {
        Py_INCREF(o);
    } else {
        Py_RETURN_NOTIMPLEMENTED;
    }
    r = PyObject_RichCompare(l, o, op);
    Py_DECREF(o);
    return r;
}

PyDoc_STRVAR(hdrs_copy_doc, "copy() -> list of the (name, value) pairs");

static PyObject *hdrs_copy(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *l = hdrs__list((hdrs_object *)self);

    return l != NULL ? PyList_GetSlice(l, 0, PyList_GET_SIZE(l)) : NULL;
}

static PyMethodDef hdrs_methods[] = {
    {"copy", hdrs_copy, METH_NOARGS, hdrs_copy_doc},
    {NULL, NULL, 0, NULL},
};

/* Not a GC type: it refers only to a list of tuples of str, which cannot
 * lead back to it. */
static void hdrs_dealloc(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);

    Py_CLEAR(((hdrs_object *)self)->list);
    tp->tp_free(self);
    Py_DECREF(tp);   /* heap type instances own a reference to their type */
}

static PyType_Slot hdrs_slots[] = {
    {Py_tp_dealloc, hdrs_dealloc},
    {Py_tp_repr, hdrs_repr},
    {Py_tp_iter, hdrs_iter},
    {Py_tp_richcompare, hdrs_richcompare},
    {Py_tp_methods, hdrs_methods},
    {Py_tp_hash, PyObject_HashNotImplemented},
    {Py_sq_length, hdrs_len},
    {Py_sq_item, hdrs_item},
    {Py_sq_contains, hdrs_contains},
    {Py_mp_length, hdrs_len},
    {Py_mp_subscript, hdrs_subscript},
    {Py_tp_doc, "The request's headers: a read-only sequence of (name, value) str pairs,\n"
                "names lower case, in request order, built on first use (internal)."},
    {0, NULL},
};

PyType_Spec fa_hdrs_spec = {
    .name = "_fasterapi.RequestHeaders",
    .basicsize = sizeof(hdrs_object),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION |
             Py_TPFLAGS_SEQUENCE,
    .slots = hdrs_slots,
};
