/* json.c - the JSON encoder (see json.h).
 *
 * One recursive walk over the value. Each writer asks the sink for a short
 * contiguous run (at most FA_JSON_NEED_MAX bytes) and fills it; long text
 * (strings, huge ints) is copied piecewise, so a sink made of fixed-size
 * shared-memory chunks never has to hold a whole token.
 *
 * The walk keeps a stack of frames (container index or key) only so that an
 * error can name the path of the bad value; nothing is allocated for it
 * unless an error happens. An error stops the walk where it is: the path is
 * built at the point of failure, and the frames are not unwound after it.
 *
 * What json.dumps does, and so what this file does (CPython 3.11,
 * Modules/_json.c and Lib/json/encoder.py):
 *   - None/True/False by identity, then str, int, float, list or tuple,
 *     dict, each with isinstance: a subclass is encoded as its base type
 *     (str and int and float by their value, not by __str__ or __repr__).
 *   - A list or tuple subclass through iter() (PySequence_Fast); a dict
 *     subclass through .items(), each item a 2-tuple, except that a dict
 *     subclass whose own storage is empty is "{}" without calling items().
 *   - Keys: str as is; float, int as their repr; True/False/None as
 *     true/false/null; anything else TypeError.
 *   - Strings (ensure_ascii=False): \" \\ \b \f \n \r \t, other controls
 *     below 0x20 as \u00XX (lower-case hex), everything else as is.
 *   - Floats: float.__repr__; NaN and infinities refused (allow_nan=False).
 */
#include "pyworker/json.h"   /* Python.h first */

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>

enum json_frame_kind { FRAME_INDEX, FRAME_KEY, FRAME_HOOK };

struct json_frame {
    PyObject *key;            /* borrowed (held by the walk): FRAME_KEY */
    Py_ssize_t index;         /* FRAME_INDEX */
    enum json_frame_kind kind;
};

struct enc {
    struct fa_json_out *out;
    struct fa_json_cache *c;
    PyObject *default_fn;     /* borrowed, or NULL */
    int depth;                /* frames in use */
    int noted;                /* the pending exception already names the path */
    struct json_frame frames[FA_JSON_MAX_DEPTH];
};

#define PATH_EDGE 12          /* a longer path shows its first and last frames */

static int enc__obj(struct enc *e, PyObject *obj);

/* ------------------------------------------------------------------ */
/* Output                                                               */
/* ------------------------------------------------------------------ */

/* At least n (<= FA_JSON_NEED_MAX) bytes of room at out->p. */
static inline int enc__room(struct enc *e, size_t n)
{
    struct fa_json_out *o = e->out;

    if ((size_t)(o->end - o->p) >= n)
        return 0;
    return o->more(o, n);
}

static inline int enc__lit(struct enc *e, const char *s, size_t n)
{
    if (enc__room(e, n) < 0)
        return -1;
    memcpy(e->out->p, s, n);
    e->out->p += n;
    return 0;
}

static inline int enc__byte(struct enc *e, char c)
{
    if (enc__room(e, 1) < 0)
        return -1;
    *e->out->p++ = c;
    return 0;
}

