"""The command line: --help, bad flags (exit 64), apps that fail to import,
a port already in use."""
import os
import re
import socket
from pathlib import Path

import pytest

SRCDIR = Path(__file__).resolve().parents[2]


def _longopts():
    """The long options of `fasterapi`, read from the getopt_long table in
    master/cli.c (the one source of truth; fasterapi-pyworker's internal
    flags live in its own table in pyworker/main.c)."""
    src = (SRCDIR / "master" / "cli.c").read_text()
    m = re.search(r"struct option longopts\[\]\s*=\s*\{(.*?)\n\s*\};", src, re.S)
    assert m, "no `static const struct option longopts[] = {...};` in master/cli.c"
    flags = ["--" + f for f in re.findall(r'\{\s*"([^"]+)"\s*,', m.group(1))]
    # A parser that finds next to nothing is broken, not the CLI.
    assert len(flags) >= 20 and "--bind" in flags and "--help" in flags, flags
    return flags


RUN_FLAGS = _longopts()


def _mentions(text, flag):
    """flag appears as a whole flag (--timeout is not --graceful-timeout)."""
    return re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(flag), text) is not None


def _text(cp):
    return cp.stdout.decode(errors="replace"), cp.stderr.decode(errors="replace")


@pytest.mark.parametrize("args", [["--help"], ["run", "--help"]], ids=["help", "run-help"])
def test_help_lists_every_run_flag(cli, args):
    cp = cli(*args)
    out, err = _text(cp)
    assert cp.returncode == 0, err
    assert "fasterapi run MODULE:ATTR" in out
    missing = [flag for flag in RUN_FLAGS if not _mentions(out, flag)]
    assert missing == [], "--help does not document %s (in master/cli.c's longopts):\n%s" % (missing, out)


def test_readme_flag_table_lists_every_run_flag():
    readme = (SRCDIR / "README.md").read_text()
    rows = [ln for ln in readme.splitlines() if re.match(r"^\|\s*`--", ln)]
    assert rows, "README.md has no table of `run` flags (rows starting with | `--...)"
    table = "\n".join(rows)
    run_flags = [f for f in RUN_FLAGS if f not in ("--help", "--version")]
    missing = [f for f in run_flags if not _mentions(table, f)]
    assert missing == [], "README.md's flag table does not list %s (a flag of master/cli.c)" % missing


def test_no_arguments_prints_usage_and_exits_64(cli):
    cp = cli()
    out, err = _text(cp)
    assert cp.returncode == 64
    assert "usage: fasterapi run MODULE:ATTR" in err


# (arguments after `run`, strings the message must contain)
BAD_ARGS = [
    (["testapp:app", "--workers", "0"], ["--workers", "'0'"]),
    (["testapp:app", "--workers", "x"], ["--workers", "'x'"]),
    (["testapp:app", "--workers", "-2"], ["--workers", "'-2'"]),
    (["testapp:app", "--py-workers", "0"], ["--py-workers", "'0'"]),
    (["testapp:app", "--max-py-workers", "many"], ["--max-py-workers", "'many'"]),
    (["testapp:app", "--max-body", "12q"], ["--max-body", "'12q'"]),
    (["testapp:app", "--graceful-timeout", "soon"], ["--graceful-timeout", "'soon'"]),
    (["testapp:app", "--frobnicate"], ["--frobnicate"]),
    (["testapp:app", "--bind"], ["--bind"]),
    (["testapp:app", "--name", "a/b"], ["--name", "a/b"]),
    ([], ["MODULE:ATTR"]),
    (["nocolon"], ["nocolon", "MODULE:ATTR"]),
    ([":app"], ["':app'", "MODULE:ATTR"]),
    (["testapp:"], ["'testapp:'", "MODULE:ATTR"]),
]


