/* fuzz_json.c - libFuzzer target: the JSON encoder of fasterapi-pyworker
 * (pyworker/json.c, fa_json_encode and fa_json_dumps; see json.h).
 *
 * The encoder walks CPython objects, so this target embeds the interpreter
 * (initialised once). Each input is a small program that builds a Python
 * value: None, booleans, ints (small and huge), floats (NaN and infinities
 * included), str (any code point, lone surrogates included), bytes, list,
 * tuple, dict with keys of every kind json accepts or refuses, subclasses
 * of int, float, str, list and dict, an IntEnum, objects with __json__,
 * dataclass instances and sets.
 *
 * Oracle: json.h promises the bytes of
 *     json.dumps(obj, separators=(",", ":"), ensure_ascii=False,
 *                allow_nan=False, default=<hooks 1-3 of json.h>).encode()
 * so the reference runs exactly that in Python. When the reference raises,
 * the encoder must raise the same exception type; when it succeeds, the
 * encoder must give the same bytes; except deeper than FA_JSON_MAX_DEPTH,
 * where the encoder must raise ValueError. fa_json_encode runs into a sink
 * whose runs have fuzzer-chosen sizes, each run its own exact-size heap
 * block (ASan sees a write past `end`), and must give the same bytes as
 * fa_json_dumps.
 *
 * Leak detection is off for this target (run-fuzz): CPython keeps interned
 * strings and free lists on purpose.
 */
#include "pyworker/json.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct fa_json_cache cache;
static PyObject *ns;          /* namespace of the helper code below */
static PyObject *reference;   /* ns["reference"] */
static PyObject *classes[8];  /* IntSub, FloatSub, StrSub, ListSub, DictSub, WithJson, DC, Color */

static const char helper_code[] =
    "import json, dataclasses, enum\n"
    "class IntSub(int): pass\n"
    "class FloatSub(float): pass\n"
    "class StrSub(str): pass\n"
    "class ListSub(list): pass\n"
    "class DictSub(dict): pass\n"
    "class WithJson:\n"
    "    def __init__(self, v): self.v = v\n"
    "    def __json__(self): return self.v\n"
    "@dataclasses.dataclass\n"
    "class DC:\n"
    "    a: object\n"
    "    b: object = None\n"
    "class Color(enum.IntEnum):\n"
    "    RED = 1\n"
    "    BLUE = 2\n"
    "def _default(o):\n"
    "    m = getattr(o, '__json__', None)\n"
    "    if m is not None:\n"
    "        return m()\n"
    "    if dataclasses.is_dataclass(o) and not isinstance(o, type):\n"
    "        return {f.name: getattr(o, f.name) for f in dataclasses.fields(o)}\n"
    "    raise TypeError(f'Object of type {type(o).__name__} is not JSON serializable')\n"
    "def reference(o):\n"
    "    return json.dumps(o, separators=(',', ':'), ensure_ascii=False,\n"
    "                      allow_nan=False, default=_default).encode('utf-8')\n";

static PyObject *cur_obj;   /* the value being encoded, for the failure message */

static void fz_fail(const char *what)
{
    fprintf(stderr, "fuzz_json: %s\n", what);
    if (PyErr_Occurred())
        PyErr_Print();
    if (cur_obj != NULL) {
        PyObject *r = PyObject_Repr(cur_obj);   /* new */
        const char *u = r ? PyUnicode_AsUTF8(r) : NULL;
        if (u == NULL) {
            PyErr_Clear();
            u = "(no repr)";
        }
        fprintf(stderr, "fuzz_json: the value: %.2000s\n", u);
        Py_XDECREF(r);
    }
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static const char *const names[8] = {"IntSub", "FloatSub", "StrSub", "ListSub",
                                         "DictSub", "WithJson", "DC", "Color"};
    PyObject *r;

    (void)argc;
    (void)argv;
    Py_Initialize();
    ns = PyDict_New();
    PyDict_SetItemString(ns, "__builtins__", PyEval_GetBuiltins());
    r = PyRun_String(helper_code, Py_file_input, ns, ns);
    if (r == NULL)
        fz_fail("helper code failed");
    Py_DECREF(r);
    reference = PyDict_GetItemString(ns, "reference");   /* borrowed, kept by ns */
    for (int i = 0; i < 8; i++)
        if ((classes[i] = PyDict_GetItemString(ns, names[i])) == NULL)
            fz_fail("helper class missing");
    if (fa_json_cache_init(&cache) < 0)
        fz_fail("fa_json_cache_init failed");
    return 0;
}

