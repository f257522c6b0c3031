"""--bind unix:PATH: a Unix socket listener (for nginx upstreams)."""
import os
import re
import socket
import time


def _get(path, target):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % target.encode())
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    return data


def test_unix_socket_listener(server, tmp_path):
    sock = str(tmp_path / "fa.sock")
    srv = server("testapp:app", "--py-workers", "1", "--bind", "unix:" + sock, wait=False)
    deadline = time.monotonic() + 20
    while not re.search(r"serving testapp:app on http://unix:%s " % re.escape(sock), srv.log()):
        assert time.monotonic() < deadline and srv.proc.poll() is None, srv.log()
        time.sleep(0.05)
    data = _get(sock, "/ret/str")
    assert data.startswith(b"HTTP/1.1 200 OK\r\n"), data
    assert data.endswith(b"\r\n\r\njust text"), data
    assert srv.stop() == 0
    srv.checked = True
    assert not os.path.exists(sock)


def test_unix_socket_path_in_use_by_a_file(cli, tmp_path):
    path = tmp_path / "notasocket"
    path.write_text("x")
    r = cli("run", "testapp:app", "--app-dir", cli.apps_dir, "--bind", "unix:%s" % path,
            "--name", "unixclash%d" % os.getpid())
    assert r.returncode != 0
    assert b"exists and is not a socket" in r.stderr, r.stderr
