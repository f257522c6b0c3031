/* json.h - the JSON encoder of fasterapi-pyworker.
 *
 * Encodes a Python value once, in C, straight into its destination: the
 * chunks of a response message in shared memory (serve.c) or a growable
 * bytes object (_fasterapi.dumps). The output is byte for byte
 *
 *     json.dumps(obj, separators=(",", ":"), ensure_ascii=False,
 *                allow_nan=False).encode("utf-8")
 *
 * for what json encodes (str, int, float, bool, None, dict, list, tuple and
 * their subclasses, treated as json treats them), plus, where json would
 * call `default`, in this order:
 *   1. an object with a __json__() method: its result is encoded instead;
 *   2. a dataclass instance: an object of its fields, in definition order,
 *      as dataclasses.asdict() would give one level at a time;
 *   3. the module's json default (fa_json_cache.default_fn), if set: its
 *      result is encoded instead;
 *   4. anything else: TypeError "Object of type set is not JSON
 *      serializable (at $.items[3].tags)".
 * Errors name the path of the bad value: ValueError for NaN and infinities
 * (as Starlette's JSONResponse, allow_nan=False), for nesting deeper than
 * FA_JSON_MAX_DEPTH (which is also how a reference cycle ends) and for ints
 * beyond sys.get_int_max_str_digits(); UnicodeEncodeError for a lone
 * surrogate (json.dumps returns it, but no UTF-8 encoding of it exists);
 * TypeError for unsupported values and dict keys. An exception raised by a
 * __json__ method or the default function propagates with a note naming
 * the path.
 */
#ifndef FA_PYWORKER_JSON_H
#define FA_PYWORKER_JSON_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>

#define FA_JSON_MAX_DEPTH 256   /* containers and hook results nested */
#define FA_JSON_NEED_MAX  64    /* the largest run a writer ever asks `more` for */

/* Where the bytes go: a contiguous run [p, end) that the encoder fills.
 * When the run is too short it calls more(out, need), need <= FA_JSON_NEED_MAX:
 * the sink takes the bytes written so far (up to p) and points p and end at
 * a new run of at least `need` bytes. more returns 0, or -1 with a Python
 * exception set (which ends the encoding). */
struct fa_json_out {
    char *p;
    char *end;
    int (*more)(struct fa_json_out *out, size_t need);
};

/* Objects the encoder keeps between calls; lives in the _fasterapi module
 * state (module.c traverses and clears it). All references strong. */
struct fa_json_cache {
    PyObject *str_json;        /* "__json__", interned */
    PyObject *str_dc_fields;   /* "__dataclass_fields__", interned */
    PyObject *str_field_type;  /* "_field_type", interned */
    PyObject *dc_field;        /* dataclasses._FIELD, looked up on first use */
    PyObject *dc_types;        /* dict: dataclass type -> tuple of field names */
    PyObject *default_fn;      /* callable or NULL (_fasterapi.set_json_default) */
    char *scratch;             /* fa_json_dumps' buffer (PyMem), or NULL */
    size_t scratch_cap;
    int scratch_busy;          /* a dumps is using it */
};

/* 0, or -1 with an exception set. */
int fa_json_cache_init(struct fa_json_cache *c);
int fa_json_cache_traverse(struct fa_json_cache *c, visitproc visit, void *arg);
void fa_json_cache_clear(struct fa_json_cache *c);

/* Encodes obj (borrowed) into out. default_fn (borrowed, may be NULL)
 * replaces c->default_fn for this call when not NULL. 0, or -1 with an
 * exception set; on -1 the bytes already handed to the sink are garbage
 * (the caller discards the message). */
int fa_json_encode(struct fa_json_cache *c, PyObject *obj, PyObject *default_fn,
                   struct fa_json_out *out);

/* obj encoded into a new bytes object (new reference), or NULL with an
 * exception set. */
PyObject *fa_json_dumps(struct fa_json_cache *c, PyObject *obj, PyObject *default_fn);

#endif
