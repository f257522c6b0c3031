"""The Request a handler asks for, with Starlette's names, built lazily.

A Request is made only for a handler that has a Request parameter. It keeps
the raw pieces that dispatch received and builds each view (headers, query
parameters, URL, client, body bytes) on first access.

The body may be a memoryview over shared memory that is valid only until
the request is finished (when dispatch returns, or for a deferred request
when it is answered). The request copies it to bytes once, on the first
read, and dispatch calls _release() when the handler is done, so no
reference to the view outlives the request; reading an unread body after
that raises.
"""

import json
from collections import namedtuple
from collections.abc import Mapping
from urllib.parse import parse_qsl, unquote, urlencode

__all__ = ["Request", "Headers", "QueryParams", "URL", "Address", "State", "parse_query_last",
           "parse_query_multi", "parse_cookies"]

Address = namedtuple("Address", ["host", "port"])

_UNREAD = object()


def parse_query_last(query):
    """Parses a raw query string into {name: value}, the last value winning.

    The same pairs as urllib.parse.parse_qsl(query, keep_blank_values=True)
    (split on '&', '+' is a space, percent-decoded as UTF-8 with errors
    replaced), without its per-call overhead. A name without '=' maps to "".
    """
    out = {}
    for part in query.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        if "+" in name:
            name = name.replace("+", " ")
        if "%" in name:
            name = unquote(name)
        if "+" in value:
            value = value.replace("+", " ")
        if "%" in value:
            value = unquote(value)
        out[name] = value
    return out


class QueryDict(dict):
    """{name: last value}, and .lists {name: [every value]}."""

    __slots__ = ("lists",)


def parse_query_multi(query):
    """parse_query_last's pairs as a QueryDict (for list[...] parameters)."""
    out = QueryDict()
    lists = out.lists = {}
    for part in query.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        if "+" in name:
            name = name.replace("+", " ")
        if "%" in name:
            name = unquote(name)
        if "+" in value:
            value = value.replace("+", " ")
        if "%" in value:
            value = unquote(value)
        out[name] = value
        values = lists.get(name)
        if values is None:
            lists[name] = [value]
        else:
            values.append(value)
    return out


def parse_cookies(header):
    """{name: value} from a Cookie header, as Starlette's cookie_parser
    (lenient: pairs split on ';', quotes removed, the first name wins)."""
    out = {}
    for chunk in header.split(";"):
        if "=" in chunk:
            key, value = chunk.split("=", 1)
        else:
            key, value = "", chunk
        key, value = key.strip(), value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        if key or value:
            out.setdefault(key, unquote(value))
    return out


class State:
    """An object to hang attributes on (request.state, app.state)."""

    def __init__(self, state=None):
        self.__dict__.update(state or {})

    def __repr__(self):
        return f"State({self.__dict__!r})"


class Headers(Mapping):
    """Request headers: a case-insensitive, read-only, multi-valued mapping.

    Wraps a list of (name, value) str pairs whose names are lower case (what
    dispatch receives); nothing is copied or decoded. h[name] and get() give
    the first value, getlist() all of them, keys()/values()/items() every
    pair in order (as Starlette's Headers).
    """

    __slots__ = ("_list",)

    def __init__(self, headers=None, *, raw=None):
        if raw is not None:
            self._list = raw
        elif headers is None:
            self._list = []
        else:
            pairs = headers.items() if isinstance(headers, Mapping) else headers
            self._list = [(str(k).lower(), v) for k, v in pairs]

    @property
    def raw(self):
        return self._list

    def __getitem__(self, key):
        key = key.lower()
        for name, value in self._list:
            if name == key:
                return value
        raise KeyError(key)

    def get(self, key, default=None):
        key = key.lower()
        for name, value in self._list:
            if name == key:
                return value
        return default

    def getlist(self, key):
        key = key.lower()
        return [value for name, value in self._list if name == key]

    def __contains__(self, key):
        if not isinstance(key, str):
            return False
        key = key.lower()
        for name, _ in self._list:
            if name == key:
                return True
        return False

    def keys(self):
        return [name for name, _ in self._list]

    def values(self):
        return [value for _, value in self._list]

    def items(self):
        return list(self._list)

    def __iter__(self):
        return iter(self.keys())

    def __len__(self):
        return len(self._list)

    def __eq__(self, other):
        if not isinstance(other, Headers):
            return NotImplemented
        return sorted(self._list) == sorted(other._list)

    __hash__ = None

    def __repr__(self):
        return f"{type(self).__name__}({self._list!r})"


