"""_boot.describe / _boot.load: the route table and the spec errors."""

import sys
import types

import pytest

from fasterapi import App, FastAPI, _boot


@pytest.fixture
def module_named(monkeypatch):
    def make(name, **attrs):
        module = types.ModuleType(name)
        for key, value in attrs.items():
            setattr(module, key, value)
        monkeypatch.setitem(sys.modules, name, module)
        return module
    return make


def test_describe__one_tuple_per_method_and_path_dense_ids(module_named):
    app = App(openapi_url=None)

    @app.get("/")
    def root():
        return "root"

    @app.route("/items/{item_id}", methods=["GET", "put", "DELETE"])
    def item(item_id: int):
        return {}

    @app.post("/items")
    def create():
        return {}

    module_named("fa_describe_app", app=app)
    assert _boot.describe("fa_describe_app:app") == [
        (0, "GET", "/", "python", {}),
        (1, "GET", "/items/{item_id}", "python", {}),
        (2, "PUT", "/items/{item_id}", "python", {}),
        (3, "DELETE", "/items/{item_id}", "python", {}),
        (4, "POST", "/items", "python", {}),
    ]


def test_describe__types_are_what_the_c_side_packs(module_named):
    app = App(docs_url=None, openapi_url=None)
    app.get("/x")(lambda: None)
    module_named("fa_types_app", app=app)
    (row,) = _boot.describe("fa_types_app:app")
    assert type(row) is tuple and [type(v) for v in row] == [int, str, str, str, dict]


def test_describe__dotted_attribute(module_named):
    app = App(openapi_url=None)
    app.get("/a")(lambda: None)
    module_named("fa_dotted_app", holder=types.SimpleNamespace(inner=types.SimpleNamespace(app=app)))
    assert _boot.describe("fa_dotted_app:holder.inner.app") == [(0, "GET", "/a", "python", {})]


def test_load__returns_dispatch_for_the_route_ids(module_named):
    app = App()

    @app.get("/a")
    def a():
        return "a"

    @app.get("/b")
    def b():
        return "b"

    module_named("fa_load_app", app=app)
    dispatch = _boot.load("fa_load_app:app")
    assert dispatch(1, "GET", "/b", "", (), [], ("127.0.0.1", 1), b"")[2] == b"b"
    assert dispatch(0, "GET", "/a", "", (), [], ("127.0.0.1", 1), b"")[2] == b"a"


def test_fastapi_alias_is_app(module_named):
    assert FastAPI is App
    app = FastAPI(openapi_url=None)
    app.get("/")(lambda: None)
    module_named("fa_alias_app", app=app)
    assert _boot.describe("fa_alias_app:app") == [(0, "GET", "/", "python", {})]


@pytest.mark.parametrize("spec", ["x", "x:", ":app", "a:b:c", "mod:1app", "mod:a..b", ""])
def test_spec__without_module_and_attr_is_refused(spec):
    with pytest.raises(ValueError) as info:
        _boot.describe(spec)
    assert str(info.value) == f"expected MODULE:ATTR, got {spec!r}"


def test_spec__load_checks_it_too():
    with pytest.raises(ValueError, match="expected MODULE:ATTR, got 'x'"):
        _boot.load("x")


def test_spec__missing_module_raises_the_import_error_itself():
    with pytest.raises(ModuleNotFoundError) as info:
        _boot.describe("fa_no_such_module_here:app")
    assert info.value.name == "fa_no_such_module_here"


def test_spec__syntax_error_propagates_with_its_location(tmp_path, monkeypatch):
    (tmp_path / "fa_broken_app.py").write_text("from fasterapi import App\napp = App(\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "fa_broken_app", raising=False)
    with pytest.raises(SyntaxError) as info:
        _boot.describe("fa_broken_app:app")
    assert info.value.filename.endswith("fa_broken_app.py")
    sys.modules.pop("fa_broken_app", None)


def test_spec__error_raised_by_the_module_propagates(tmp_path, monkeypatch):
    (tmp_path / "fa_raising_app.py").write_text("raise RuntimeError('config missing')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(RuntimeError, match="config missing"):
        _boot.load("fa_raising_app:app")
    sys.modules.pop("fa_raising_app", None)


def test_spec__missing_attribute_names_module_and_attribute(module_named):
    module_named("fa_noattr_app", app=App())
    with pytest.raises(ImportError) as info:
        _boot.describe("fa_noattr_app:application")
    message = str(info.value)
    assert "'fa_noattr_app'" in message and "'application'" in message
    assert "fa_noattr_app:application" in message


def test_spec__missing_dotted_attribute(module_named):
    module_named("fa_noattr2_app", ns=types.SimpleNamespace())
    with pytest.raises(ImportError, match=r"has no attribute 'ns\.app'"):
        _boot.load("fa_noattr2_app:ns.app")


def test_spec__attribute_that_is_not_an_app_names_its_type(module_named):
    module_named("fa_notapp_app", app={"routes": []})
    with pytest.raises(TypeError) as info:
        _boot.describe("fa_notapp_app:app")
    assert "builtins.dict" in str(info.value)
    assert "fa_notapp_app:app" in str(info.value)


def test_spec__a_real_class_instance_is_named_with_its_module(module_named):
    class Starlette:
        pass
    Starlette.__module__ = "starlette.applications"
    module_named("fa_foreign_app", app=Starlette())
    with pytest.raises(TypeError, match=r"starlette\.applications\..*Starlette, not a fasterapi\.App"):
        _boot.load("fa_foreign_app:app")


def test_load__freezes_the_route_table(module_named):
    app = App()
    app.get("/a")(lambda: None)
    module_named("fa_frozen_app", app=app)
    _boot.load("fa_frozen_app:app")
    with pytest.raises(RuntimeError, match="cannot be added once the server has loaded"):
        app.get("/late")(lambda: None)
