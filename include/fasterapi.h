/* fasterapi.h - native handlers: C functions that answer a route inside the
 * HTTP worker, with no Python on the way.
 *
 *   # app.py
 *   app.native("GET", "/hello/{name}", library="./libfast.so", symbol="hello")
 *
 *   // fast.c
 *   #include <fasterapi.h>
 *
 *   int hello(const fa_request *req, fa_response *res)
 *   {
 *       fa_str name;
 *
 *       if (fa_request_param(req, "name", &name) < 0)
 *           return -1;                           // the client gets a 500
 *       fa_json_object(res);                     // Content-Type: application/json
 *       fa_json_key(res, "hello");
 *       fa_json_string_n(res, name.ptr, name.len);
 *       fa_json_object_end(res);
 *       return 0;                                // 200 unless fa_response_status said otherwise
 *   }
 *
 *   cc -shared -fPIC $(pkg-config --cflags fasterapi) -o libfast.so fast.c
 *
 * Nothing to link: every function below is a static inline that calls the
 * server through a table that `req` and `res` carry (as SQLite's loadable
 * extensions do), so the library resolves no symbol of the server, and one
 * built against this version keeps working with later servers (the table
 * only grows; FASTERAPI_API_VERSION says which entries a server has).
 *
 * How a handler runs
 *   The master dlopen()s the library and looks the symbol up before it
 *   starts any worker (a missing library or symbol stops start-up); the HTTP
 *   workers inherit it through fork. So the library's constructors, if it
 *   has any, run once in the master before that fork: they must not start
 *   threads. A reload (SIGHUP) finds an already loaded library under the
 *   same path and keeps its code: a changed library needs a restart. A handler runs in an HTTP worker, on its
 *   only thread, after the whole request body has arrived (up to --max-body),
 *   one call at a time per worker; with --workers N, N processes may run it
 *   at once, each with its own copy of the library's globals. While it runs,
 *   that worker serves nobody else: do not block (no sleeping, no network
 *   calls, no slow disk reads).
 *
 * Return value
 *   0: send the response that was built. Anything else: the client gets a
 *   500 and the worker logs the route and the value returned.
 *
 * Ownership and lifetimes
 *   - `req`, every string it points to and every fa_str a lookup returns
 *     belong to the server and are valid only until the handler returns;
 *     copy what you keep. Nothing is NUL-terminated unless said so.
 *   - The response setters copy what they are given, except
 *     fa_response_body_ref(), which keeps the pointer: that memory must stay
 *     valid and unchanged for as long as the library stays loaded (string
 *     literals, static arrays, memory the library never frees).
 *   - Names and values passed as `const char *` are NUL-terminated; the _n
 *     variants take a length and may hold any byte the function allows.
 *
 * Errors
 *   Functions returning int return 0 or -1. A -1 from a response or JSON
 *   function also marks the response as failed: the client gets a 500
 *   instead, and the worker logs the route and the reason (a header name
 *   that is not a token, CR, LF or NUL in a header value, a status out of
 *   range, JSON out of order or left open, a non-finite number). The
 *   exceptions, which fail nothing: fa_response_header() for a header the
 *   server sets itself, and the request lookups, whose -1 means "not there".
 */
#ifndef FASTERAPI_H
#define FASTERAPI_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FASTERAPI_API_VERSION 1

/* A byte string: ptr[0..len), not NUL-terminated. */
typedef struct fa_str {
    const char *ptr;
    size_t len;
} fa_str;

typedef struct fa_request fa_request;
typedef struct fa_response fa_response;

/* What app.native(..., symbol=...) names. */
typedef int fa_handler(const fa_request *req, fa_response *res);

/* The server's side, reached through req->api and res->api. Not for direct
 * use: call the functions below. */
struct fa_api {
    unsigned version;   /* FASTERAPI_API_VERSION of the server */
    unsigned size;      /* sizeof(struct fa_api) in the server */
    int (*request_param)(const fa_request *, const char *, size_t, fa_str *);
    int (*request_query)(const fa_request *, const char *, size_t, fa_str *);
    int (*request_header)(const fa_request *, const char *, size_t, fa_str *);
    int (*request_header_at)(const fa_request *, size_t, fa_str *, fa_str *);
    int (*response_status)(fa_response *, int);
    int (*response_header)(fa_response *, const char *, size_t, const char *, size_t);
    int (*response_body)(fa_response *, const void *, size_t, int);
    int (*json)(fa_response *, int, const void *, size_t);
    int (*json_int)(fa_response *, long long);
    int (*json_uint)(fa_response *, unsigned long long);
    int (*json_double)(fa_response *, double);
};

/* The request, read-only. Fields other than these are the server's. */
struct fa_request {
    const struct fa_api *api;   /* private */
    const char *method;         /* "GET", "POST", ... (NUL-terminated) */
    const char *route;          /* the route's pattern, "/hello/{name}" (NUL-terminated) */
    fa_str target;              /* the request-target as sent: "/hello/x?y=1" */
    fa_str path;                /* target up to '?', still percent-encoded */
    fa_str query;               /* after '?', still encoded; len 0 if none */
    fa_str body;                /* the whole body, de-chunked; len 0 if none */
    size_t n_headers;           /* for fa_request_header_at() */
    const char *client_addr;    /* "127.0.0.1" or "::1" (NUL-terminated) */
    unsigned client_port;
    int http_minor;             /* 1 for HTTP/1.1, 0 for HTTP/1.0 */
};

/* The response being built. Opaque but for the table pointer. */
struct fa_response {
    const struct fa_api *api;   /* private */
};

/* ---- the request --------------------------------------------------------- */

/* The path parameter `name` of the route's pattern ("{name}" or
 * "{name:path}"), percent-decoded. 0, or -1 if the pattern has no such
 * parameter. */