class QueryParams(Mapping):
    """Query parameters: a read-only multi-dict (Starlette's QueryParams).

    q[name] and get() give the last value, getlist() every value in order,
    items()/keys()/values() one entry per name (its last value),
    multi_items() every pair. str() gives the query back, encoded.
    """

    __slots__ = ("_list", "_dict")

    def __init__(self, query=""):
        if isinstance(query, str):
            self._list = parse_qsl(query, keep_blank_values=True)
        else:
            pairs = query.items() if isinstance(query, Mapping) else query
            self._list = [(str(k), str(v)) for k, v in pairs]
        self._dict = dict(self._list)

    def __getitem__(self, key):
        return self._dict[key]

    def get(self, key, default=None):
        return self._dict.get(key, default)

    def getlist(self, key):
        return [value for name, value in self._list if name == key]

    def multi_items(self):
        return list(self._list)

    def keys(self):
        return self._dict.keys()

    def values(self):
        return self._dict.values()

    def items(self):
        return self._dict.items()

    def __contains__(self, key):
        return key in self._dict

    def __iter__(self):
        return iter(self._dict)

    def __len__(self):
        return len(self._dict)

    def __eq__(self, other):
        if not isinstance(other, QueryParams):
            return NotImplemented
        return sorted(self._list) == sorted(other._list)

    __hash__ = None

    def __str__(self):
        return urlencode(self._list)

    def __repr__(self):
        return f"{type(self).__name__}({str(self)!r})"


class URL:
    """The request URL. path is percent-decoded (as Starlette's url.path),
    raw_path is as received, query is the raw query string without '?'."""

    __slots__ = ("raw_path", "query", "_headers", "_path")

    scheme = "http"
    fragment = ""

    def __init__(self, raw_path, query="", headers=()):
        self.raw_path = raw_path
        self.query = query
        self._headers = headers
        self._path = None

    @property
    def path(self):
        if self._path is None:
            self._path = unquote(self.raw_path) if "%" in self.raw_path else self.raw_path
        return self._path

    @property
    def netloc(self):
        for name, value in self._headers:
            if name == "host":
                return value
        return ""

    @property
    def hostname(self):
        netloc = self.netloc
        if netloc.startswith("["):
            return netloc[1:netloc.find("]")]
        return netloc.rpartition(":")[0] if ":" in netloc else netloc

    @property
    def port(self):
        netloc = self.netloc
        tail = netloc[netloc.find("]") + 1:] if netloc.startswith("[") else netloc
        _, colon, port = tail.rpartition(":")
        return int(port) if colon and port.isdigit() else None

    @property
    def is_secure(self):
        return False

    def __str__(self):
        url = f"{self.scheme}://{self.netloc}{self.raw_path}"
        return f"{url}?{self.query}" if self.query else url

    def __eq__(self, other):
        return str(self) == str(other)

    __hash__ = None

    def __repr__(self):
        return f"URL({str(self)!r})"