/* The pending exception as one new reference (Python 3.11 has no
 * PyErr_GetRaisedException), or NULL. */
static PyObject *take_exc(void)
{
    PyObject *t, *v, *tb;

    PyErr_Fetch(&t, &v, &tb);
    if (t == NULL)
        return NULL;
    PyErr_NormalizeException(&t, &v, &tb);
    Py_XDECREF(t);
    Py_XDECREF(tb);
    return v;
}

/* ---- building a value from the input ------------------------------------ */

struct in {
    const uint8_t *p;
    size_t n;
};

static uint32_t take(struct in *in, unsigned bytes)
{
    uint32_t v = 0;

    for (unsigned i = 0; i < bytes; i++) {
        v |= (uint32_t)(in->n ? *in->p : 0) << (8 * i);
        if (in->n) {
            in->p++;
            in->n--;
        }
    }
    return v;
}

#define BUILD_MAX_DEPTH 300    /* past FA_JSON_MAX_DEPTH, below Python's limit */

static PyObject *build(struct in *in, int depth, int *max_depth);

static PyObject *call1(PyObject *cls, PyObject *arg)   /* steals arg */
{
    PyObject *r;

    if (arg == NULL)
        return NULL;
    r = PyObject_CallOneArg(cls, arg);
    Py_DECREF(arg);
    return r;
}

static PyObject *build_str(struct in *in)
{
    uint32_t n = take(in, 1) % 24, kind = take(in, 1);
    Py_UCS4 cp[24];

    for (uint32_t i = 0; i < n; i++) {
        switch (kind & 3) {
        case 0: cp[i] = 0x20 + take(in, 1) % 0x60; break;          /* ASCII, '"' and '\\' */
        case 1: cp[i] = take(in, 1); break;                          /* latin-1, controls */
        case 2: cp[i] = take(in, 2); break;                          /* BMP, surrogates */
        default: cp[i] = take(in, 3) % 0x110000; break;              /* any */
        }
    }
    return PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, cp, n);
}

static PyObject *build_key(struct in *in, int *max_depth)
{
    switch (take(in, 1) % 8) {
    case 0: case 1: case 2: return build_str(in);
    case 3: return PyLong_FromLong((int32_t)take(in, 4));
    case 4: { double d; uint64_t b = take(in, 4) | (uint64_t)take(in, 4) << 32;
              memcpy(&d, &b, sizeof d); return PyFloat_FromDouble(d); }
    case 5: return Py_NewRef(take(in, 1) & 1 ? Py_True : Py_False);
    case 6: return Py_NewRef(Py_None);
    default: return PyTuple_New(0);   /* refused by json: TypeError */
    }
    (void)max_depth;
}

