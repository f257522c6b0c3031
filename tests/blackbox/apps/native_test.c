/* native_test.c - native handlers for the black-box tests (kinds_app.py):
 * well-behaved ones that show what a handler sees, and misbehaving ones
 * that must end in a 500 with a log line naming the route. The test builds
 * it with cc -shared -fPIC -I include/.
 */
#include <stdio.h>
#include <string.h>

#include <fasterapi.h>

/* GET /n/echo/{a}/{b}?...: what the handler saw, as JSON. */
int n_inspect(const fa_request *req, fa_response *res)
{
    fa_str v, name;

    fa_json_object(res);
    fa_json_key(res, "method");
    fa_json_string(res, req->method);
    fa_json_key(res, "route");
    fa_json_string(res, req->route);
    fa_json_key(res, "path");
    fa_json_string_n(res, req->path.ptr, req->path.len);
    fa_json_key(res, "query");
    fa_json_string_n(res, req->query.ptr, req->query.len);
    fa_json_key(res, "a");
    if (fa_request_param(req, "a", &v) == 0)
        fa_json_string_n(res, v.ptr, v.len);
    else
        fa_json_null(res);
    fa_json_key(res, "b");
    if (fa_request_param(req, "b", &v) == 0)
        fa_json_string_n(res, v.ptr, v.len);
    else
        fa_json_null(res);
    fa_json_key(res, "q");
    if (fa_request_query(req, "q", &v) == 0)
        fa_json_string_n(res, v.ptr, v.len);
    else
        fa_json_null(res);
    fa_json_key(res, "x_test");
    if (fa_request_header(req, "X-Test", &v) == 0)
        fa_json_string_n(res, v.ptr, v.len);
    else
        fa_json_null(res);
    fa_json_key(res, "headers");
    fa_json_array(res);
    for (size_t i = 0; fa_request_header_at(req, i, &name, &v) == 0; i++)
        fa_json_string_n(res, name.ptr, name.len);
    fa_json_array_end(res);
    fa_json_key(res, "body_len");
    fa_json_uint(res, req->body.len);
    fa_json_key(res, "client");
    fa_json_string(res, req->client_addr);
    fa_json_key(res, "pi");
    fa_json_double(res, 3.141592653589793);
    return fa_json_object_end(res);
}

/* POST /n/echo: the body back. */
int n_echo(const fa_request *req, fa_response *res)
{
    fa_response_header(res, "Content-Type", "application/octet-stream");
    return fa_response_body(res, req->body.ptr, req->body.len);
}

/* GET /n/big: 1 MiB of a pattern, built with writes. */
int n_big(const fa_request *req, fa_response *res)
{
    char line[64];
    (void)req;
    for (int i = 0; i < 16384; i++) {
        snprintf(line, sizeof line, "%063d", i);
        fa_response_write(res, line, 63);
        fa_response_write(res, "\n", 1);
    }
    return 0;
}

/* GET /n/status/201: a status and a header. */
int n_created(const fa_request *req, fa_response *res)
{
    (void)req;
    fa_response_status(res, 201);
    fa_response_header(res, "Location", "/n/thing/1");
    return fa_response_body_ref(res, "made", 4);
}

int n_bad_header(const fa_request *req, fa_response *res)
{
    (void)req;
    fa_response_header(res, "X-Injected", "a\r\nSet-Cookie: evil=1");
    return fa_response_body(res, "should not be seen", 18);
}

int n_bad_name(const fa_request *req, fa_response *res)
{
    (void)req;
    fa_response_header(res, "Bad Name", "v");
    return 0;
}

int n_fails(const fa_request *req, fa_response *res)
{
    (void)req;
    fa_response_body(res, "partial", 7);
    return -3;
}

int n_json_open(const fa_request *req, fa_response *res)
{
    (void)req;
    fa_json_object(res);
    fa_json_key(res, "a");
    return fa_json_int(res, 1);
}