class Request:
    """One HTTP request, as the handler sees it (Starlette's names).

    method, url (.path, .query), headers, query_params, path_params (decoded,
    converted by the handler's annotations), client (host, port).

    The body, for `async def` handlers as in Starlette: `await req.body()`
    (bytes) and `await req.json()`. For plain `def` handlers, the same
    synchronously with Flask's names: `req.get_data()` (bytes) and
    `req.get_json()` (the parsed JSON; unlike Flask it does not look at
    Content-Type, and invalid JSON raises json.JSONDecodeError, a 500 unless
    the handler catches it, as Starlette's json()). Both read the body only
    while the handler runs.

    `await request.is_disconnected()`: whether the client went away (or the
    request timed out), for a handler that waits; False before it waited
    for the first time (only then is the request deferred and watched).
    """

    __slots__ = ("method", "_raw_path", "_query", "_params", "_header_list", "_client",
                 "_body", "_data", "_json", "_route", "_headers", "_query_params",
                 "_path_params", "_url", "_cookies", "_parsed", "_ctx", "_state", "app",
                 "_deferred")

    def __init__(self, method, path, query="", params=(), headers=(), client=None,
                 body=b"", route=None):
        self.method = method
        self._raw_path = path
        self._query = query
        self._params = params
        self._header_list = headers
        self._client = client
        self._body = b"" if body is None else body
        self._data = None
        self._json = _UNREAD
        self._route = route
        self._headers = None
        self._query_params = None
        self._path_params = None
        self._url = None
        self._cookies = None
        self._parsed = None
        self._ctx = None
        self._state = None
        self.app = None
        self._deferred = None    # aio.Deferred, set once dispatch deferred the request

    @property
    def url(self):
        if self._url is None:
            self._url = URL(self._raw_path, self._query, self._header_list)
        return self._url

    @property
    def headers(self):
        if self._headers is None:
            self._headers = Headers(raw=self._header_list)
        return self._headers

    @property
    def query_params(self):
        if self._query_params is None:
            self._query_params = QueryParams(self._query)
        return self._query_params

    @property
    def path_params(self):
        if self._path_params is None:
            route = self._route
            converters = route.path_converters if route is not None else ()
            out = {}
            for (name, convert), raw in zip(converters, self._params):
                if "%" in raw:
                    raw = unquote(raw)
                out[name] = raw if convert is None else convert(raw)
            self._path_params = out
        return self._path_params

    @property
    def cookies(self):
        if self._cookies is None:
            out = {}
            for name, value in self._header_list:
                if name == "cookie":
                    for k, v in parse_cookies(value).items():
                        out.setdefault(k, v)
            self._cookies = out
        return self._cookies

    @property
    def state(self):
        """Per-request attributes; starts with what the lifespan yielded."""
        if self._state is None:
            app = self.app
            lifespan_state = getattr(app, "_lifespan_state", None) if app is not None else None
            self._state = State(dict(lifespan_state) if lifespan_state else None)
        return self._state

    @property
    def path(self):
        return self.url.path

    @property
    def client(self):
        client = self._client
        if not client:
            return None
        return Address(client[0], client[1])

    def get_data(self):
        """The body as bytes (Flask's name; for plain def handlers).

        Copies the shared-memory view once, on the first call; later calls
        return the same bytes, even after the response was sent.
        """
        data = self._data
        if data is None:
            body = self._body
            if body is None:
                raise RuntimeError(
                    "the request body was not read while the handler ran and is gone "
                    "now; read it (get_data(), await body()) inside the handler")
            data = body if type(body) is bytes else bytes(body)
            self._data = data
            self._body = data
        return data

    def get_json(self):
        """The body parsed as JSON (Flask's name; for plain def handlers)."""
        if self._json is _UNREAD:
            self._json = json.loads(self.get_data())
        return self._json

    def get_form(self):
        """The body parsed as a form (FormData; for plain def handlers)."""
        from .forms import parse_form
        if self._parsed is not None and type(self._parsed) is tuple and \
                type(self._parsed[0]).__name__ == "FormData":
            return self._parsed[0]
        form = parse_form(self.headers.get("content-type"), self.get_data())
        self._parsed = (form,)
        return form

    async def form(self):
        """The body parsed as a form (Starlette's name; await it)."""
        return self.get_form()

    async def body(self):
        """The body as bytes (Starlette's name; await it)."""
        return self.get_data()

    async def json(self):
        """The body parsed as JSON (Starlette's name; await it)."""
        return self.get_json()

    async def stream(self):
        """The body as an async iterator of bytes (Starlette's name): the
        whole body (the server has it all), then b""."""
        data = self.get_data()
        if data:
            yield data
        yield b""

    async def is_disconnected(self):
        d = self._deferred
        return d is not None and d.gone

    def _release(self):
        """Called by dispatch when the handler is done: drops the body view
        if it was never read, so nothing refers to shared memory."""
        if self._data is None:
            self._body = None

    def __repr__(self):
        return f"<Request {self.method} {self._raw_path}>"
