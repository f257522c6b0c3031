"""Registering routes: decorators, ids, duplicates, patterns, signatures."""

import pytest

from fasterapi import App, Request
from fasterapi.app import parse_pattern


def test_decorators__register_their_method_and_return_the_function():
    app = App()

    def handler():
        return {}

    for name in ("get", "post", "put", "patch", "delete"):
        assert getattr(app, name)("/r")(handler) is handler
    assert [(r.id, r.method, r.path) for r in app.routes] == [
        (0, "GET", "/r"), (1, "POST", "/r"), (2, "PUT", "/r"), (3, "PATCH", "/r"),
        (4, "DELETE", "/r")]


def test_route__default_method_is_get_and_methods_are_upper_cased():
    app = App(openapi_url=None)
    app.route("/a")(lambda: None)
    app.route("/b", methods=["post", "Options"])(lambda: None)
    assert app.describe() == [(0, "GET", "/a", "python", {}), (1, "POST", "/b", "python", {}),
                              (2, "OPTIONS", "/b", "python", {})]


def test_route__unknown_method_is_refused():
    app = App()
    with pytest.raises(ValueError, match="unknown method 'FETCH'"):
        app.route("/a", methods=["FETCH"])


def test_route__methods_as_a_str_is_refused():
    with pytest.raises(TypeError, match="methods must be a list"):
        App().route("/a", methods="GET")


def test_duplicate__same_method_and_path_raises_naming_both():
    app = App()

    @app.get("/users/{user_id}")
    def first(user_id: int):
        return {}

    with pytest.raises(ValueError) as info:
        @app.get("/users/{user_id}")
        def second(user_id: int):
            return {}
    message = str(info.value)
    assert message.startswith("duplicate route GET /users/{user_id}: already registered")
    assert "first" in message
    assert len(app.routes) == 1


def test_duplicate__parameter_names_do_not_make_a_path_different():
    app = App()
    app.get("/users/{user_id}")(lambda user_id: None)
    with pytest.raises(ValueError, match=r"duplicate route GET /users/\{uid\}.*as /users/\{user_id\}"):
        app.get("/users/{uid}")(lambda uid: None)


def test_duplicate__inside_one_route_call_registers_nothing():
    app = App(openapi_url=None)
    app.post("/a")(lambda: None)
    with pytest.raises(ValueError, match="duplicate route POST /a"):
        app.route("/a", methods=["GET", "POST"])(lambda: None)
    assert app.describe() == [(0, "POST", "/a", "python", {})]


def test_duplicate__other_method_or_path_is_fine():
    app = App()
    app.get("/a")(lambda: None)
    app.post("/a")(lambda: None)
    app.get("/a/")(lambda: None)
    app.get("/a/{x}")(lambda x: None)
    assert len(app.routes) == 4


@pytest.mark.parametrize("pattern, names", [
    ("/", ()),
    ("/plain/path", ()),
    ("/users/{user_id}", ("user_id",)),
    ("/u/{uid}/posts/{post_id}/", ("uid", "post_id")),
])
def test_pattern__parameter_names_in_order(pattern, names):
    assert parse_pattern(pattern) == names


@pytest.mark.parametrize("pattern, fragment", [
    ("users", "must be a str starting with '/'"),
    ("", "must be a str starting with '/'"),
    ("/files/{name}.txt", "must be a whole segment"),
    ("/a/{b", "must be a whole segment"),
    ("/a/{{b}}", "must be a whole segment"),
    ("/a/{1b}", "not a Python identifier"),
    ("/a/{}", "not a Python identifier"),
    ("/a/{x}/{x}", "appears twice"),
    ("/a/{id:int}", "annotate the handler's parameter instead (id: int)"),
    ("/a?b=1", "must not contain '?'"),
    ("/a b", "must not contain ' '"),
    ("/" + "/".join("{p%d}" % i for i in range(17)), "at most 16"),
])
def test_pattern__malformed_is_refused(pattern, fragment):
    with pytest.raises(ValueError) as info:
        App().get(pattern)
    assert fragment in str(info.value)


def test_signature__unsupported_annotation_names_route_and_parameter():
    class Item:
        pass

    app = App()
    with pytest.raises(TypeError) as info:
        @app.post("/items")
        def create(item: Item):
            return {}
    message = str(info.value)
    assert "POST /items" in message and "'item'" in message and "Item" in message


def test_signature__var_args_are_refused():
    app = App()
    with pytest.raises(TypeError, match=r"parameter 'args'.*\*args"):
        app.get("/a")(lambda *args: None)
    with pytest.raises(TypeError, match=r"parameter 'kw'.*\*\*kwargs"):
        app.get("/b")(lambda **kw: None)


def test_signature__unresolvable_string_annotation_is_a_clear_error():
    app = App()
    with pytest.raises(TypeError, match="cannot resolve the handler's annotations"):
        @app.get("/a")
        def handler(x: "NoSuchType"):  # noqa: F821
            return {}


def test_signature__not_callable_is_refused():
    with pytest.raises(TypeError, match="must be callable"):
        App().get("/a")("not a function")


def test_route__records_what_dispatch_needs_once():
    app = App()

    @app.get("/a/{x}")
    def sync(x: int, request: Request, q: str = ""):
        return {}

    @app.get("/b")
    async def no_await():
        return {}

    @app.get("/c")
    async def awaits(request: Request):
        return await request.json()

    @app.get("/d")
    async def async_with(request):
        async with request:
            pass

    a, b, c, d = app.routes
    assert (a.is_async, a.needs_request, a.param_names) == (False, True, ("x",))
    assert (b.is_async, b.suspends, b.needs_request) == (True, False, False)
    assert (c.is_async, c.suspends, c.needs_request) == (True, True, True)
    assert (d.is_async, d.suspends) == (True, True)
    assert a.path_converters[0][0] == "x"
