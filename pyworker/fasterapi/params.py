"""Parameter markers, with FastAPI's names: Query, Path, Header, Cookie,
Body, Form, File, Depends, Security.

Use them as defaults or in Annotated, as in FastAPI:

    def search(q: Annotated[str | None, Query(max_length=50)] = None,
               x_token: str = Header(), item: Item = Body(embed=True),
               user=Depends(current_user)): ...

A marker only records what it was given; binding.compile_plan reads it once
per route at start-up.
"""

__all__ = ["Param", "Query", "Path", "Header", "Cookie", "Body", "Form", "File", "Depends",
           "Security", "Required"]


class _RequiredType:
    """The default that means "required" (FastAPI accepts ... too)."""

    def __repr__(self):
        return "Required"

    def __reduce__(self):
        return "Required"


Required = _RequiredType()


class Param:
    """What Query(), Path(), Header() and Cookie() make.

    default: ... or Required means required. alias: the name on the wire.
    gt/ge/lt/le/multiple_of (numbers), min_length/max_length (strings,
    lists), pattern (or its old name regex): constraints checked after
    conversion, answered with pydantic's error types. title, description,
    examples, deprecated, include_in_schema: for the OpenAPI document.
    """

    in_ = None

    def __init__(self, default=Required, *, default_factory=None, alias=None, title=None,
                 description=None, gt=None, ge=None, lt=None, le=None, multiple_of=None,
                 min_length=None, max_length=None, pattern=None, regex=None, example=None,
                 examples=None, deprecated=None, include_in_schema=True, json_schema_extra=None,
                 validation_alias=None, openapi_examples=None, strict=None, **extra):
        if default is Ellipsis:
            default = Required
        self.default = default
        self.default_factory = default_factory
        self.alias = alias if alias is not None else validation_alias
        self.title = title
        self.description = description
        self.gt, self.ge, self.lt, self.le = gt, ge, lt, le
        self.multiple_of = multiple_of
        self.min_length, self.max_length = min_length, max_length
        self.pattern = pattern if pattern is not None else regex
        self.example = example
        self.examples = examples
        self.deprecated = deprecated
        self.include_in_schema = include_in_schema
        self.json_schema_extra = json_schema_extra or {}
        self.extra = extra

    @property
    def required(self):
        return self.default is Required and self.default_factory is None

    def __repr__(self):
        return f"{type(self).__name__}({self.default!r})"


class Query(Param):
    in_ = "query"


class Path(Param):
    in_ = "path"

    def __init__(self, default=Required, **kwargs):
        # A path parameter is always required; FastAPI refuses a default.
        super().__init__(Required, **kwargs)


class Header(Param):
    """convert_underscores: x_token reads the header x-token (default)."""

    in_ = "header"

    def __init__(self, default=Required, *, convert_underscores=True, **kwargs):
        super().__init__(default, **kwargs)
        self.convert_underscores = convert_underscores


class Cookie(Param):
    in_ = "cookie"


class Body(Param):
    """embed: read the value from the key named like the parameter, even when
    it is the only body parameter. media_type: for the OpenAPI document."""

    in_ = "body"

    def __init__(self, default=Required, *, embed=None, media_type="application/json", **kwargs):
        super().__init__(default, **kwargs)
        self.embed = embed
        self.media_type = media_type


class Form(Body):
    """A field of an application/x-www-form-urlencoded or multipart/form-data
    body."""

    def __init__(self, default=Required, *, media_type="application/x-www-form-urlencoded",
                 **kwargs):
        super().__init__(default, media_type=media_type, **kwargs)


class File(Form):
    """A file part of a multipart/form-data body: annotate bytes for its
    content or UploadFile for the file object."""

    def __init__(self, default=Required, *, media_type="multipart/form-data", **kwargs):
        super().__init__(default, media_type=media_type, **kwargs)


class Depends:
    """A value computed by `dependency` (a function, class or any callable,
    whose own parameters are bound like a handler's), once per request
    unless use_cache=False. A generator dependency yields its value and its
    code after the yield runs once the response is sent."""

    def __init__(self, dependency=None, *, use_cache=True):
        self.dependency = dependency
        self.use_cache = use_cache

    def __repr__(self):
        name = getattr(self.dependency, "__name__", type(self.dependency).__name__)
        return f"{type(self).__name__}({name})"


class Security(Depends):
    """Depends with OAuth2 scopes (recorded for the OpenAPI document)."""

    def __init__(self, dependency=None, *, scopes=None, use_cache=True):
        super().__init__(dependency, use_cache=use_cache)
        self.scopes = list(scopes or ())