@pytest.mark.parametrize("args,needles", BAD_ARGS, ids=[" ".join(a) or "no-app" for a, _ in BAD_ARGS])
def test_bad_arguments_exit_64_naming_the_flag(cli, tools, args, needles):
    name = tools.unique_name()
    # Options before MODULE:ATTR here; the server fixture puts them after.
    cp = cli("run", "--app-dir", tools.apps_dir, "--name", name, *args, timeout=10)
    out, err = _text(cp)
    assert cp.returncode == 64, "exit %d, stderr:\n%s" % (cp.returncode, err)
    for needle in needles:
        assert needle in err, "message does not name %r:\n%s" % (needle, err)
    assert "serving" not in err
    assert not os.path.exists(tools.segment_path(name))


# ---- apps that cannot be loaded ----------------------------------------------

# (spec, strings stderr must show)
IMPORT_FAILURES = [
    ("bad_syntax:app", ["Traceback (most recent call last)", "SyntaxError", "bad_syntax.py"]),
    ("fasterapi_blackbox_no_such_module:app",
     ["ModuleNotFoundError", "fasterapi_blackbox_no_such_module"]),
    ("imports_missing:app",
     ["Traceback (most recent call last)", "ModuleNotFoundError", "fasterapi_blackbox_no_such_dependency",
      "imports_missing.py"]),
    ("raises_at_import:app",
     ["Traceback (most recent call last)", "ValueError: raised while importing raises_at_import"]),
    # Quoted alone, the attribute comes from Python's message, not from the
    # master's "cannot load the app 'testapp:...'" line.
    ("testapp:no_such_attribute", ["'no_such_attribute'"]),
    ("testapp:not_an_app", ["'not_an_app'", "App"]),
]


@pytest.mark.parametrize("spec,needles", IMPORT_FAILURES, ids=[s for s, _ in IMPORT_FAILURES])
def test_app_import_failure_stops_startup(cli, tools, spec, needles):
    name = tools.unique_name()
    port = tools.free_port()
    # 10 s: a restart loop (five quick deaths with back-off) takes longer
    # than one failed import, and never exits at all without its limit.
    cp = cli("run", spec, "--app-dir", tools.apps_dir, "--bind", "127.0.0.1:%d" % port,
             "--name", name, "--py-workers", "2", timeout=10)
    out, err = _text(cp)
    assert cp.returncode != 0, err
    for needle in needles:
        assert needle in out + err, "stderr does not show %r:\n%s" % (needle, err)
    # Loaded once, not once per worker start: one traceback at most.
    n = (out + err).count("Traceback (most recent call last)")
    assert n <= 1, "%d tracebacks (a restart loop?):\n%s" % (n, err)
    assert spec in err, "the message does not name the app %r:\n%s" % (spec, err)
    assert "serving" not in err
    assert "restarting" not in err
    assert not os.path.exists(tools.segment_path(name)), "segment left behind"
    # Nobody listens on the port.
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_bind_to_port_in_use_fails_clearly(cli, tools):
    blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    port = blocker.getsockname()[1]
    name = tools.unique_name()
    try:
        cp = cli("run", "testapp:app", "--app-dir", tools.apps_dir, "--bind", "127.0.0.1:%d" % port,
                 "--name", name, "--py-workers", "1", timeout=15)
    finally:
        blocker.close()
    out, err = _text(cp)
    assert cp.returncode != 0, err
    assert "127.0.0.1:%d" % port in err, err
    assert "Address already in use" in err, err
    assert "serving" not in err
    assert not os.path.exists(tools.segment_path(name)), "segment left behind"


def test_bind_to_bad_address_fails_naming_it(cli, tools):
    name = tools.unique_name()
    cp = cli("run", "testapp:app", "--app-dir", tools.apps_dir, "--bind", "127.0.0.1",
             "--name", name, "--py-workers", "1", timeout=15)
    out, err = _text(cp)
    assert cp.returncode != 0, err
    assert "--bind" in err and "'127.0.0.1'" in err, err
    assert not os.path.exists(tools.segment_path(name)), "segment left behind"


def test_app_dir_that_does_not_exist(cli, tools):
    name = tools.unique_name()
    cp = cli("run", "testapp:app", "--app-dir", "/nonexistent/fasterapi-apps", "--name", name, timeout=10)
    out, err = _text(cp)
    assert cp.returncode == 64, err
    assert "--app-dir" in err and "/nonexistent/fasterapi-apps" in err, err