/* Any length, spread over as many runs as it takes. */
static int enc__raw(struct enc *e, const char *s, size_t n)
{
    struct fa_json_out *o = e->out;

    while (n > 0) {
        size_t k = (size_t)(o->end - o->p);

        if (k == 0) {
            if (o->more(o, 1) < 0)
                return -1;
            k = (size_t)(o->end - o->p);
        }
        if (k > n)
            k = n;
        memcpy(o->p, s, k);
        o->p += k;
        s += k;
        n -= k;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Errors and the path                                                  */
/* ------------------------------------------------------------------ */

static int frame__append(PyObject **acc, const struct json_frame *f)
{
    PyObject *piece;

    switch (f->kind) {
    case FRAME_INDEX:
        piece = PyUnicode_FromFormat("[%zd]", f->index);
        break;
    case FRAME_KEY:
        if (f->key == NULL)
            return 0;
        if (PyUnicode_Check(f->key) && PyUnicode_IsIdentifier(f->key) == 1)
            piece = PyUnicode_FromFormat(".%U", f->key);
        else
            piece = PyUnicode_FromFormat("[%R]", f->key);
        break;
    default:
        return 0;   /* a hook's result sits where its object was */
    }
    if (piece == NULL)
        return -1;
    PyUnicode_AppendAndDel(acc, piece);
    return *acc == NULL ? -1 : 0;
}

/* The path of the value being encoded, "$.items[3].tags". New reference,
 * or NULL with an exception set. */
static PyObject *enc__path(const struct enc *e)
{
    PyObject *acc = PyUnicode_FromString("$");
    int n = 0, shown = 0;

    for (int i = 0; i < e->depth; i++)
        n += e->frames[i].kind != FRAME_HOOK;
    for (int i = 0; i < e->depth && acc != NULL; i++) {
        if (e->frames[i].kind == FRAME_HOOK)
            continue;
        shown++;
        if (n > 2 * PATH_EDGE && shown > PATH_EDGE && shown <= n - PATH_EDGE) {
            if (shown == PATH_EDGE + 1) {
                PyObject *dots = PyUnicode_FromFormat("...(%d more)...", n - 2 * PATH_EDGE);
                if (dots == NULL) {
                    Py_CLEAR(acc);
                    break;
                }
                PyUnicode_AppendAndDel(&acc, dots);
            }
            continue;
        }
        if (frame__append(&acc, &e->frames[i]) < 0)
            Py_CLEAR(acc);
    }
    return acc;
}

/* Raises exc_type("<message> (at <path>)"). Returns -1. */
static int enc__error(struct enc *e, PyObject *exc_type, const char *fmt, ...)
{
    PyObject *msg, *path;
    va_list ap;

    va_start(ap, fmt);
    msg = PyUnicode_FromFormatV(fmt, ap);   /* new */
    va_end(ap);
    if (msg == NULL)
        return -1;
    if ((path = enc__path(e)) == NULL) {    /* new */
        Py_DECREF(msg);
        return -1;
    }
    PyErr_Format(exc_type, "%U (at %U)", msg, path);
    Py_DECREF(msg);
    Py_DECREF(path);
    e->noted = 1;
    return -1;
}

/* An exception raised by code the encoder called (a hook, items(),
 * iter(), int.__repr__): kept as it is, with a note naming the path
 * ("while encoding $.x as JSON"), added once on the way up. Returns -1. */
static int enc__note(struct enc *e)
{
    PyObject *type, *value, *tb, *path, *note, *r;

    if (e->noted || !PyErr_Occurred())
        return -1;
    e->noted = 1;
    PyErr_Fetch(&type, &value, &tb);        /* new refs */
    PyErr_NormalizeException(&type, &value, &tb);
    if (value != NULL && (path = enc__path(e)) != NULL) {
        note = PyUnicode_FromFormat("while encoding %U as JSON", path);
        Py_DECREF(path);
        if (note != NULL) {
            r = PyObject_CallMethod(value, "add_note", "O", note);
            Py_XDECREF(r);
            Py_DECREF(note);
        }
    }
    PyErr_Clear();   /* whatever failed while adding the note */
    PyErr_Restore(type, value, tb);          /* stolen */
    return -1;
}

/* Enters a container or a hook's result. -1 past FA_JSON_MAX_DEPTH. */
static inline int enc__push(struct enc *e, enum json_frame_kind kind)
{
    struct json_frame *f;

    if (e->depth >= FA_JSON_MAX_DEPTH)
        return enc__error(e, PyExc_ValueError,
                          "nesting deeper than %d levels (a reference cycle?)",
                          FA_JSON_MAX_DEPTH);
    f = &e->frames[e->depth++];
    f->kind = kind;
    f->key = NULL;
    f->index = 0;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Scalars                                                              */
/* ------------------------------------------------------------------ */

static const char json_hex[] = "0123456789abcdef";

/* For c < 0x80: 0 if written as is, else the letter after the backslash
 * ('u' for \u00XX). */
static const char json_esc[128] = {
    ['\b'] = 'b', ['\f'] = 'f', ['\n'] = 'n', ['\r'] = 'r', ['\t'] = 't',
    [0x00] = 'u', [0x01] = 'u', [0x02] = 'u', [0x03] = 'u', [0x04] = 'u', [0x05] = 'u',
    [0x06] = 'u', [0x07] = 'u', [0x0b] = 'u', [0x0e] = 'u', [0x0f] = 'u', [0x10] = 'u',
    [0x11] = 'u', [0x12] = 'u', [0x13] = 'u', [0x14] = 'u', [0x15] = 'u', [0x16] = 'u',
    [0x17] = 'u', [0x18] = 'u', [0x19] = 'u', [0x1a] = 'u', [0x1b] = 'u', [0x1c] = 'u',
    [0x1d] = 'u', [0x1e] = 'u', [0x1f] = 'u',
    ['"'] = '"', ['\\'] = '\\',
};

/* 1 for a 1-byte character written as it is (ASCII, no escape). */
static const unsigned char json_plain[256] = {
#define R16(v) v, v, v, v, v, v, v, v, v, v, v, v, v, v, v, v
    R16(0), R16(0),                                   /* 0x00-0x1f: escaped */
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,   /* 0x20-0x2f: '"' at 0x22 */
    R16(1), R16(1),                                   /* 0x30-0x4f */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,   /* 0x50-0x5f: '\\' at 0x5c */
    R16(1), R16(1),                                   /* 0x60-0x7f */
    R16(0), R16(0), R16(0), R16(0), R16(0), R16(0), R16(0), R16(0),   /* non-ASCII */
#undef R16
};

#define ESC_MAX 6             /* bytes one character can take: \u00XX */

/* The first index >= i in s[0..n) (1-byte characters: ASCII or latin-1)
 * of a character that is not copied as it is (an escape, or non-ASCII: two
 * bytes in UTF-8), or n. Eight bytes at a time: a word holds such a byte iff
 * one has its high bit set, is below 0x20, or equals '"' or '\\' (the
 * classic "has less" and "has zero" bit tricks, exact once the high bit
 * is ruled out). */
static inline Py_ssize_t plain_run(const unsigned char *s, Py_ssize_t i, Py_ssize_t n)
{
    const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;

    while (i + 8 <= n) {
        uint64_t w, q, b;

        memcpy(&w, s + i, 8);
        q = w ^ (ones * '"');
        b = w ^ (ones * '\\');
        if ((w | ((w - ones * 0x20) & ~w) | ((q - ones) & ~q) | ((b - ones) & ~b)) & high)
            break;
        i += 8;
    }
    while (i < n && json_plain[s[i]])
        i++;
    return i;
}

static inline char *put_esc(char *p, unsigned c, char how)
{
    *p++ = '\\';
    if (how != 'u') {
        *p++ = how;
        return p;
    }
    p[0] = 'u';
    p[1] = '0';
    p[2] = '0';
    p[3] = json_hex[c >> 4];
    p[4] = json_hex[c & 15];
    return p + 5;
}

static int enc__surrogate(struct enc *e, PyObject *s, Py_ssize_t i)
{
    PyObject *path = enc__path(e), *reason, *exc;

    if (path == NULL)
        return -1;
    reason = PyUnicode_FromFormat("surrogates not allowed (at %U)", path);
    Py_DECREF(path);
    if (reason == NULL)
        return -1;
    exc = PyObject_CallFunction(PyExc_UnicodeEncodeError, "sOnnO", "utf-8", s, i, i + 1,
                                reason);   /* new */
    Py_DECREF(reason);
    if (exc != NULL) {
        PyErr_SetObject(PyExc_UnicodeEncodeError, exc);
        Py_DECREF(exc);
    }
    e->noted = 1;
    return -1;
}

/* The characters of a non-ASCII str, for one kind (the compiler makes a
 * copy per kind). Each round handles as many characters as surely fit. */
static inline __attribute__((always_inline)) int
enc__str_wide(struct enc *e, PyObject *s, int kind, const void *data, Py_ssize_t n)
{
    struct fa_json_out *o = e->out;
    Py_ssize_t i = 0;

    while (i < n) {
        size_t avail = (size_t)(o->end - o->p);
        Py_ssize_t lim;
        char *p;

        if (avail < ESC_MAX) {
            if (o->more(o, ESC_MAX) < 0)
                return -1;
            avail = (size_t)(o->end - o->p);
        }
        lim = i + (Py_ssize_t)(avail / ESC_MAX);
        if (lim > n)
            lim = n;
        p = o->p;
        for (; i < lim; i++) {
            Py_UCS4 c = PyUnicode_READ(kind, data, i);

            if (c < 0x80) {
                char how = json_esc[c];
                if (how)
                    p = put_esc(p, c, how);
                else
                    *p++ = (char)c;
            } else if (c < 0x800) {
                p[0] = (char)(0xc0 | (c >> 6));
                p[1] = (char)(0x80 | (c & 0x3f));
                p += 2;
            } else if (c < 0x10000) {
                if (c >= 0xd800 && c <= 0xdfff) {
                    o->p = p;
                    return enc__surrogate(e, s, i);
                }
                p[0] = (char)(0xe0 | (c >> 12));
                p[1] = (char)(0x80 | ((c >> 6) & 0x3f));
                p[2] = (char)(0x80 | (c & 0x3f));
                p += 3;
            } else {
                p[0] = (char)(0xf0 | (c >> 18));
                p[1] = (char)(0x80 | ((c >> 12) & 0x3f));
                p[2] = (char)(0x80 | ((c >> 6) & 0x3f));
                p[3] = (char)(0x80 | (c & 0x3f));
                p += 4;
            }
        }
        o->p = p;
    }
    return 0;
}

/* A str (exact or subclass: its characters either way) as a JSON string. */
static int enc__str(struct enc *e, PyObject *s)
{
    struct fa_json_out *o = e->out;
    const unsigned char *src;
    Py_ssize_t n, i;
    int rc;

    if (PyUnicode_READY(s) < 0)
        return enc__note(e);
    n = PyUnicode_GET_LENGTH(s);
    if (PyUnicode_KIND(s) != PyUnicode_1BYTE_KIND) {
        if (enc__byte(e, '"') < 0)
            return -1;
        if (PyUnicode_KIND(s) == PyUnicode_2BYTE_KIND)
            rc = enc__str_wide(e, s, PyUnicode_2BYTE_KIND, PyUnicode_DATA(s), n);
        else
            rc = enc__str_wide(e, s, PyUnicode_4BYTE_KIND, PyUnicode_DATA(s), n);
        if (rc < 0)
            return -1;
        return enc__byte(e, '"');
    }
    /* ASCII or latin-1: runs of plain characters are copied whole, with the
     * quotes when they fit (the usual case: a short key or value). */
    src = PyUnicode_1BYTE_DATA(s);
    i = plain_run(src, 0, n);
    if (i == n && (size_t)(o->end - o->p) >= (size_t)n + 2) {
        char *p = o->p;
        *p = '"';
        memcpy(p + 1, src, (size_t)n);
        p[n + 1] = '"';
        o->p = p + n + 2;
        return 0;
    }
    if (enc__byte(e, '"') < 0 || enc__raw(e, (const char *)src, (size_t)i) < 0)
        return -1;
    while (i < n) {
        unsigned c = src[i];
        Py_ssize_t j;

        if (enc__room(e, ESC_MAX) < 0)
            return -1;
        if (c < 0x80) {
            o->p = put_esc(o->p, c, json_esc[c]);
        } else {
            o->p[0] = (char)(0xc0 | (c >> 6));
            o->p[1] = (char)(0x80 | (c & 0x3f));
            o->p += 2;
        }
        j = plain_run(src, ++i, n);
        if (enc__raw(e, (const char *)src + i, (size_t)(j - i)) < 0)
            return -1;
        i = j;
    }
    return enc__byte(e, '"');
}

/* Decimal digits of v, written at the end of buf[24]; returns the start. */
static inline char *fmt_ll(char *end, long long v)
{
    unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
    char *p = end;

    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--p = '-';
    return p;
}

/* Text of an ASCII str (int.__repr__'s result, say) copied as is. Steals r. */
static int enc__ascii_steal(struct enc *e, PyObject *r)
{
    int rc;

    if (r == NULL)
        return enc__note(e);
    rc = enc__raw(e, (const char *)PyUnicode_1BYTE_DATA(r), (size_t)PyUnicode_GET_LENGTH(r));
    Py_DECREF(r);
    return rc;
}

/* An int (or subclass: its value) in decimal; quoted for a key. */
static int enc__int(struct enc *e, PyObject *obj, int quote)
{
    char buf[24], *start;
    long long v;
    int overflow;

    v = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (overflow) {
        /* int.__repr__: raises ValueError past sys.get_int_max_str_digits(),
         * as json.dumps does. */
        if (quote && enc__byte(e, '"') < 0)
            return -1;
        if (enc__ascii_steal(e, PyLong_Type.tp_repr(obj)) < 0)
            return -1;
        return quote ? enc__byte(e, '"') : 0;
    }
    if (v == -1 && PyErr_Occurred())
        return enc__note(e);
    start = fmt_ll(buf + sizeof(buf) - 1, v);
    if (quote) {
        *--start = '"';
        buf[sizeof(buf) - 1] = '"';
        return enc__lit(e, start, (size_t)(buf + sizeof(buf) - start));
    }
    return enc__lit(e, start, (size_t)(buf + sizeof(buf) - 1 - start));
}

static const double json_pow10[] = {
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
    1e16, 1e17,
};

/* float.__repr__ of d without the general algorithm, when d is a "short
 * decimal": 1e-4 <= |d| < 1e15 and some m / 10**k (k >= 1, m < 2**50)
 * converts back to exactly d. Writes it into buf[32] and returns its
 * length, or 0 when d is not such a number (then the caller asks
 * PyOS_double_to_string).
 *
 * Why it is repr's answer: repr writes the shortest digit string that
 * converts back to d, the nearest to d among those, in fixed notation in
 * that range. With m < 2**50 the grid 10**-k is wider than two ulps of d,
 * so at most one grid point (the nearest, m) can convert back; the first k
 * that works gives the fewest digits, and m / 10**k, both exact doubles, is
 * divided with one correct rounding, as strtod would convert the digits. */
static size_t fmt_short_decimal(char *buf, double d)
{
    double a = fabs(d);
    char digits[24], *p, *o = buf;
    unsigned long long m = 0;
    int k, nd;

    if (!(a >= 1e-4 && a < 1e15))
        return 0;
    for (k = 1; k < (int)(sizeof(json_pow10) / sizeof(json_pow10[0])); k++) {
        double x = a * json_pow10[k];

        if (x >= 1125899906842624.0)   /* 2**50 */
            return 0;
        m = (unsigned long long)(x + 0.5);
        if ((double)m / json_pow10[k] == a)
            break;
    }
    if (k == (int)(sizeof(json_pow10) / sizeof(json_pow10[0])) || m % 10 == 0)
        return 0;
    p = digits + sizeof(digits);
    nd = 0;
    do {
        *--p = (char)('0' + m % 10);
        m /= 10;
        nd++;
    } while (m);
    if (d < 0)
        *o++ = '-';
    if (nd <= k) {
        *o++ = '0';
        *o++ = '.';
        for (int z = nd; z < k; z++)
            *o++ = '0';
        memcpy(o, p, (size_t)nd);
        o += nd;
    } else {
        memcpy(o, p, (size_t)(nd - k));
        o += nd - k;
        *o++ = '.';
        memcpy(o, p + nd - k, (size_t)k);
        o += k;
    }
    return (size_t)(o - buf);
}

/* A float (or subclass: its value) as float.__repr__ writes it; quoted for
 * a key. */
static int enc__float(struct enc *e, PyObject *obj, int quote)
{
    double d = PyFloat_AS_DOUBLE(obj);
    char buf[32], *start, *s;
    size_t n;
    int rc;

    if (!isfinite(d))
        return enc__error(e, PyExc_ValueError,
                          "Out of range float values are not JSON compliant: %s",
                          isnan(d) ? "nan" : d > 0 ? "inf" : "-inf");
    /* Integral values below 2**53 are exact: repr is the integer and ".0"
     * (repr switches to an exponent from 1e16 on only). */
    if (d > -9007199254740992.0 && d < 9007199254740992.0 && d == (double)(long long)d) {
        char *end = buf + sizeof(buf) - 3;

        if (d == 0 && signbit(d)) {
            start = end;
            *--start = '0';
            *--start = '-';
        } else {
            start = fmt_ll(end, (long long)d);
        }
        end[0] = '.';
        end[1] = '0';
        end[2] = '"';
        if (quote)
            *--start = '"';
        return enc__lit(e, start, (size_t)(end + 2 + quote - start));
    }
    if ((n = fmt_short_decimal(buf, d)) > 0) {
        start = buf;
        if (quote) {
            memmove(buf + 1, buf, n);
            buf[0] = buf[n + 1] = '"';
            n += 2;
        }
        return enc__lit(e, start, n);
    }
    if ((s = PyOS_double_to_string(d, 'r', 0, Py_DTSF_ADD_DOT_0, NULL)) == NULL)
        return enc__note(e);   /* MemoryError */
    n = strlen(s);
    if (quote) {
        rc = enc__byte(e, '"');
        if (rc == 0)
            rc = enc__raw(e, s, n);
        if (rc == 0)
            rc = enc__byte(e, '"');
    } else {
        rc = enc__raw(e, s, n);
    }
    PyMem_Free(s);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Containers                                                           */
/* ------------------------------------------------------------------ */

/* A dict key, converted as json converts it. */
static int enc__key(struct enc *e, PyObject *k)
{
    if (PyUnicode_Check(k))
        return enc__str(e, k);
    if (PyFloat_Check(k))
        return enc__float(e, k, 1);
    if (k == Py_True)
        return enc__lit(e, "\"true\"", 6);
    if (k == Py_False)
        return enc__lit(e, "\"false\"", 7);
    if (k == Py_None)
        return enc__lit(e, "\"null\"", 6);
    if (PyLong_Check(k))
        return enc__int(e, k, 1);
    return enc__error(e, PyExc_TypeError, "keys must be str, int, float, bool or None, not %s",
                      Py_TYPE(k)->tp_name);
}

/* `,"key":value`; k and v borrowed, held by the caller. */
static inline int enc__member(struct enc *e, PyObject *k, PyObject *v, int first)
{
    if (!first && enc__byte(e, ',') < 0)
        return -1;
    if (Py_IS_TYPE(k, &PyUnicode_Type) ? enc__str(e, k) : enc__key(e, k))
        return -1;
    if (enc__byte(e, ':') < 0)
        return -1;
    e->frames[e->depth - 1].key = k;
    return enc__obj(e, v);
}

/* An exact dict, in its order. Keys and values are held while encoded: a
 * hook called on the way may change the dict (PyDict_Next stays in bounds). */
static int enc__dict(struct enc *e, PyObject *d)
{
    Py_ssize_t pos = 0;
    PyObject *k, *v;
    int first = 1;

    if (PyDict_GET_SIZE(d) == 0)
        return enc__lit(e, "{}", 2);
    if (enc__push(e, FRAME_KEY) < 0 || enc__byte(e, '{') < 0)
        return -1;
    while (PyDict_Next(d, &pos, &k, &v)) {   /* borrowed */
        int r;

        e->frames[e->depth - 1].key = NULL;  /* a bad key: the path ends at the dict */
        Py_INCREF(k);
        Py_INCREF(v);
        r = enc__member(e, k, v, first);
        Py_DECREF(v);
        Py_DECREF(k);
        if (r < 0)
            return -1;
        first = 0;
    }
    e->depth--;
    return enc__byte(e, '}');
}

/* A dict subclass: through its items(), as json does. */
static int enc__dict_sub(struct enc *e, PyObject *d)
{
    PyObject *items;
    int rc = -1;

    if (PyDict_GET_SIZE(d) == 0)
        return enc__lit(e, "{}", 2);
    if (enc__push(e, FRAME_KEY) < 0)
        return -1;
    if ((items = PyMapping_Items(d)) == NULL) {   /* new: a list */
        enc__note(e);
        return -1;
    }
    if (enc__byte(e, '{') < 0)
        goto out;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(items); i++) {
        PyObject *item = PyList_GET_ITEM(items, i);   /* borrowed, held by items */

        e->frames[e->depth - 1].key = NULL;
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2) {
            enc__error(e, PyExc_ValueError, "items must return 2-tuples");
            goto out;
        }
        if (enc__member(e, PyTuple_GET_ITEM(item, 0), PyTuple_GET_ITEM(item, 1), i == 0) < 0)
            goto out;
    }
    rc = enc__byte(e, '}');
    e->depth--;
out:
    Py_DECREF(items);
    return rc;
}

/* An exact list; items held while encoded (a hook may shrink the list). */
static int enc__list(struct enc *e, PyObject *l)
{
    struct json_frame *f;

    if (PyList_GET_SIZE(l) == 0)
        return enc__lit(e, "[]", 2);
    if (enc__push(e, FRAME_INDEX) < 0 || enc__byte(e, '[') < 0)
        return -1;
    f = &e->frames[e->depth - 1];
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(l); i++) {
        PyObject *item = PyList_GET_ITEM(l, i);
        int r;

        if (i > 0 && enc__byte(e, ',') < 0)
            return -1;
        f->index = i;
        Py_INCREF(item);
        r = enc__obj(e, item);
        Py_DECREF(item);
        if (r < 0)
            return -1;
    }
    e->depth--;
    return enc__byte(e, ']');
}

/* An exact tuple, or the list PySequence_Fast made of a subclass. */
static int enc__items(struct enc *e, PyObject *seq)
{
    struct json_frame *f;

    if (enc__push(e, FRAME_INDEX) < 0 || enc__byte(e, '[') < 0)
        return -1;
    f = &e->frames[e->depth - 1];
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
        int r;

        if (i > 0 && enc__byte(e, ',') < 0)
            return -1;
        f->index = i;
        Py_INCREF(item);
        r = enc__obj(e, item);
        Py_DECREF(item);
        if (r < 0)
            return -1;
    }
    e->depth--;
    return enc__byte(e, ']');
}

