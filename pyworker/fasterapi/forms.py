"""Form bodies: application/x-www-form-urlencoded and multipart/form-data.

parse_form(content_type, body) -> FormData, a read-only multi-dict whose
values are str (fields) or UploadFile (file parts); a body of another
content type has no fields. The whole body is in
memory already (the server caps it with --max-body), so an UploadFile's
file is a BytesIO over its part. A malformed body raises FormError, which
dispatch answers 400 as Starlette does.
"""

import io
import re
from collections.abc import Mapping
from urllib.parse import parse_qsl, unquote

from .request import Headers

__all__ = ["FormData", "UploadFile", "FormError", "parse_form", "encode_multipart"]


class FormError(ValueError):
    pass


class UploadFile:
    """A file sent in a multipart/form-data body (Starlette's UploadFile).

    filename, content_type, headers, size, file (a binary file object). The
    async methods read/seek/write/close exist for code written for FastAPI;
    plain def handlers can use .file directly.
    """

    def __init__(self, file, *, size=None, filename=None, headers=None):
        self.file = file
        self.size = size
        self.filename = filename
        self.headers = headers if headers is not None else Headers()

    @property
    def content_type(self):
        return self.headers.get("content-type")

    async def read(self, size=-1):
        return self.file.read(size)

    async def seek(self, offset):
        self.file.seek(offset)

    async def write(self, data):
        self.file.write(data)
        if self.size is not None:
            self.size += len(data)

    async def close(self):
        self.file.close()

    def __repr__(self):
        return (f"UploadFile(filename={self.filename!r}, size={self.size!r}, "
                f"headers={self.headers!r})")


class FormData(Mapping):
    """Form fields, in order; f[name] and get() give the last value,
    getlist() every value (Starlette's FormData)."""

    __slots__ = ("_list", "_dict")

    def __init__(self, items=()):
        self._list = list(items)
        self._dict = dict(self._list)

    def __getitem__(self, key):
        return self._dict[key]

    def get(self, key, default=None):
        return self._dict.get(key, default)

    def getlist(self, key):
        return [v for k, v in self._list if k == key]

    def multi_items(self):
        return list(self._list)

    def __iter__(self):
        return iter(self._dict)

    def __len__(self):
        return len(self._dict)

    def __contains__(self, key):
        return key in self._dict

    def close(self):
        for _, v in self._list:
            if isinstance(v, UploadFile):
                v.file.close()

    def __repr__(self):
        return f"FormData({self._list!r})"


_TOKEN_PARAM = re.compile(r';\s*([^\s=;]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')


def parse_options(value):
    """('form-data', {'name': 'x', 'filename': 'a.txt'}) from a header value
    such as Content-Disposition or Content-Type (RFC 7578 / 5987 forms)."""
    main, _, rest = value.partition(";")
    options = {}
    for m in _TOKEN_PARAM.finditer(";" + rest):
        key, raw = m.group(1).lower(), m.group(2).strip()
        if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
            raw = re.sub(r'\\(.)', r'\1', raw[1:-1])
        if key.endswith("*"):
            charset, _, encoded = raw.partition("'")
            _, _, encoded = encoded.partition("'")
            try:
                raw = unquote(encoded, encoding=charset or "utf-8", errors="strict")
            except (LookupError, UnicodeDecodeError):
                raw = unquote(encoded)
            key = key[:-1]
        options[key] = raw
    return main.strip().lower(), options


def _parse_urlencoded(body):
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        text = body.decode("latin-1")
    return FormData(parse_qsl(text, keep_blank_values=True))


def _parse_multipart(body, boundary):
    if not boundary:
        raise FormError("multipart/form-data without a boundary")
    delimiter = b"\r\n--" + boundary.encode("latin-1")
    pieces = (b"\r\n" + body).split(delimiter)
    if len(pieces) < 2:
        raise FormError("no multipart boundary in the body")
    items = []
    closed = False
    for piece in pieces[1:]:
        if piece.startswith(b"--"):
            closed = True
            break
        head_end = piece.find(b"\r\n\r\n")
        if head_end < 0:
            raise FormError("a multipart part has no header end")
        head = piece[:head_end].lstrip(b" \t")
        if not head.startswith(b"\r\n") and head:
            raise FormError("garbage after a multipart boundary")
        content = piece[head_end + 4:]
        headers = []
        for line in head.split(b"\r\n"):
            if not line:
                continue
            name, colon, value = line.partition(b":")
            if not colon:
                raise FormError("a multipart header line has no ':'")
            headers.append((name.strip().decode("latin-1").lower(),
                            value.strip().decode("latin-1")))
        part_headers = Headers(raw=headers)
        disposition = part_headers.get("content-disposition")
        if disposition is None:
            raise FormError("a multipart part has no Content-Disposition")
        _, options = parse_options(disposition)
        name = options.get("name")
        if name is None:
            raise FormError("a multipart part has no name")
        # Header values were latin-1 decoded; names are UTF-8 on the wire.
        name = _utf8(name)
        if "filename" in options:
            filename = _utf8(options["filename"])
            items.append((name, UploadFile(io.BytesIO(content), size=len(content),
                                           filename=filename, headers=part_headers)))
        else:
            charset = parse_options(part_headers.get("content-type", "text/plain"))[1] \
                .get("charset", "utf-8")
            try:
                items.append((name, content.decode(charset)))
            except (LookupError, UnicodeDecodeError):
                items.append((name, content.decode("latin-1")))
    if not closed:
        raise FormError("the multipart body does not end with its closing boundary")
    return FormData(items)


def _utf8(text):
    try:
        return text.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return text


def parse_form(content_type, body):
    """FormData from a body (bytes) and its Content-Type header (or None)."""
    kind, options = parse_options(content_type or "")
    if kind == "multipart/form-data":
        return _parse_multipart(bytes(body), options.get("boundary"))
    if kind == "application/x-www-form-urlencoded":
        return _parse_urlencoded(bytes(body))
    return FormData()   # as Starlette: another content type has no form fields


def encode_multipart(fields, files, boundary):
    """(body, content_type) for the test client: fields is [(name, str)],
    files is [(name, (filename, bytes, content_type))]."""
    out = []
    b = boundary.encode()
    for name, value in fields:
        out.append(b"--" + b + b"\r\n")
        out.append(f'Content-Disposition: form-data; name="{name}"\r\n\r\n'.encode())
        out.append(value.encode() if isinstance(value, str) else bytes(value))
        out.append(b"\r\n")
    for name, (filename, data, ctype) in files:
        out.append(b"--" + b + b"\r\n")
        out.append(f'Content-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                   f"Content-Type: {ctype}\r\n\r\n".encode())
        out.append(data)
        out.append(b"\r\n")
    out.append(b"--" + b + b"--\r\n")
    return b"".join(out), f"multipart/form-data; boundary={boundary}"
