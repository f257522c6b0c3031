"""app.mount_static over the wire (kinds_app.py mounts FA_TEST_FILES_DIR at
/files): sendfile bodies whole and in order, validators and 304, ranges,
HEAD, and no way out of the directory; FileResponse from Python."""
import email.utils
import hashlib
import os
import socket
import threading
import time

import pytest

BIG = 3 * 1024 * 1024 + 123


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    top = tmp_path_factory.mktemp("files")
    root = top / "root"
    (root / "sub" / "deep").mkdir(parents=True)
    (root / "dir").mkdir()
    (top / "secret.txt").write_bytes(b"SECRET outside the mount\n")
    (root / "a.txt").write_bytes(b"hello file\n")
    (root / "index.html").write_bytes(b"<!doctype html><p>hi</p>")
    (root / "sub" / "style.css").write_bytes(b"p{color:red}")
    (root / "sub" / "deep" / "app.js").write_bytes(b"console.log(1)")
    (root / "caf\u00e9 menu.txt").write_bytes(b"unicode name")
    (root / "empty.bin").write_bytes(b"")
    (root / "big.bin").write_bytes(os.urandom(BIG))
    os.symlink("a.txt", root / "in-link")
    os.symlink(str(top / "secret.txt"), root / "out-abs")
    os.symlink("../secret.txt", root / "out-rel")
    os.symlink("..", root / "sub" / "up")
    os.symlink("../..", root / "sub" / "up2")
    os.mkfifo(root / "fifo")
    old = os.environ.get("FA_TEST_FILES_DIR")
    os.environ["FA_TEST_FILES_DIR"] = str(root)
    yield root
    if old is None:
        os.environ.pop("FA_TEST_FILES_DIR", None)
    else:
        os.environ["FA_TEST_FILES_DIR"] = old


@pytest.fixture(scope="module")
def srv(tree, module_server):
    return module_server("kinds_app:app", "--workers", "2", "--py-workers", "1")


def raw_get(srv, target, headers=(), method="GET"):
    """A request with the target exactly as written (no client normalising)."""
    with srv.raw() as c:
        c.request(method, target, headers=headers)
        return c.read_response(head=(method == "HEAD"))


def test_small_file(srv, tree, tools):
    r = srv.get("/files/a.txt")
    assert r.status == 200, r
    assert r.body == b"hello file\n"
    assert r.header("content-type") == "text/plain; charset=utf-8"
    assert r.header("accept-ranges") == "bytes"
    st = os.stat(tree / "a.txt")
    assert r.header("last-modified") == email.utils.formatdate(st.st_mtime, usegmt=True)
    assert r.header("etag").startswith('"') and r.header("etag").endswith('"')
    tools.check_common_headers(r)


@pytest.mark.parametrize("path,ctype", [
    ("/files/index.html", "text/html; charset=utf-8"),
    ("/files/sub/style.css", "text/css; charset=utf-8"),
    ("/files/sub/deep/app.js", "text/javascript; charset=utf-8"),
    ("/files/big.bin", "application/octet-stream"),
    ("/files/caf%C3%A9%20menu.txt", "text/plain; charset=utf-8"),
])
def test_content_type_and_nested_paths(srv, path, ctype):
    r = srv.get(path)
    assert r.status == 200, r
    assert r.header("content-type") == ctype


def test_big_file_whole(srv, tree):
    r = srv.get("/files/big.bin", timeout=30)
    assert r.status == 200
    assert r.header("content-length") == str(BIG)
    assert hashlib.sha256(r.body).digest() == hashlib.sha256((tree / "big.bin").read_bytes()).digest()