static PyObject *build(struct in *in, int depth, int *max_depth)
{
    uint32_t op = take(in, 1), n;
    PyObject *o, *k, *v;

    if (depth >= BUILD_MAX_DEPTH)
        op = 0;
    /* Containers and hooks nest one level deeper (json.h's depth). */
    if ((op % 20 >= 8 && op % 20 <= 12) || op % 20 == 17 || op % 20 == 18)
        if (depth + 1 > *max_depth)
            *max_depth = depth + 1;
    switch (op % 20) {
    case 0: return Py_NewRef(Py_None);
    case 1: return Py_NewRef(Py_True);
    case 2: return Py_NewRef(Py_False);
    case 3: return PyLong_FromLongLong((int64_t)(take(in, 4) | (uint64_t)take(in, 4) << 32));
    case 4: {   /* a huge int: digits from the input, up to ~5000 decimal digits */
        uint32_t nb = take(in, 2) % 2100;
        unsigned char *b = malloc(nb ? nb : 1);
        for (uint32_t i = 0; i < nb; i++)
            b[i] = (unsigned char)take(in, 1);
        o = _PyLong_FromByteArray(b, nb, 1, 1);
        free(b);
        return o;
    }
    case 5: { double d; uint64_t b = take(in, 4) | (uint64_t)take(in, 4) << 32;
              memcpy(&d, &b, sizeof d); return PyFloat_FromDouble(d); }
    case 6: case 7: return build_str(in);
    case 8: case 9:
        n = take(in, 1) % 6;
        if ((o = PyList_New(n)) == NULL)
            return NULL;
        for (uint32_t i = 0; i < n; i++) {
            if ((v = build(in, depth + 1, max_depth)) == NULL) {
                Py_DECREF(o);
                return NULL;
            }
            PyList_SET_ITEM(o, i, v);   /* stolen */
        }
        return o;
    case 10:
        n = take(in, 1) % 4;
        if ((o = PyTuple_New(n)) == NULL)
            return NULL;
        for (uint32_t i = 0; i < n; i++) {
            if ((v = build(in, depth + 1, max_depth)) == NULL) {
                Py_DECREF(o);
                return NULL;
            }
            PyTuple_SET_ITEM(o, i, v);   /* stolen */
        }
        return o;
    case 11: case 12:
        n = take(in, 1) % 5;
        if ((o = PyDict_New()) == NULL)
            return NULL;
        for (uint32_t i = 0; i < n; i++) {
            k = build_key(in, max_depth);
            v = k ? build(in, depth + 1, max_depth) : NULL;
            if (v == NULL || PyDict_SetItem(o, k, v) < 0) {
                Py_XDECREF(k);
                Py_XDECREF(v);
                Py_DECREF(o);
                return NULL;
            }
            Py_DECREF(k);
            Py_DECREF(v);
        }
        return o;
    case 13: return call1(classes[0], PyLong_FromLong((int32_t)take(in, 4)));   /* IntSub */
    case 14: { double d = (double)(int32_t)take(in, 4) / 7.0;                    /* FloatSub */
               return call1(classes[1], PyFloat_FromDouble(d)); }
    case 15: return call1(classes[2], build_str(in));                            /* StrSub */
    case 16:   /* ListSub / DictSub around a built value */
        v = build(in, depth, max_depth);
        if (v == NULL)
            return NULL;
        if (PyList_Check(v))
            return call1(classes[3], v);
        if (PyDict_Check(v))
            return call1(classes[4], v);
        return v;
    case 17: return call1(classes[5], build(in, depth + 1, max_depth));          /* __json__ */
    case 18: {                                                                   /* dataclass */
        PyObject *a = build(in, depth + 1, max_depth), *b;
        if (a == NULL)
            return NULL;
        if ((b = build(in, depth + 1, max_depth)) == NULL) {
            Py_DECREF(a);
            return NULL;
        }
        o = PyObject_CallFunctionObjArgs(classes[6], a, b, NULL);
        Py_DECREF(a);
        Py_DECREF(b);
        return o;
    }
    default:
        switch (take(in, 1) % 3) {
        case 0: return PyObject_CallFunction(classes[7], "i", 1 + (int)(take(in, 1) & 1)); /* IntEnum */
        case 1: return PySet_New(NULL);                      /* TypeError */
        default: return PyBytes_FromStringAndSize("ab", 2);  /* TypeError */
        }
    }
}

/* Nesting of the value as built (keys overwritten in a dict no longer
 * count). json.h counts "containers and hook results": with hooks = 0 a
 * dataclass or __json__ object counts as its result alone, with hooks = 1
 * as one more level; the encoder's count lies between the two. */