static inline int fa_request_param(const fa_request *req, const char *name, fa_str *value)
{
    size_t n = 0;
    while (name[n])
        n++;
    return req->api->request_param(req, name, n, value);
}

/* The first query parameter called `name` (compared after decoding), its
 * value decoded ("%xx" and '+' for a space). A name with no '=' has the value
 * "". 0, or -1 if absent. */
static inline int fa_request_query(const fa_request *req, const char *name, fa_str *value)
{
    size_t n = 0;
    while (name[n])
        n++;
    return req->api->request_query(req, name, n, value);
}

/* The first header called `name` (any case), its value without surrounding
 * whitespace. 0, or -1 if absent. */
static inline int fa_request_header(const fa_request *req, const char *name, fa_str *value)
{
    size_t n = 0;
    while (name[n])
        n++;
    return req->api->request_header(req, name, n, value);
}

/* Header i (0 <= i < req->n_headers) in request order; names are lower
 * case. 0, or -1 if i is out of range. */
static inline int fa_request_header_at(const fa_request *req, size_t i, fa_str *name, fa_str *value)
{
    return req->api->request_header_at(req, i, name, value);
}

/* ---- the response -------------------------------------------------------- */

/* The status, 200 by default. 200..599, else -1 (and a 500). */
static inline int fa_response_status(fa_response *res, int status)
{
    return res->api->response_status(res, status);
}

/* Adds a header (copied). The name must be a token (RFC 9110: letters,
 * digits and !#$%&'*+-.^_`|~), the value free of CR, LF and NUL: otherwise
 * -1 and a 500. Content-Length, Transfer-Encoding, Connection, Keep-Alive,
 * Date and Server are the server's: such a header is dropped and -1
 * returned, nothing fails. */
static inline int fa_response_header_n(fa_response *res, const char *name, size_t name_len,
                                       const char *value, size_t value_len)
{
    return res->api->response_header(res, name, name_len, value, value_len);
}

static inline int fa_response_header(fa_response *res, const char *name, const char *value)
{
    size_t n = 0, v = 0;
    while (name[n])
        n++;
    while (value[v])
        v++;
    return res->api->response_header(res, name, n, value, v);
}

/* Sets the body to a copy of data[0..len), replacing any body so far. */
static inline int fa_response_body(fa_response *res, const void *data, size_t len)
{
    return res->api->response_body(res, data, len, 0);
}

/* Appends a copy of data[0..len) to the body. */
static inline int fa_response_write(fa_response *res, const void *data, size_t len)
{
    return res->api->response_body(res, data, len, 1);
}

/* Sets the body to data[0..len) itself, not copied: see "Ownership" above. */
static inline int fa_response_body_ref(fa_response *res, const void *data, size_t len)
{
    return res->api->response_body(res, data, len, 2);
}

/* ---- JSON ---------------------------------------------------------------- */
/* Builds the body as one JSON value, written as the calls come: commas,
 * colons and string escapes are handled. The first call sets
 * Content-Type: application/json (unless a Content-Type header was set) and
 * starts the body; fa_response_body/write/body_ref cannot be mixed with
 * JSON in one response. Keys only inside objects, each followed by exactly
 * one value; 64 levels of nesting at most; strings must be UTF-8 (an
 * invalid byte is sent as U+FFFD); NaN and infinities are refused. A value
 * left open when the handler returns is a 500. */

enum { FA_JSON_OBJECT_ = 1, FA_JSON_OBJECT_END_, FA_JSON_ARRAY_, FA_JSON_ARRAY_END_,
       FA_JSON_KEY_, FA_JSON_STRING_, FA_JSON_TRUE_, FA_JSON_FALSE_, FA_JSON_NULL_ };

static inline int fa_json_object(fa_response *res)
{
    return res->api->json(res, FA_JSON_OBJECT_, NULL, 0);
}

static inline int fa_json_object_end(fa_response *res)
{
    return res->api->json(res, FA_JSON_OBJECT_END_, NULL, 0);
}

static inline int fa_json_array(fa_response *res)
{
    return res->api->json(res, FA_JSON_ARRAY_, NULL, 0);
}

static inline int fa_json_array_end(fa_response *res)
{
    return res->api->json(res, FA_JSON_ARRAY_END_, NULL, 0);
}

static inline int fa_json_key_n(fa_response *res, const char *key, size_t len)
{
    return res->api->json(res, FA_JSON_KEY_, key, len);
}

static inline int fa_json_key(fa_response *res, const char *key)
{
    size_t n = 0;
    while (key[n])
        n++;
    return res->api->json(res, FA_JSON_KEY_, key, n);
}

static inline int fa_json_string_n(fa_response *res, const char *s, size_t len)
{
    return res->api->json(res, FA_JSON_STRING_, s, len);
}

static inline int fa_json_string(fa_response *res, const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    return res->api->json(res, FA_JSON_STRING_, s, n);
}

static inline int fa_json_int(fa_response *res, long long v)
{
    return res->api->json_int(res, v);
}

static inline int fa_json_uint(fa_response *res, unsigned long long v)
{
    return res->api->json_uint(res, v);
}

/* Written in the shortest form that reads back as the same double. */
static inline int fa_json_double(fa_response *res, double v)
{
    return res->api->json_double(res, v);
}

static inline int fa_json_bool(fa_response *res, int v)
{
    return res->api->json(res, v ? FA_JSON_TRUE_ : FA_JSON_FALSE_, NULL, 0);
}

static inline int fa_json_null(fa_response *res)
{
    return res->api->json(res, FA_JSON_NULL_, NULL, 0);
}

#ifdef __cplusplus
}
#endif

#endif