static int enc__tuple(struct enc *e, PyObject *t)
{
    if (PyTuple_GET_SIZE(t) == 0)
        return enc__lit(e, "[]", 2);
    return enc__items(e, t);
}

/* A list or tuple subclass: through iter(), as json does. */
static int enc__seq_sub(struct enc *e, PyObject *obj)
{
    PyObject *seq = PySequence_Fast(obj, "a list or tuple subclass must be iterable");
    int rc;

    if (seq == NULL)   /* new */
        return enc__note(e);
    rc = PySequence_Fast_GET_SIZE(seq) == 0 ? enc__lit(e, "[]", 2) : enc__items(e, seq);
    Py_DECREF(seq);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Hooks: __json__, dataclasses, the default function                   */
/* ------------------------------------------------------------------ */

/* The names of tp's dataclass fields: a new tuple, or Py_None (new
 * reference) if tp is no dataclass; NULL with an exception set. */
static PyObject *enc__dc_fields(struct enc *e, PyTypeObject *tp)
{
    struct fa_json_cache *c = e->c;
    PyObject *dcf, *names = NULL, *k, *v, *ft, *res;
    Py_ssize_t pos = 0;

    if ((dcf = PyObject_GetAttr((PyObject *)tp, c->str_dc_fields)) == NULL) {   /* new */
        if (!PyErr_ExceptionMatches(PyExc_AttributeError))
            return NULL;
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    if (!PyDict_Check(dcf)) {
        Py_DECREF(dcf);
        Py_RETURN_NONE;
    }
    if (c->dc_field == NULL) {
        PyObject *mod = PyImport_ImportModule("dataclasses");   /* new */
        if (mod == NULL)
            goto fail;
        c->dc_field = PyObject_GetAttrString(mod, "_FIELD");    /* new, kept */
        Py_DECREF(mod);
        if (c->dc_field == NULL)
            goto fail;
    }
    if ((names = PyList_New(0)) == NULL)
        goto fail;
    /* dataclasses.fields(): the entries whose _field_type is _FIELD (not
     * ClassVar or InitVar pseudo-fields). */
    while (PyDict_Next(dcf, &pos, &k, &v)) {   /* borrowed */
        int is_field;

        if ((ft = PyObject_GetAttr(v, c->str_field_type)) == NULL)   /* new */
            goto fail;
        is_field = ft == c->dc_field;
        Py_DECREF(ft);
        if (is_field && (!PyUnicode_Check(k) || PyList_Append(names, k) < 0)) {
            if (!PyErr_Occurred())
                PyErr_Format(PyExc_TypeError, "dataclass %s has a field whose name is not a str",
                             tp->tp_name);
            goto fail;
        }
    }
    res = PyList_AsTuple(names);   /* new */
    Py_DECREF(names);
    Py_DECREF(dcf);
    if (res == NULL)
        return NULL;
    /* Bounded: types made on the fly must not pile up. */
    if (PyDict_GET_SIZE(c->dc_types) >= 4096)
        PyDict_Clear(c->dc_types);
    if (PyDict_SetItem(c->dc_types, (PyObject *)tp, res) < 0) {
        Py_DECREF(res);
        return NULL;
    }
    return res;
fail:
    Py_XDECREF(names);
    Py_DECREF(dcf);
    return NULL;
}

/* A dataclass instance as an object of its fields (names: a tuple of str). */
static int enc__dataclass(struct enc *e, PyObject *obj, PyObject *names)
{
    Py_ssize_t n = PyTuple_GET_SIZE(names);

    if (n == 0)
        return enc__lit(e, "{}", 2);
    if (enc__push(e, FRAME_KEY) < 0 || enc__byte(e, '{') < 0)
        return -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *name = PyTuple_GET_ITEM(names, i), *v;
        int r;

        e->frames[e->depth - 1].key = name;
        if ((v = PyObject_GetAttr(obj, name)) == NULL)   /* new */
            return enc__note(e);
        r = enc__member(e, name, v, i == 0);
        Py_DECREF(v);
        if (r < 0)
            return -1;
    }
    e->depth--;
    return enc__byte(e, '}');
}

/* Encodes what a hook returned (stolen), one level deeper. */
static int enc__hooked(struct enc *e, PyObject *r)
{
    int rc;

    if (r == NULL)
        return enc__note(e);
    rc = enc__obj(e, r);
    Py_DECREF(r);
    if (rc == 0)
        e->depth--;
    return rc;
}

/* What json would hand to `default`. */
static int enc__other(struct enc *e, PyObject *obj)
{
    struct fa_json_cache *c = e->c;
    PyTypeObject *tp = Py_TYPE(obj);
    PyObject *names, *m, *name;
    int rc;

    /* A dataclass seen before (its type has no __json__). */
    if ((names = PyDict_GetItemWithError(c->dc_types, (PyObject *)tp)) != NULL)   /* borrowed */
        return enc__dataclass(e, obj, names);
    if (PyErr_Occurred())
        return enc__note(e);

    if (enc__push(e, FRAME_HOOK) < 0)
        return -1;
    if ((m = PyObject_GetAttr(obj, c->str_json)) != NULL) {   /* new */
        PyObject *r = PyObject_CallNoArgs(m);                /* new */
        Py_DECREF(m);
        return enc__hooked(e, r);
    }
    if (!PyErr_ExceptionMatches(PyExc_AttributeError))
        return enc__note(e);
    PyErr_Clear();
    e->depth--;

    if ((names = enc__dc_fields(e, tp)) == NULL)   /* new */
        return enc__note(e);
    if (names != Py_None) {
        rc = enc__dataclass(e, obj, names);
        Py_DECREF(names);
        return rc;
    }
    Py_DECREF(names);

    if (e->default_fn != NULL) {
        if (enc__push(e, FRAME_HOOK) < 0)
            return -1;
        return enc__hooked(e, PyObject_CallOneArg(e->default_fn, obj));
    }
    if ((name = PyType_GetName(tp)) == NULL)   /* new */
        return enc__note(e);
    rc = enc__error(e, PyExc_TypeError, "Object of type %U is not JSON serializable", name);
    Py_DECREF(name);
    return rc;
}

/* ------------------------------------------------------------------ */
/* The walk                                                             */
/* ------------------------------------------------------------------ */

static int enc__obj(struct enc *e, PyObject *obj)
{
    PyTypeObject *tp = Py_TYPE(obj);

    /* The exact types first (the usual case), then json's own order. */
    if (tp == &PyUnicode_Type)
        return enc__str(e, obj);
    if (tp == &PyLong_Type)
        return enc__int(e, obj, 0);
    if (tp == &PyDict_Type)
        return enc__dict(e, obj);
    if (tp == &PyList_Type)
        return enc__list(e, obj);
    if (tp == &PyFloat_Type)
        return enc__float(e, obj, 0);
    if (obj == Py_None)
        return enc__lit(e, "null", 4);
    if (obj == Py_True)
        return enc__lit(e, "true", 4);
    if (obj == Py_False)
        return enc__lit(e, "false", 5);
    if (tp == &PyTuple_Type)
        return enc__tuple(e, obj);
    if (PyUnicode_Check(obj))
        return enc__str(e, obj);
    if (PyLong_Check(obj))
        return enc__int(e, obj, 0);
    if (PyFloat_Check(obj))
        return enc__float(e, obj, 0);
    if (PyList_Check(obj) || PyTuple_Check(obj))
        return enc__seq_sub(e, obj);
    if (PyDict_Check(obj))
        return enc__dict_sub(e, obj);
    return enc__other(e, obj);
}

int fa_json_encode(struct fa_json_cache *c, PyObject *obj, PyObject *default_fn,
                   struct fa_json_out *out)
{
    struct enc e;

    e.out = out;
    e.c = c;
    e.default_fn = default_fn != NULL ? default_fn : c->default_fn;
    e.depth = 0;
    e.noted = 0;
    return enc__obj(&e, obj);
}

/* ------------------------------------------------------------------ */
/* Into a bytes object                                                  */
/* ------------------------------------------------------------------ */

/* dumps() encodes into the cache's scratch buffer and copies the result
 * into a bytes object of the right size: one allocation, where growing the
 * bytes object would take several. A dumps() called while another runs (a
 * __json__ hook calling dumps, or another thread while a hook let go of
 * the GIL) gets a buffer of its own. */
#define SCRATCH_MIN  4096
#define SCRATCH_KEEP (1u << 20)   /* a bigger buffer is freed after use */

struct buf_out {
    struct fa_json_out out;   /* first: more() gets it back as buf_out */
    char *base;               /* PyMem_Malloc'd */
    size_t cap;
};

static int buf__more(struct fa_json_out *o, size_t need)
{
    struct buf_out *bo = (struct buf_out *)o;
    size_t used = (size_t)(o->p - bo->base), ncap = bo->cap * 2;
    char *nb;

    if (ncap < used + need)
        ncap = used + need;
    if (ncap > PY_SSIZE_T_MAX || (nb = PyMem_Realloc(bo->base, ncap)) == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    bo->base = nb;
    bo->cap = ncap;
    o->p = nb + used;
    o->end = nb + ncap;
    return 0;
}

PyObject *fa_json_dumps(struct fa_json_cache *c, PyObject *obj, PyObject *default_fn)
{
    struct buf_out bo;
    PyObject *res = NULL;
    int own = c->scratch_busy || c->scratch == NULL;

    bo.cap = own ? SCRATCH_MIN : c->scratch_cap;
    bo.base = own ? PyMem_Malloc(bo.cap) : c->scratch;
    if (bo.base == NULL)
        return PyErr_NoMemory();
    if (!own)
        c->scratch_busy = 1;
    bo.out.p = bo.base;
    bo.out.end = bo.base + bo.cap;
    bo.out.more = buf__more;
    if (fa_json_encode(c, obj, default_fn, &bo.out) == 0)
        res = PyBytes_FromStringAndSize(bo.base, bo.out.p - bo.base);   /* new */
    if (own && !c->scratch_busy && c->scratch == NULL && bo.cap <= SCRATCH_KEEP) {
        /* The first call: its buffer becomes the scratch buffer. */
        c->scratch = bo.base;
        c->scratch_cap = bo.cap;
    } else if (own || bo.cap > SCRATCH_KEEP) {
        PyMem_Free(bo.base);
        if (!own) {
            c->scratch = NULL;
            c->scratch_cap = 0;
        }
    } else {
        c->scratch = bo.base;   /* perhaps moved by a realloc */
        c->scratch_cap = bo.cap;
    }
    if (!own)
        c->scratch_busy = 0;
    return res;
}

/* ------------------------------------------------------------------ */
/* The cache                                                            */
/* ------------------------------------------------------------------ */

int fa_json_cache_init(struct fa_json_cache *c)
{
    memset(c, 0, sizeof(*c));
    if ((c->str_json = PyUnicode_InternFromString("__json__")) == NULL ||
        (c->str_dc_fields = PyUnicode_InternFromString("__dataclass_fields__")) == NULL ||
        (c->str_field_type = PyUnicode_InternFromString("_field_type")) == NULL ||
        (c->dc_types = PyDict_New()) == NULL)
        return -1;
    return 0;
}

int fa_json_cache_traverse(struct fa_json_cache *c, visitproc visit, void *arg)
{
    Py_VISIT(c->dc_field);
    Py_VISIT(c->dc_types);
    Py_VISIT(c->default_fn);
    return 0;
}

void fa_json_cache_clear(struct fa_json_cache *c)
{
    if (!c->scratch_busy) {
        PyMem_Free(c->scratch);
        c->scratch = NULL;
        c->scratch_cap = 0;
    }
    Py_CLEAR(c->str_json);
    Py_CLEAR(c->str_dc_fields);
    Py_CLEAR(c->str_field_type);
    Py_CLEAR(c->dc_field);
    Py_CLEAR(c->dc_types);
    Py_CLEAR(c->default_fn);
}