static int obj_depth(PyObject *o, int hooks)
{
    int d = 0, k;

    if (PyList_Check(o) || PyTuple_Check(o)) {
        Py_ssize_t n = PySequence_Fast_GET_SIZE(o);
        for (Py_ssize_t i = 0; i < n; i++)
            if ((k = obj_depth(PySequence_Fast_GET_ITEM(o, i), hooks)) > d)
                d = k;
        return d + 1;
    }
    if (PyDict_Check(o)) {
        Py_ssize_t pos = 0;
        PyObject *key, *val;
        while (PyDict_Next(o, &pos, &key, &val))
            if ((k = obj_depth(val, hooks)) > d)
                d = k;
        return d + 1;
    }
    if (PyObject_TypeCheck(o, (PyTypeObject *)classes[5])) {          /* WithJson */
        PyObject *v = PyObject_GetAttrString(o, "v");                  /* new */
        d = v ? obj_depth(v, hooks) : 0;
        Py_XDECREF(v);
        PyErr_Clear();
        return d + hooks;
    }
    if (PyObject_TypeCheck(o, (PyTypeObject *)classes[6])) {          /* DC */
        PyObject *a = PyObject_GetAttrString(o, "a"), *b = PyObject_GetAttrString(o, "b");
        d = a ? obj_depth(a, hooks) : 0;
        if (b && (k = obj_depth(b, hooks)) > d)
            d = k;
        Py_XDECREF(a);
        Py_XDECREF(b);
        PyErr_Clear();
        return d + 1 + hooks;
    }
    return 0;
}

/* ---- a sink with small runs ----------------------------------------------- */

struct sink {
    struct fa_json_out out;
    char *run;          /* current run, its own heap block */
    char *acc;          /* bytes handed over so far */
    size_t acc_len, acc_cap;
    struct in *sizes;
};

static void sink_take(struct sink *s)
{
    size_t n = (size_t)(s->out.p - s->run);

    if (s->acc_len + n > s->acc_cap) {
        s->acc_cap = (s->acc_len + n) * 2 + 64;
        s->acc = realloc(s->acc, s->acc_cap);
    }
    if (n > 0) {
        memcpy(s->acc + s->acc_len, s->run, n);
        s->acc_len += n;
    }
    free(s->run);
    s->run = NULL;
}

