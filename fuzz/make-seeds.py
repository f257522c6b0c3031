#!/usr/bin/python3
"""Writes the seed corpora under fuzz/corpus/<target>/ (committed; rerun after
changing an input format). Each seed is small and meaningful: real requests,
route tables, chunk chains and envelopes as the server writes them.

    /usr/bin/python3 fuzz/make-seeds.py
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- fuzz_http: 1 flag byte, 2 bytes split point, then the request bytes ----

REQUESTS = {
    "get": b"GET /plaintext HTTP/1.1\r\nHost: localhost\r\n\r\n",
    "get-query": b"GET /users/42?verbose=true&x=%20y HTTP/1.1\r\nHost: a.example:8000\r\n"
                 b"User-Agent: curl/7.88\r\nAccept: */*\r\n\r\n",
    "post-cl": b"POST /echo HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\n"
               b"Content-Length: 13\r\n\r\n{\"a\": [1, 2]}",
    "post-chunked": b"POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
    "pipelined": b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n"
                 b"HEAD /c HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\nGET /d HTTP/1.1\r\n\r\n",
    "http10": b"GET / HTTP/1.0\r\n\r\n",
    "http10-keepalive": b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.0\r\n\r\n",
    "expect": b"PUT /up HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
    "absolute": b"GET http://example.com:80/p?q=1 HTTP/1.1\r\nHost: example.com\r\n\r\n",
    "options-star": b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
    "bare-lf": b"GET / HTTP/1.1\nHost: h\n\n",
    "leading-crlf": b"\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
    # What the hardening must refuse:
    "obs-fold": b"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\r\n b\r\n\r\n",
    "space-in-name": b"GET / HTTP/1.1\r\nHost: h\r\nX A: a\r\n\r\n",
    "space-before-colon": b"GET / HTTP/1.1\r\nHost : h\r\n\r\n",
    "bare-cr": b"GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n",
    "crlf-cr-x": b"GET / HTTP/1.1\r\nHost: h\r\n\rX",
    "two-hosts": b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "no-host": b"GET / HTTP/1.1\r\n\r\n",
    "http2": b"GET / HTTP/2.0\r\nHost: h\r\n\r\n",
    "cl-te": b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "te-twice": b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "te-gzip": b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    "cl-twice": b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    "cl-junk": b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1x\r\n\r\na",
    "ctl-in-value": b"GET / HTTP/1.1\r\nHost: h\r\nX: a\x01b\r\n\r\n",
    "nul-in-value": b"GET / HTTP/1.1\r\nHost: h\r\nX: a\x00b\r\n\r\n",
    "chunk-bad-crlf": b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1\r\naXY0\r\n\r\n",
    "chunk-ext-lf": b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1;a\nb\r\na\r\n0\r\n\r\n",
    "chunk-huge": b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n",
    "connect": b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
    "fragment": b"GET /a#b HTTP/1.1\r\nHost: h\r\n\r\n",
    "unknown-method": b"FOO / HTTP/1.1\r\nHost: h\r\n\r\n",
    "long-uri": b"GET /" + b"a" * 100 + b" HTTP/1.1\r\nHost: h\r\n\r\n",
    "many-headers": b"GET / HTTP/1.1\r\nHost: h\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(8)) + b"\r\n",
}


def http_seeds():
    for name, req in REQUESTS.items():
        half = len(req) // 2
        write("fuzz_http", name, bytes([0]) + struct.pack("<H", half) + req)
    # A few with small limits and pausing.
    for name in ("post-cl", "post-chunked", "pipelined", "long-uri", "many-headers"):
        req = REQUESTS[name]
        write("fuzz_http", name + "-small-pause", bytes([3]) + struct.pack("<H", 7) + req)


# ---- fuzz_router: "+M/pattern" adds for method M, "M/path" matches --------

GET, HEAD, POST, PUT, DELETE, PATCH = 1, 2, 3, 4, 0, 28


def m(n):
    return bytes([ord("0") + n])


def router_seeds():
    table = [
        (GET, b"/"), (GET, b"/plaintext"), (GET, b"/json"), (GET, b"/users/{user_id}"),
        (DELETE, b"/users/{id}"), (GET, b"/users/me"), (GET, b"/users/{id}/posts"),
        (POST, b"/echo"), (GET, b"/u/{a}/p/{b:int}"), (PUT, b"/items/"), (HEAD, b"/h"),
        (GET, b"/h"), (PATCH, b"/users/{user_id}"),
    ]
    adds = b"".join(b"+" + m(meth) + pat + b"\n" for meth, pat in table)
    paths = [
        (GET, b"/"), (GET, b"/plaintext"), (GET, b"/users/7"), (GET, b"/users/me"),
        (DELETE, b"/users/me"), (GET, b"/users/me/posts"), (POST, b"/users/7"),
        (HEAD, b"/json"), (HEAD, b"/h"), (GET, b"/u/x/p/9"), (PUT, b"/items"),
        (PUT, b"/items/"), (GET, b"/nope"), (GET, b"//"), (GET, b""), (GET, b"users"),
        (PATCH, b"/users/%2F"),
    ]
    matches = b"".join(m(meth) + path + b"\n" for meth, path in paths)
    write("fuzz_router", "table", adds + matches)
    write("fuzz_router", "refused",
          b"+1users\n+1/{}\n+1/{1a}\n+1/{a}/{a}\n+1/a{b}\n+1/{a:}\n+1/a b\n+\x7f/x\n+1/x\n+1/x\n1/x\n")
    deep = b"+1/" + b"/".join(b"{p%d}" % i for i in range(17)) + b"\n"
    deep += b"+1/" + b"/".join(b"{p%d}" % i for i in range(16)) + b"\n"
    deep += m(GET) + b"/" + b"/".join(b"v" for _ in range(16)) + b"\n"
    write("fuzz_router", "params16", deep)
    bt = b"+1/a/b/c\n+1/{x}/b/d\n+1/a/{y}/e\n1/a/b/d\n1/a/b/e\n1/a/b/c\n3/a/b/c\n"
    write("fuzz_router", "backtrack", bt)


# ---- fuzz_desc: see the input layout in fuzz_desc.c -------------------------

def desc_seeds():
    # Sane layout: 2 arenas, 4 chunks each, 64-byte chunks.
    def chunk(sel, extra=b"", nxt=0x80, ln=0x40):
        return bytes([sel]) + extra + bytes([nxt]) + bytes([ln])
    hdr = bytes([0, 1, 3, 0])            # mode 0, n_arenas 2, cpa 4, 64-byte chunks
    # arena 0: a 2-chunk message SENT to holder 1 (chunk 0 -> 1, 64 + 64 bytes)
    metas = chunk(1 | (1 << 2), bytes([5]), nxt=1, ln=0x40)
    metas += chunk(1 | (1 << 2), bytes([5]), nxt=0x80, ln=0x40)
    metas += chunk(0) + chunk(2 | (1 << 2))
    metas += chunk(0) * 4                # arena 1 all FREE
    tail = bytes([0, 1, 8, 0])           # arena 0, self 1, max_iov 8, not -1
    d_ok = bytes([0, 0]) + struct.pack("<H", 128)
    d_short = bytes([0, 0]) + struct.pack("<H", 64)
    d_cycle = bytes([0, 2]) + struct.pack("<H", 64)
    write("fuzz_desc", "chain-ok", hdr + metas + tail + d_ok + d_short + d_cycle)
    # A cycle: chunk 0 -> 1 -> 0.
    metas_c = chunk(1 | (1 << 2), bytes([5]), nxt=1) + chunk(1 | (1 << 2), bytes([5]), nxt=0)
    metas_c += chunk(0) * 6
    write("fuzz_desc", "cycle", hdr + metas_c + tail + bytes([0, 0]) + struct.pack("<H", 1000))
    # Through a ring (mode 2) with a wild tail.
    ring = bytes([1])                    # cap 4
    ring += struct.pack("<I", 0) + struct.pack("<I", 3)   # head 0, tail 3
    for c in (0, 1, 2, 3):
        ring += bytes([c]) + struct.pack("<H", 128) + bytes([0, 0])
    ring += bytes([1]) + struct.pack("<I", 0xfffffff0)    # the peer moves tail wildly
    write("fuzz_desc", "ring", bytes([2, 1, 3, 0]) + metas + tail + ring)
    # Raw header: geometry fields that point past the block.
    raw = bytes([1]) + struct.pack("<IIIII", 3, 4, 64, 0xfffffff0, 64) + struct.pack("<H", 512)
    write("fuzz_desc", "raw-header", raw + bytes(64))


# ---- fuzz_envelope: chunk size selector, early-end bits, message -----------

def mp_uint(n):
    if n < 128:
        return bytes([n])
    if n < 256:
        return b"\xcc" + bytes([n])
    if n < 65536:
        return b"\xcd" + struct.pack(">H", n)
    return b"\xce" + struct.pack(">I", n)


def mp_str(s):
    if isinstance(s, str):
        s = s.encode("latin-1")
    n = len(s)
    if n < 32:
        return bytes([0xa0 | n]) + s
    if n < 256:
        return b"\xd9" + bytes([n]) + s
    if n < 65536:
        return b"\xda" + struct.pack(">H", n) + s
    return b"\xdb" + struct.pack(">I", n) + s


def mp_array(items):
    n = len(items)
    head = bytes([0x90 | n]) if n < 16 else b"\xdc" + struct.pack(">H", n)
    return head + b"".join(items)


def envelope(route, method, path, query, params, headers, host, port, flags, body=b""):
    """As worker/dispatch.c fa_dispatch_begin packs it, then the raw body."""
    return mp_array([
        mp_uint(route), mp_str(method), mp_str(path), mp_str(query),
        mp_array([mp_str(p) for p in params]),
        mp_array([mp_str(x) for kv in headers for x in kv]),
        mp_str(host), b"\xcd" + struct.pack(">H", port), b"\xcc" + bytes([flags]),
    ]) + body


def envelope_seeds():
    hs = [("host", "localhost:8000"), ("user-agent", "curl/7.88"), ("accept", "*/*")]
    write("fuzz_envelope", "get", bytes([3, 0]) +
          envelope(3, "GET", "/users/42", "verbose=1", ["42"], hs, "127.0.0.1", 51234, 1))
    write("fuzz_envelope", "post-body", bytes([2, 0]) +
          envelope(7, "POST", "/echo", "", [], hs + [("content-type", "application/json")],
                   "::1", 40000, 1, b'{"a": [1, 2, 3]}' * 8))
    big = [("x-h%d" % i, "v" * 40) for i in range(20)]
    write("fuzz_envelope", "head-spans-chunks", bytes([1, 0x55]) +
          envelope(1, "GET", "/h", "", [], big, "127.0.0.1", 1, 3, b"tail"))
    write("fuzz_envelope", "head-only-bin", bytes([4, 0]) +
          envelope(0, "HEAD", "/", "", [], [], "127.0.0.1", 80, 2))
    # Malformed: too short, wrong types, truncated.
    write("fuzz_envelope", "short-array", bytes([3, 0]) + mp_array([mp_uint(1), mp_str("GET")]))
    write("fuzz_envelope", "truncated", bytes([3, 0]) +
          envelope(3, "GET", "/x", "", ["a"], hs, "h", 1, 0)[:25])
    write("fuzz_envelope", "big-array-count", bytes([3, 0]) + b"\xdd\x00\x01\x00\x00" + b"\xc0" * 16)


# ---- fuzz_json: first byte seeds the sink's run sizes, then the value ------

def json_seeds():
    # op codes of fuzz_json.c build(): 0 None, 1 True, 2 False, 3 int64, 5 float,
    # 6 str, 8 list, 11 dict, 13 IntSub, 17 __json__, 18 dataclass, 19 misc.
    def s(txt, kind=0):
        return bytes([6, len(txt), kind]) + bytes(txt)
    write("fuzz_json", "dict", bytes([3, 11, 3]) +
          bytes([0]) + s(b"id") + bytes([3]) + struct.pack("<q", 42) +
          bytes([0]) + s(b"name") + s(b'he said "hi"\\\n') +
          bytes([3]) + struct.pack("<i", -7) + bytes([8, 3, 0, 1, 2]))
    write("fuzz_json", "floats", bytes([0, 8, 3]) + bytes([5]) + struct.pack("<d", 0.1) +
          bytes([5]) + struct.pack("<d", 1e300) + bytes([5]) + struct.pack("<d", float("nan")))
    write("fuzz_json", "hooks", bytes([1, 8, 3, 17, 8, 1, 0, 18, 1, 2, 19, 0]))
    write("fuzz_json", "unicode", bytes([2, 8, 2]) + s(b"\xe9\x00\x1f", 1) +
          bytes([6, 2, 2]) + struct.pack("<HH", 0xd800, 0x263a))
    write("fuzz_json", "deep", bytes([0]) + bytes([8, 1]) * 260 + bytes([0]))


if __name__ == "__main__":
    http_seeds()
    router_seeds()
    desc_seeds()
    envelope_seeds()
    json_seeds()