def test_big_files_pipelined_in_order(srv, tree, tools):
    """Three big files and small answers between them, in one send: the
    file parts go out whole, in request order, across partial writes."""
    want = (tree / "big.bin").read_bytes()
    reqs = ["/files/big.bin", "/health", "/files/a.txt", "/files/big.bin", "/py/q", "/files/big.bin"]
    with srv.raw(timeout=30) as c:
        c.send(b"".join(tools.build_request("GET", p, port=srv.port) for p in reqs))
        for p in reqs:
            r = c.read_response()
            assert r.status == 200, (p, r)
            if p == "/files/big.bin":
                assert r.body == want
            elif p == "/files/a.txt":
                assert r.body == b"hello file\n"


def test_slow_reader_gets_every_byte(srv, tree):
    """A client that reads slowly: the worker's sendfile stops and resumes
    many times; meanwhile other clients are served."""
    want = (tree / "big.bin").read_bytes()
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    sock.sendall(b"GET /files/big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    t0 = time.monotonic()
    while len(data) < 200000:
        data += sock.recv(8192)
        time.sleep(0.002)
    # others do not wait for it
    assert srv.get("/files/a.txt", timeout=5).status == 200
    while True:
        chunk = sock.recv(1 << 20)
        if not chunk:
            break
        data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        if len(body) >= BIG:
            break
    sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"200 OK" in head
    assert body == want
    assert time.monotonic() - t0 < 30


def test_concurrent_downloads(srv, tree):
    want = hashlib.sha256((tree / "big.bin").read_bytes()).digest()
    results = []

    def one():
        r = srv.get("/files/big.bin", timeout=30)
        results.append(hashlib.sha256(r.body).digest() == want and r.status == 200)

    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [True] * 8


def test_head(srv):
    r = raw_get(srv, "/files/big.bin", method="HEAD")
    assert r.status == 200
    assert r.header("content-length") == str(BIG)
    assert r.body == b""


def test_empty_file(srv):
    r = srv.get("/files/empty.bin")
    assert r.status == 200 and r.body == b"" and r.header("content-length") == "0"


# ---- validators ------------------------------------------------------------------

def test_if_none_match_is_304(srv):
    r = srv.get("/files/a.txt")
    etag = r.header("etag")
    with srv.raw() as c:
        c.request("GET", "/files/a.txt", headers=[("If-None-Match", etag)])
        n = c.read_response()
        assert n.status == 304, n
        assert n.body == b"" and n.header("content-length") is None
        assert n.header("etag") == etag
        # the connection goes on after a 304
        c.request("GET", "/files/a.txt", headers=[("If-None-Match", '"something-else"')])
        assert c.read_response().status == 200
    assert raw_get(srv, "/files/a.txt", [("If-None-Match", "W/" + etag)]).status == 304
    assert raw_get(srv, "/files/a.txt", [("If-None-Match", '"x", ' + etag)]).status == 304


def test_if_modified_since_is_304(srv, tree):
    lm = srv.get("/files/a.txt").header("last-modified")
    assert raw_get(srv, "/files/a.txt", [("If-Modified-Since", lm)]).status == 304
    assert raw_get(srv, "/files/a.txt", [("If-Modified-Since", "Sun, 06 Nov 1994 08:49:37 GMT")]).status == 200


def test_etag_follows_the_file(srv, tree):
    p = tree / "changing.txt"
    p.write_bytes(b"one")
    e1 = srv.get("/files/changing.txt").header("etag")
    time.sleep(0.01)
    p.write_bytes(b"two!")
    r = srv.get("/files/changing.txt")
    assert r.body == b"two!" and r.header("etag") != e1
    assert raw_get(srv, "/files/changing.txt", [("If-None-Match", e1)]).status == 200


# ---- ranges ------------------------------------------------------------------------

@pytest.mark.parametrize("rng,status,body,crange", [
    ("bytes=0-4", 206, b"hello", "bytes 0-4/11"),
    ("bytes=6-", 206, b"file\n", "bytes 6-10/11"),
    ("bytes=-5", 206, b"file\n", "bytes 6-10/11"),
    ("bytes=2-100", 206, b"llo file\n", "bytes 2-10/11"),
    ("bytes=11-", 416, None, "bytes */11"),
    ("bytes=-0", 416, None, "bytes */11"),
    ("bytes=0-1,4-5", 200, b"hello file\n", None),
    ("bytes=x", 200, b"hello file\n", None),
])
def test_range(srv, rng, status, body, crange):
    r = raw_get(srv, "/files/a.txt", [("Range", rng)])
    assert r.status == status, r
    if body is not None:
        assert r.body == body
    assert r.header("content-range") == crange


def test_range_in_a_big_file(srv, tree):
    data = (tree / "big.bin").read_bytes()
    a, b = 1000000, 2500000
    r = raw_get(srv, "/files/big.bin", [("Range", "bytes=%d-%d" % (a, b))])
    assert r.status == 206
    assert r.body == data[a:b + 1]
    assert r.header("content-range") == "bytes %d-%d/%d" % (a, b, BIG)


def test_if_range(srv):
    etag = srv.get("/files/a.txt").header("etag")
    assert raw_get(srv, "/files/a.txt", [("Range", "bytes=0-1"), ("If-Range", etag)]).status == 206
    r = raw_get(srv, "/files/a.txt", [("Range", "bytes=0-1"), ("If-Range", '"stale"')])
    assert r.status == 200 and r.body == b"hello file\n"


# ---- no way out ----------------------------------------------------------------------

@pytest.mark.parametrize("target", [
    "/files/../secret.txt",
    "/files/sub/../../secret.txt",
    "/files/%2e%2e/secret.txt",
    "/files/%2E%2E%2Fsecret.txt",
    "/files/..%2fsecret.txt",
    "/files/.%2e/secret.txt",
    "/files/sub/..%2f..%2fsecret.txt",
    "/files/sub%2f%2e%2e%2f%2e%2e%2fsecret.txt",
    "/files/%2fetc/passwd",
    "/files//etc/passwd",
    "/files/out-abs",
    "/files/out-rel",
    "/files/sub/up2/secret.txt",
    "/files/a.txt%00.html",
    "/files/%252e%252e/secret.txt",
])
def test_no_escape(srv, target):
    r = raw_get(srv, target)
    assert r.status in (400, 404), r
    assert b"SECRET" not in r.body and b"root:" not in r.body


@pytest.mark.parametrize("target", ["/files/dir", "/files/dir/", "/files/sub", "/files/", "/files",
                                    "/files/fifo", "/files/missing.txt", "/files/a.txt/"])
def test_not_files_are_404(srv, target):
    r = raw_get(srv, target)
    assert r.status == 404, r
    assert r.json() == {"detail": "Not Found"}


def test_symlinks_inside_are_served(srv):
    assert srv.get("/files/in-link").body == b"hello file\n"
    assert srv.get("/files/sub/up/a.txt").body == b"hello file\n"


def test_other_methods_405(srv):
    r = srv.request("POST", "/files/a.txt", b"x")
    assert r.status == 405 and r.header("allow") == "GET, HEAD"


# ---- FileResponse from Python (x-fasterapi-sendfile, see files.h) ---------------------------

def test_file_response_from_python(srv, tree):
    r = srv.get("/py/file/big.bin", timeout=30)
    assert r.status == 200, r
    assert r.header("x-fasterapi-sendfile") is None
    assert r.header("content-length") == str(BIG)
    assert r.body == (tree / "big.bin").read_bytes()
    h = raw_get(srv, "/py/file/a.txt", method="HEAD")
    assert h.status == 200 and h.body == b"" and h.header("content-length") == "11"
    # and a keep-alive connection goes on after a file part
    with srv.raw() as c:
        for _ in range(3):
            c.request("GET", "/py/file/a.txt")
            assert c.read_response().body == b"hello file\n"
            c.request("GET", "/files/a.txt")
            assert c.read_response().body == b"hello file\n"