static int sink_more(struct fa_json_out *out, size_t need)
{
    struct sink *s = (struct sink *)out;
    size_t len = need + take(s->sizes, 1) % 16;

    if (need > FA_JSON_NEED_MAX)
        fz_fail("the encoder asked for more than FA_JSON_NEED_MAX bytes at once");
    if (s->out.p < s->run || s->out.p > s->out.end)
        fz_fail("the encoder's write pointer left its run");
    sink_take(s);
    s->run = malloc(len ? len : 1);
    s->out.p = s->run;
    s->out.end = s->run + len;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct in in = {data, size}, sizes;
    int max_depth = 0, deep;
    PyObject *obj, *ref, *ref_exc = NULL, *got, *got_exc = NULL;
    struct sink s;
    int rc;

    if (size < 2)
        return 0;
    /* The first byte seeds the run sizes of the sink; the rest builds. */
    sizes.p = data;
    sizes.n = size;
    in.p = data + 1;
    in.n = size - 1;
    obj = build(&in, 0, &max_depth);
    if (obj == NULL) {
        PyErr_Clear();   /* e.g. a dict key that cannot be hashed */
        return 0;
    }
    /* Near the limit either answer is fine (json.h does not say whether it
     * counts the outermost container, nor how a hook counts). */
    {
        int lo = obj_depth(obj, 0), hi = obj_depth(obj, 1);
        (void)max_depth;
        if (hi >= FA_JSON_MAX_DEPTH - 2 && lo <= FA_JSON_MAX_DEPTH + 2) {
            Py_DECREF(obj);
            return 0;
        }
        deep = lo > FA_JSON_MAX_DEPTH + 2;
    }
    cur_obj = obj;

    ref = PyObject_CallOneArg(reference, obj);
    if (ref == NULL) {
        ref_exc = take_exc();
        if (PyErr_GivenExceptionMatches(ref_exc, PyExc_RecursionError)) {
            Py_DECREF(ref_exc);
            Py_DECREF(obj);
            return 0;
        }
    }

    got = fa_json_dumps(&cache, obj, NULL);
    if (got == NULL)
        got_exc = take_exc();
    if (deep) {
        /* Too deep: ValueError, unless another error comes first on the way
         * down (then json.dumps raised too). */
        if (got != NULL)
            fz_fail("nesting deeper than FA_JSON_MAX_DEPTH was encoded");
        if (!PyErr_GivenExceptionMatches(got_exc, PyExc_ValueError) &&
            (ref == NULL ? !PyErr_GivenExceptionMatches(got_exc, (PyObject *)Py_TYPE(ref_exc)) &&
                           !PyErr_GivenExceptionMatches(got_exc, PyExc_UnicodeEncodeError)
                         : 1))
            fz_fail("nesting deeper than FA_JSON_MAX_DEPTH did not raise ValueError");
    } else if (ref == NULL) {
        if (got != NULL)
            fz_fail("json.dumps raised, fa_json_dumps did not");
        /* json.dumps raises TypeError/ValueError while building the whole
         * str and UnicodeEncodeError only when encoding it afterwards; the
         * encoder writes UTF-8 as it goes, so a lone surrogate before the
         * bad value fails first there. Either error is right then. */
        if (Py_TYPE(got_exc) != Py_TYPE(ref_exc) &&
            !PyErr_GivenExceptionMatches(got_exc, PyExc_UnicodeEncodeError)) {
            fprintf(stderr, "fuzz_json: json.dumps raised %s, fa_json_dumps %s\n",
                    Py_TYPE(ref_exc)->tp_name, Py_TYPE(got_exc)->tp_name);
            fz_fail("different exception types");
        }
    } else {
        if (got == NULL) {
            PyErr_SetObject((PyObject *)Py_TYPE(got_exc), got_exc);
            fz_fail("fa_json_dumps raised where json.dumps did not");
        }
        if (PyBytes_GET_SIZE(got) != PyBytes_GET_SIZE(ref) ||
            memcmp(PyBytes_AS_STRING(got), PyBytes_AS_STRING(ref), (size_t)PyBytes_GET_SIZE(ref)) != 0) {
            fprintf(stderr, "fuzz_json: json.dumps: %.*s\nfuzz_json: fa_json_dumps: %.*s\n",
                    (int)PyBytes_GET_SIZE(ref), PyBytes_AS_STRING(ref),
                    (int)PyBytes_GET_SIZE(got), PyBytes_AS_STRING(got));
            fz_fail("different bytes");
        }
    }

    /* The same through fa_json_encode and a sink of small runs. */
    memset(&s, 0, sizeof(s));
    s.sizes = &sizes;
    s.out.more = sink_more;
    s.run = malloc(1);
    s.out.p = s.run;
    s.out.end = s.run;   /* empty first run: more() at once */
    rc = fa_json_encode(&cache, obj, NULL, &s.out);
    if (rc == 0) {
        sink_take(&s);
        if (got == NULL)
            fz_fail("fa_json_encode succeeded where fa_json_dumps failed");
        if ((size_t)PyBytes_GET_SIZE(got) != s.acc_len ||
            memcmp(PyBytes_AS_STRING(got), s.acc, s.acc_len) != 0)
            fz_fail("fa_json_encode into small runs differs from fa_json_dumps");
    } else {
        if (!PyErr_Occurred())
            fz_fail("fa_json_encode failed without an exception");
        PyErr_Clear();
        free(s.run);
        if (got != NULL)
            fz_fail("fa_json_encode failed where fa_json_dumps succeeded");
    }
    free(s.acc);

    Py_XDECREF(got);
    Py_XDECREF(got_exc);
    Py_XDECREF(ref);
    Py_XDECREF(ref_exc);
    cur_obj = NULL;
    Py_DECREF(obj);
    return 0;
}
