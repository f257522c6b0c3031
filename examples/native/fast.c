/* fast.c - native handlers for examples/native/app.py: C functions that
 * the HTTP worker calls with no Python on the way (include/fasterapi.h).
 *
 *   make -C examples/native
 *   fasterapi run app:app --app-dir examples/native
 *   curl localhost:8000/fast/plaintext
 *   curl 'localhost:8000/fast/hello/Ada?greeting=Bonjour'
 *   curl -d 'some bytes' localhost:8000/fast/echo
 */
#include <string.h>

#include <fasterapi.h>

/* GET /fast/plaintext: the body is a string literal, sent without a copy. */
int plaintext(const fa_request *req, fa_response *res)
{
    static const char body[] = "Hello, World!";

    (void)req;
    fa_response_header(res, "Content-Type", "text/plain; charset=utf-8");
    return fa_response_body_ref(res, body, sizeof body - 1);
}

/* GET /fast/hello/{name}?greeting=...: {"greeting": "Hello", "name": "...", "bytes": N} */
int hello(const fa_request *req, fa_response *res)
{
    fa_str name, greeting;

    if (fa_request_param(req, "name", &name) < 0)
        return -1;                                  /* cannot happen: the pattern has it */
    if (fa_request_query(req, "greeting", &greeting) < 0)
        greeting = (fa_str){"Hello", 5};
    fa_json_object(res);
    fa_json_key(res, "greeting");
    fa_json_string_n(res, greeting.ptr, greeting.len);
    fa_json_key(res, "name");
    fa_json_string_n(res, name.ptr, name.len);
    fa_json_key(res, "bytes");                     /* UTF-8 bytes */
    fa_json_uint(res, name.len);
    return fa_json_object_end(res);                 /* -1 if anything above went wrong */
}

/* POST /fast/echo: the body back, with the request's Content-Type. */
int echo(const fa_request *req, fa_response *res)
{
    fa_str type;

    if (fa_request_header(req, "content-type", &type) == 0)
        fa_response_header_n(res, "Content-Type", 12, type.ptr, type.len);
    fa_response_header(res, "X-Echo-Length", req->body.len ? "some" : "none");
    return fa_response_body(res, req->body.ptr, req->body.len);
}

/* GET /fast/teapot: any status the handler likes. */
int teapot(const fa_request *req, fa_response *res)
{
    (void)req;
    fa_response_status(res, 418);
    fa_json_object(res);
    fa_json_key(res, "detail");
    fa_json_string(res, "I'm a teapot");
    return fa_json_object_end(res);
}
