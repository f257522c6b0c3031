/* c_routes_native.c - the native handlers of c_routes_app.py, built by
 * test_fastapi_c_routes.py with cc -shared -I include. */
#include <fasterapi.h>

int add_handler(const fa_request *req, fa_response *res)
{
    fa_str a;

    if (fa_request_param(req, "a", &a) < 0)
        return -1;
    fa_json_object(res);
    fa_json_key(res, "native");
    fa_json_bool(res, 1);
    fa_json_key(res, "a");
    fa_json_string_n(res, a.ptr, a.len);
    return fa_json_object_end(res);
}

int decorated(const fa_request *req, fa_response *res)
{
    static const char body[] = "from the decorator form";

    (void)req;
    fa_response_header(res, "Content-Type", "text/plain; charset=utf-8");
    return fa_response_body_ref(res, body, sizeof body - 1);
}
