/* main.c - fasterapi-pyworker: the command line, the embedded interpreter's
 * set-up, and the two modes.
 *
 *   --describe: import the app, print its route table (msgpack) on stdout.
 *   --serve:    attach the segment, import the app, mark the slot READY and
 *               run the serve loop (serve.c) until SIGTERM has been drained,
 *               then call fasterapi._boot.shutdown() if the package has it.
 *   --run:      run a Python file (or -m module) as __main__ in this
 *               interpreter, where `fasterapi` and the built-in `_fasterapi`
 *               import as in a worker (tests, benchmarks).
 *
 * Exit status: 0 done, 1 runtime failure (segment, dead master), 2 the app
 * raised while importing or describing (traceback on stderr), 64 bad
 * arguments (message and usage on stderr). --run: the script's status, as
 * python3 gives it (SystemExit's code, 1 for an uncaught exception).
 */

/* Python.h first (through these): it sets feature macros for libc headers. */
#include "pyworker/module.h"
#include "pyworker/serve.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <msgpack.h>

#include "shm/segment.h"

#ifndef FA_BUILDDIR
#error "FA_BUILDDIR must name the build directory (see pyworker/include.am)"
#endif
#ifndef FA_PYDIR_SRC
#error "FA_PYDIR_SRC must name pyworker/ in the source tree (see pyworker/include.am)"
#endif
#ifndef FA_PYDIR_INSTALLED
#error "FA_PYDIR_INSTALLED must name the installed package's parent dir (see pyworker/include.am)"
#endif

#define EXIT_APP   2
#define EXIT_USAGE 64

#ifdef __SANITIZE_ADDRESS__
/* --enable-sanitizers: CPython keeps some of its own allocations until the
 * process ends, even after Py_FinalizeEx; LeakSanitizer would turn each exit
 * into a failure. Leaks from our own code are still reported. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:libpython3\n";
}
#endif

/* The only global: set by the SIGTERM handler, read by the serve loop. */
static volatile sig_atomic_t pyw_stop;

enum pyw_mode { PYW_NONE, PYW_DESCRIBE, PYW_SERVE, PYW_RUN };

struct pyw_args {
    enum pyw_mode mode;
    const char *app;
    const char *app_dir;
    int shm_fd;
    long slot;
    long gen;
    int efd;
    int *http_efds;      /* malloc'd */
    int n_http_efds;
    /* --run: what to run, and its sys.argv (run_argv[0] is the file or the
     * module name). */
    int run_module;      /* -m */
    int run_argc;
    char **run_argv;     /* points into main's argv */
};

static const char *pyw_prog = "fasterapi-pyworker";

static void pyw__usage(FILE *f)
{
    fprintf(f,
            "usage: %s --describe --app MODULE:ATTR [--app-dir DIR]\n"
            "       %s --serve --app MODULE:ATTR [--app-dir DIR] --shm-fd N --slot P --gen G\n"
            "              --doorbell-fd F --http-doorbell-fds F0,F1,...\n"
            "       %s --run FILE [ARG...]\n"
            "       %s --run -m MODULE [ARG...]\n"
            "--describe and --serve are started by the fasterapi master; not meant to\n"
            "be run by hand. --run (first on the line) runs a Python file or module as\n"
            "__main__ in the embedded interpreter, where the fasterapi package and the\n"
            "built-in _fasterapi module (e.g. _fasterapi.dumps, the C JSON encoder)\n"
            "import as in a worker; sys.argv is FILE ARG... (for tests and benchmarks:\n"
            "%s --run -m pytest tests/pyworker).\n",
            pyw_prog, pyw_prog, pyw_prog, pyw_prog, pyw_prog);
}

static void pyw__bad_usage(const char *fmt, const char *arg)
{
    fprintf(stderr, "%s: ", pyw_prog);
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    pyw__usage(stderr);
    exit(EXIT_USAGE);
}

/* Parses a whole decimal number in [lo, hi] or exits 64 naming the flag. */
static long pyw__number(const char *flag, const char *s, long lo, long hi)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
        fprintf(stderr, "%s: %s expects a number between %ld and %ld, not '%s'\n",
                pyw_prog, flag, lo, hi, s);
        pyw__usage(stderr);
        exit(EXIT_USAGE);
    }
    return v;
}

/* An inherited fd: must be open. Marked close-on-exec so nothing the app
 * spawns holds the segment or a doorbell. */
static int pyw__fd(const char *flag, const char *s)
{
    int fd = (int)pyw__number(flag, s, 0, INT_MAX), fl;

    if ((fl = fcntl(fd, F_GETFD)) < 0) {
        fprintf(stderr, "%s: %s %d is not an open file descriptor (%s)\n",
                pyw_prog, flag, fd, strerror(errno));
        pyw__usage(stderr);
        exit(EXIT_USAGE);
    }
    fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
    return fd;
}

static void pyw__parse(int argc, char **argv, struct pyw_args *a)
{
    enum { O_DESCRIBE = 256, O_SERVE, O_APP, O_APP_DIR, O_SHM_FD, O_SLOT, O_GEN,
           O_DOORBELL_FD, O_HTTP_FDS, O_HELP, O_RUN };
    static const struct option opts[] = {
        {"describe", no_argument, NULL, O_DESCRIBE},
        {"serve", no_argument, NULL, O_SERVE},
        {"app", required_argument, NULL, O_APP},
        {"app-dir", required_argument, NULL, O_APP_DIR},
        {"shm-fd", required_argument, NULL, O_SHM_FD},
        {"slot", required_argument, NULL, O_SLOT},
        {"gen", required_argument, NULL, O_GEN},
        {"doorbell-fd", required_argument, NULL, O_DOORBELL_FD},
        {"http-doorbell-fds", required_argument, NULL, O_HTTP_FDS},
        {"help", no_argument, NULL, O_HELP},
        {"run", no_argument, NULL, O_RUN},
        {NULL, 0, NULL, 0},
    };
    const char *http_fds = NULL;
    int c;

    memset(a, 0, sizeof(*a));
    a->shm_fd = a->efd = -1;
    a->slot = a->gen = -1;
    /* --run takes the rest of the line as it is: the script's own options
     * must not reach getopt. */
    if (argc >= 2 && strcmp(argv[1], "--run") == 0) {
        a->mode = PYW_RUN;
        a->run_module = argc >= 3 && strcmp(argv[2], "-m") == 0;
        a->run_argv = argv + 2 + a->run_module;
        a->run_argc = argc - 2 - a->run_module;
        if (a->run_argc < 1 || a->run_argv[0][0] == '\0')
            pyw__bad_usage("%s", a->run_module ? "--run -m expects a MODULE"
                                               : "--run expects a FILE (or -m MODULE)");
        return;
    }
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case O_DESCRIBE:
        case O_SERVE:
            if (a->mode != PYW_NONE)
                pyw__bad_usage("%s", "give exactly one of --describe and --serve");
            a->mode = c == O_DESCRIBE ? PYW_DESCRIBE : PYW_SERVE;
            break;
        case O_APP: a->app = optarg; break;
        case O_APP_DIR: a->app_dir = optarg; break;
        case O_SHM_FD: a->shm_fd = pyw__fd("--shm-fd", optarg); break;
        case O_SLOT: a->slot = pyw__number("--slot", optarg, 0, 0x3fff); break;
        case O_GEN: a->gen = pyw__number("--gen", optarg, 0, UINT32_MAX); break;
        case O_DOORBELL_FD: a->efd = pyw__fd("--doorbell-fd", optarg); break;
        case O_HTTP_FDS: http_fds = optarg; break;
        case O_HELP: pyw__usage(stdout); exit(0);
        case O_RUN:
            pyw__bad_usage("%s", "--run must come first: --run FILE [ARG...]");
            break;
        default:
            pyw__bad_usage("unknown option or missing value: '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        pyw__bad_usage("unexpected argument '%s'", argv[optind]);
    if (a->mode == PYW_NONE)
        pyw__bad_usage("%s", "give --describe or --serve");
    if (a->app == NULL)
        pyw__bad_usage("%s", "--app MODULE:ATTR is required");
    if (strchr(a->app, ':') == NULL || a->app[0] == ':' || a->app[strlen(a->app) - 1] == ':')
        pyw__bad_usage("--app expects MODULE:ATTR (e.g. examples.hello:app), not '%s'", a->app);
    if (a->mode == PYW_DESCRIBE)
        return;
    if (a->shm_fd < 0 || a->slot < 0 || a->gen < 0 || a->efd < 0 || http_fds == NULL)
        pyw__bad_usage("%s", "--serve needs --shm-fd, --slot, --gen, --doorbell-fd and "
                       "--http-doorbell-fds");
    {
        char *copy = strdup(http_fds), *save = NULL, *tok;
        size_t n = 1;

        if (copy == NULL) {
            perror(pyw_prog);
            exit(1);
        }
        for (const char *p = http_fds; *p; p++)
            n += *p == ',';
        if ((a->http_efds = calloc(n, sizeof(int))) == NULL) {
            perror(pyw_prog);
            exit(1);
        }
        for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
            a->http_efds[a->n_http_efds++] = pyw__fd("--http-doorbell-fds", tok);
        if ((size_t)a->n_http_efds != n)
            pyw__bad_usage("--http-doorbell-fds expects F0,F1,... (no empty items), not '%s'",
                           http_fds);
        free(copy);
    }
}

/* ------------------------------------------------------------------ */
/* Signals                                                              */
/* ------------------------------------------------------------------ */

static void pyw__on_term(int sig)
{
    (void)sig;
    pyw_stop = 1;
}

static void pyw__signals(void)
{
    struct sigaction sa;
    sigset_t none;

    /* exec keeps the mask: the master may have blocked signals around fork. */
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    memset(&sa, 0, sizeof(sa));
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGINT, &sa, NULL);    /* the master coordinates shutdown */
    sigaction(SIGPIPE, &sa, NULL);   /* writes report EPIPE instead */
    sa.sa_handler = pyw__on_term;
    sa.sa_flags = 0;                 /* no SA_RESTART: a blocking wait returns EINTR */
    sigaction(SIGTERM, &sa, NULL);
}

/* ------------------------------------------------------------------ */
/* The interpreter                                                      */
/* ------------------------------------------------------------------ */

/* The package's parent dir: the source tree when this binary runs from the
 * build dir, the installed one otherwise. */
static const char *pyw__package_dir(void)
{
    char exe[PATH_MAX], build[PATH_MAX];

    if (realpath("/proc/self/exe", exe) == NULL)
        return FA_PYDIR_INSTALLED;
    if (realpath(FA_BUILDDIR, build) == NULL)
        snprintf(build, sizeof(build), "%s", FA_BUILDDIR);
    return strcmp(dirname(exe), build) == 0 ? FA_PYDIR_SRC : FA_PYDIR_INSTALLED;
}

/* sys.path[0:0] = [app_dir, pkg_dir]. 0, or -1 with an exception set. */
static int pyw__sys_path(const char *app_dir, const char *pkg_dir)
{
    PyObject *path = PySys_GetObject("path");   /* borrowed */
    PyObject *s;
    int r;

    if (path == NULL || !PyList_Check(path)) {
        PyErr_SetString(PyExc_RuntimeError, "sys.path is not a list");
        return -1;
    }
    if ((s = PyUnicode_DecodeFSDefault(pkg_dir)) == NULL)   /* new */
        return -1;
    r = PyList_Insert(path, 0, s);
    Py_DECREF(s);
    if (r < 0 || (s = PyUnicode_DecodeFSDefault(app_dir)) == NULL)
        return -1;
    r = PyList_Insert(path, 0, s);
    Py_DECREF(s);
    return r;
}

/* Starts the interpreter with sys.argv = argv[0..argc) and
 * sys.path[0:0] = [path0, the package's dir]. A worker ignores the
 * environment and handles its own signals; a --run script gets Python's
 * usual SIGINT (KeyboardInterrupt) and writes no bytecode next to it. */
static void pyw__python_init(char *argv0, int argc, char **argv, const char *path0, int run)
{
    PyConfig config;
    PyStatus st;

    if (fa_pymod_register() < 0) {
        fprintf(stderr, "%s: cannot register the _fasterapi module\n", pyw_prog);
        exit(1);
    }
    PyConfig_InitPythonConfig(&config);
    /* Debian's interpreter, untouched by the caller's environment (PATH's
     * python3 may be a pyenv build with its own PYTHONHOME/PYTHONPATH). */
    config.use_environment = 0;
    config.install_signal_handlers = run;
    config.write_bytecode = !run;
    config.parse_argv = 0;
    config.buffered_stdio = 0;       /* logs appear at once */
    st = PyConfig_SetBytesString(&config, &config.program_name, argv0);
    if (PyStatus_Exception(st))
        goto fail;
    st = PyConfig_SetBytesArgv(&config, argc, argv);
    if (PyStatus_Exception(st))
        goto fail;
    st = Py_InitializeFromConfig(&config);
    if (PyStatus_Exception(st))
        goto fail;
    PyConfig_Clear(&config);
    if (pyw__sys_path(path0, pyw__package_dir()) < 0) {
        PyErr_Print();
        exit(1);
    }
    return;
fail:
    PyConfig_Clear(&config);
    Py_ExitStatusException(st);   /* prints and exits */
}

/* fasterapi._boot.<fn>(spec). New reference, or NULL with an exception. */
static PyObject *pyw__boot_call(const char *fn, const char *spec)
{
    PyObject *boot, *res;

    if ((boot = PyImport_ImportModule("fasterapi._boot")) == NULL) {   /* new */
        if (PyErr_ExceptionMatches(PyExc_ModuleNotFoundError))
            fprintf(stderr, "%s: cannot import the fasterapi package: it was looked for in "
                    "%s first, then in Debian's Python path\n", pyw_prog, pyw__package_dir());
        return NULL;
    }
    res = PyObject_CallMethod(boot, fn, "s", spec);                  /* new */
    Py_DECREF(boot);
    return res;
}

/* ------------------------------------------------------------------ */
/* --describe                                                           */
/* ------------------------------------------------------------------ */

static int pyw__write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int pyw__pack_str(msgpack_packer *pk, PyObject *o)
{
    const char *p;
    Py_ssize_t n;

    if ((p = PyUnicode_AsUTF8AndSize(o, &n)) == NULL)
        return -1;
    return msgpack_pack_str_with_body(pk, p, (size_t)n) ? -1 : 0;
}

#define PYW_PACK_DEPTH 32

/* A route's `extra` (borrowed): dict -> map, list/tuple -> array, str ->
 * str (UTF-8), bytes/bytearray -> bin, int, float, bool, None -> nil.
 * -1 with an exception set (what, naming the route, for the message). */
static int pyw__pack_obj(msgpack_packer *pk, PyObject *o, Py_ssize_t route, int depth)
{
    if (depth > PYW_PACK_DEPTH) {
        PyErr_Format(PyExc_ValueError, "fasterapi._boot.describe(): route %zd: extra nests "
                     "deeper than %d levels", route, PYW_PACK_DEPTH);
        return -1;
    }
    if (o == Py_None)
        return msgpack_pack_nil(pk) ? -1 : 0;
    if (o == Py_True)
        return msgpack_pack_true(pk) ? -1 : 0;
    if (o == Py_False)
        return msgpack_pack_false(pk) ? -1 : 0;
    if (PyLong_Check(o)) {
        int overflow;
        long long v = PyLong_AsLongLongAndOverflow(o, &overflow);

        if (overflow > 0) {
            unsigned long long u = PyLong_AsUnsignedLongLong(o);
            if (u == (unsigned long long)-1 && PyErr_Occurred())
                return -1;
            return msgpack_pack_uint64(pk, u) ? -1 : 0;
        }
        if (overflow < 0) {
            PyErr_Format(PyExc_OverflowError, "fasterapi._boot.describe(): route %zd: an int "
                         "in extra is below -2**63", route);
            return -1;
        }
        if (v == -1 && PyErr_Occurred())
            return -1;
        return msgpack_pack_int64(pk, v) ? -1 : 0;
    }
    if (PyFloat_Check(o))
        return msgpack_pack_double(pk, PyFloat_AS_DOUBLE(o)) ? -1 : 0;
    if (PyUnicode_Check(o))
        return pyw__pack_str(pk, o);
    if (PyBytes_Check(o) || PyByteArray_Check(o)) {
        const char *p = PyBytes_Check(o) ? PyBytes_AS_STRING(o) : PyByteArray_AS_STRING(o);
        Py_ssize_t n = PyBytes_Check(o) ? PyBytes_GET_SIZE(o) : PyByteArray_GET_SIZE(o);

        return msgpack_pack_bin_with_body(pk, p, (size_t)n) ? -1 : 0;
    }
    if (PyList_Check(o) || PyTuple_Check(o)) {
        Py_ssize_t n = PySequence_Fast_GET_SIZE(o);

        if (msgpack_pack_array(pk, (size_t)n))
            return -1;
        for (Py_ssize_t i = 0; i < n; i++)
            if (pyw__pack_obj(pk, PySequence_Fast_GET_ITEM(o, i), route, depth + 1) < 0)
                return -1;
        return 0;
    }
    if (PyDict_Check(o)) {
        Py_ssize_t pos = 0;
        PyObject *k, *v;   /* borrowed */

        if (msgpack_pack_map(pk, (size_t)PyDict_GET_SIZE(o)))
            return -1;
        while (PyDict_Next(o, &pos, &k, &v))
            if (pyw__pack_obj(pk, k, route, depth + 1) < 0 ||
                pyw__pack_obj(pk, v, route, depth + 1) < 0)
                return -1;
        return 0;
    }
    PyErr_Format(PyExc_TypeError, "fasterapi._boot.describe(): route %zd: extra holds a %s "
                 "(expected dict, list, tuple, str, bytes, int, float, bool or None)",
                 route, Py_TYPE(o)->tp_name);
    return -1;
}

/* Packs describe()'s list (borrowed) into sb; -1 with an exception set. */
static int pyw__pack_routes(PyObject *routes, msgpack_sbuffer *sb)
{
    msgpack_packer pk;
    PyObject *seq;
    Py_ssize_t n;
    int rc = -1;

    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    if ((seq = PySequence_Fast(routes, "fasterapi._boot.describe() must return a list")) == NULL)
        return -1;   /* new on success */
    n = PySequence_Fast_GET_SIZE(seq);
    if (msgpack_pack_array(&pk, (size_t)n))
        goto nomem;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *r = PySequence_Fast_GET_ITEM(seq, i);   /* borrowed */
        PyObject *id, *method, *pattern, *kind;
        unsigned long long rid;
        Py_ssize_t len;

        if (!PyTuple_Check(r) || ((len = PyTuple_GET_SIZE(r)) != 4 && len != 5)) {
            PyErr_Format(PyExc_TypeError, "fasterapi._boot.describe(): route %zd is %R, expected "
                         "(route_id, method, pattern, kind[, extra])", i, r);
            goto out;
        }
        id = PyTuple_GET_ITEM(r, 0);
        method = PyTuple_GET_ITEM(r, 1);
        pattern = PyTuple_GET_ITEM(r, 2);
        kind = PyTuple_GET_ITEM(r, 3);
        if (!PyLong_Check(id) || !PyUnicode_Check(method) || !PyUnicode_Check(pattern) ||
            !PyUnicode_Check(kind) || (len == 5 && !PyDict_Check(PyTuple_GET_ITEM(r, 4)))) {
            PyErr_Format(PyExc_TypeError, "fasterapi._boot.describe(): route %zd is %R, expected "
                         "(int, str, str, str[, dict])", i, r);
            goto out;
        }
        rid = PyLong_AsUnsignedLongLong(id);
        if (rid == (unsigned long long)-1 && PyErr_Occurred())
            goto out;
        if (msgpack_pack_array(&pk, (size_t)len) || msgpack_pack_uint64(&pk, rid))
            goto nomem;
        if (pyw__pack_str(&pk, method) < 0 || pyw__pack_str(&pk, pattern) < 0 ||
            pyw__pack_str(&pk, kind) < 0)
            goto out;
        if (len == 5 && pyw__pack_obj(&pk, PyTuple_GET_ITEM(r, 4), i, 0) < 0) {
            if (!PyErr_Occurred())
                goto nomem;
            goto out;
        }
    }
    rc = 0;
    goto out;
nomem:
    PyErr_NoMemory();
out:
    Py_DECREF(seq);
    return rc;
}

/* out_fd: the real stdout, kept aside (fd 1 points at stderr meanwhile, so
 * that whatever the app prints while importing cannot corrupt the table). */
static int pyw__describe(const struct pyw_args *a, int out_fd)
{
    msgpack_sbuffer sb;
    PyObject *routes;
    int rc = EXIT_APP;

    msgpack_sbuffer_init(&sb);
    if ((routes = pyw__boot_call("describe", a->app)) == NULL) {   /* new */
        PyErr_Print();
        goto out;
    }
    if (pyw__pack_routes(routes, &sb) < 0) {
        PyErr_Print();
        Py_DECREF(routes);
        goto out;
    }
    Py_DECREF(routes);
    if (pyw__write_all(out_fd, sb.data, sb.size) < 0) {
        fprintf(stderr, "%s: writing the route table to stdout: %s\n", pyw_prog, strerror(errno));
        rc = 1;
        goto out;
    }
    rc = 0;
out:
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

/* ------------------------------------------------------------------ */
/* --run                                                                */
/* ------------------------------------------------------------------ */

/* runpy.run_path(FILE, run_name="__main__"), or for -m what `python3 -m`
 * does (runpy._run_module_as_main, which also sets sys.argv[0]). An
 * uncaught SystemExit ends the process in PyErr_Print with its code. */
static int pyw__run(const struct pyw_args *a)
{
    PyObject *runpy, *res;

    if ((runpy = PyImport_ImportModule("runpy")) == NULL) {   /* new */
        PyErr_Print();
        return 1;
    }
    if (a->run_module)
        res = PyObject_CallMethod(runpy, "_run_module_as_main", "s", a->run_argv[0]);
    else {
        PyObject *fn = PyObject_GetAttrString(runpy, "run_path");                /* new */
        PyObject *args = Py_BuildValue("(s)", a->run_argv[0]);                   /* new */
        PyObject *kw = Py_BuildValue("{s:s}", "run_name", "__main__");          /* new */

        res = fn && args && kw ? PyObject_Call(fn, args, kw) : NULL;
        Py_XDECREF(fn);
        Py_XDECREF(args);
        Py_XDECREF(kw);
    }
    Py_DECREF(runpy);
    if (res == NULL) {
        PyErr_Print();
        return 1;
    }
    Py_DECREF(res);
    return 0;
}

/* ------------------------------------------------------------------ */
/* --serve                                                              */
/* ------------------------------------------------------------------ */

/* The serve loop is over (SIGTERM drained, or the master or an HTTP worker
 * gone): fasterapi._boot.shutdown() runs the app's shutdown hooks (lifespan)
 * if the package defines it. Its errors are logged; they do not change the
 * exit status. */
static void pyw__shutdown(const struct pyw_args *a)
{
    PyObject *boot, *fn, *res;

    if ((boot = PyImport_ImportModule("fasterapi._boot")) == NULL) {   /* new */
        PyErr_Print();
        return;
    }
    fn = PyObject_GetAttrString(boot, "shutdown");                    /* new */
    Py_DECREF(boot);
    if (fn == NULL) {
        if (PyErr_ExceptionMatches(PyExc_AttributeError))
            PyErr_Clear();   /* the package has no shutdown hooks */
        else
            PyErr_Print();
        return;
    }
    res = PyObject_CallNoArgs(fn);                                    /* new */
    Py_DECREF(fn);
    if (res == NULL) {
        fprintf(stderr, "%s: slot %ld: fasterapi._boot.shutdown() raised (the app's shutdown "
                "hooks for '%s'); exiting anyway:\n", pyw_prog, a->slot, a->app);
        if (PyErr_ExceptionMatches(PyExc_SystemExit))
            PyErr_Clear();   /* PyErr_Print would exit with its code */
        else
            PyErr_PrintEx(0);
        return;
    }
    Py_DECREF(res);
}

/* fasterapi._boot.<name> is true (the package opts in to a protocol
 * variant); 0 if it is missing or false. */
static int pyw__boot_flag(const char *name)
{
    PyObject *boot = PyImport_ImportModule("fasterapi._boot"), *v;   /* new */
    int r = 0;

    if (boot != NULL && (v = PyObject_GetAttrString(boot, name)) != NULL) {   /* new */
        r = PyObject_IsTrue(v) == 1;
        Py_DECREF(v);
    }
    Py_XDECREF(boot);
    PyErr_Clear();
    return r;
}

/* An integer setting from the environment (set by the master from its
 * flags): `def` when unset; out of [lo, hi] or not a number: `def`, with a
 * warning naming the variable. */
static long pyw__env_num(const char *name, long def, long lo, long hi)
{
    const char *v = getenv(name);
    char *end;
    long n;

    if (v == NULL || *v == '\0')
        return def;
    errno = 0;
    n = strtol(v, &end, 10);
    if (errno != 0 || *end != '\0' || n < lo || n > hi) {
        fprintf(stderr, "%s: %s=%s is not a number from %ld to %ld: using %ld\n", pyw_prog,
                name, v, lo, hi, def);
        return def;
    }
    return n;
}

/* fasterapi._boot.loop_step and loop_wait (PROTOCOL.md, "The event loop
 * hooks"), new references, both or neither. */
static void pyw__loop_hooks(struct fa_serve_config *cfg)
{
    PyObject *boot = PyImport_ImportModule("fasterapi._boot");   /* new */

    cfg->loop_step = cfg->loop_wait = NULL;
    if (boot != NULL) {
        cfg->loop_step = PyObject_GetAttrString(boot, "loop_step");   /* new */
        cfg->loop_wait = PyObject_GetAttrString(boot, "loop_wait");   /* new */
        Py_DECREF(boot);
    }
    PyErr_Clear();
    if (cfg->loop_step == NULL || cfg->loop_wait == NULL || !PyCallable_Check(cfg->loop_step) ||
        !PyCallable_Check(cfg->loop_wait)) {
        Py_CLEAR(cfg->loop_step);
        Py_CLEAR(cfg->loop_wait);
    }
}

static int pyw__serve(const struct pyw_args *a, struct fa_seg *seg)
{
    struct fa_serve_config cfg;
    struct fa_slot_sh *slot = fa_seg_py_slot(seg, (uint32_t)a->slot);
    PyObject *mod, *dispatch;
    int rc;

    if ((mod = PyImport_ImportModule(FA_PYMOD_NAME)) == NULL) {   /* new */
        PyErr_Print();
        return 1;
    }
    fa_pymod_set_worker(mod, (int)a->slot, (uint32_t)a->gen, seg->hdr->n_http);
    if ((dispatch = pyw__boot_call("load", a->app)) == NULL) {   /* new */
        PyErr_Print();
        Py_DECREF(mod);
        return EXIT_APP;
    }
    if (!PyCallable_Check(dispatch)) {
        fprintf(stderr, "%s: fasterapi._boot.load('%s') did not return a callable\n",
                pyw_prog, a->app);
        Py_DECREF(dispatch);
        Py_DECREF(mod);
        return EXIT_APP;
    }
    if (atomic_load_explicit(&slot->gen, memory_order_acquire) != (uint32_t)a->gen)
        fprintf(stderr, "%s: slot %ld: the segment says generation %u, the master passed %ld\n",
                pyw_prog, a->slot, atomic_load(&slot->gen), a->gen);
    atomic_store_explicit(&slot->pid, (int32_t)getpid(), memory_order_relaxed);
    {
        /* STARTING -> READY only: if the master already moved the slot on
         * (DRAINING, DEAD), its word stands; we still answer what comes. */
        uint32_t want = FA_SLOT_STARTING;
        if (!atomic_compare_exchange_strong_explicit(&slot->state, &want, FA_SLOT_READY,
                                                     memory_order_release,
                                                     memory_order_relaxed))
            fprintf(stderr, "%s: slot %ld is in state %u, not STARTING: left as it is\n",
                    pyw_prog, a->slot, want);
    }

    cfg.seg = seg;
    cfg.slot = (uint32_t)a->slot;
    cfg.gen = (uint32_t)a->gen;
    cfg.efd = a->efd;
    cfg.http_efds = a->http_efds;
    cfg.dispatch = dispatch;
    cfg.module = mod;
    cfg.stop = &pyw_stop;
    cfg.lazy_headers = pyw__boot_flag("LAZY_HEADERS");
    pyw__loop_hooks(&cfg);
    cfg.concurrency = (uint32_t)pyw__env_num("FASTERAPI_PY_CONCURRENCY", 100, 1, 65535);
    cfg.timeout_ns = (uint64_t)pyw__env_num("FASTERAPI_TIMEOUT", 0, 0, 86400 * 365) * 1000000000ull;
    cfg.no_batch = pyw__env_num("FASTERAPI_NO_BATCH", 0, 0, 1) != 0;
    cfg.no_pool = pyw__env_num("FASTERAPI_NO_POOL", 0, 0, 1) != 0;
    rc = fa_serve_run(&cfg) < 0 ? 1 : 0;
    Py_XDECREF(cfg.loop_step);
    Py_XDECREF(cfg.loop_wait);
    Py_DECREF(dispatch);
    pyw__shutdown(a);
    Py_DECREF(mod);
    return rc;
}

/* Maps the inherited segment and checks the serve arguments against it.
 * 0, or the exit status (message on stderr). */
static int pyw__attach(const struct pyw_args *a, struct fa_seg *seg)
{
    char *cause = NULL;

    if (fa_seg_attach_fd(seg, a->shm_fd, &cause) < 0) {
        fprintf(stderr, "%s: --shm-fd %d: %s\n", pyw_prog, a->shm_fd,
                cause ? cause : strerror(errno));
        free(cause);
        return 1;
    }
    if (!seg->writable) {
        fprintf(stderr, "%s: --shm-fd %d is open read-only; the worker writes responses "
                        "into the segment (open it O_RDWR)\n", pyw_prog, a->shm_fd);
        return EXIT_USAGE;
    }
    if ((uint32_t)a->slot >= seg->hdr->max_py) {
        fprintf(stderr, "%s: --slot %ld: the segment has %u Python worker slots\n",
                pyw_prog, a->slot, seg->hdr->max_py);
        return EXIT_USAGE;
    }
    if ((uint32_t)a->n_http_efds != seg->hdr->n_http) {
        fprintf(stderr, "%s: --http-doorbell-fds gives %d eventfds, the segment has %u "
                        "HTTP worker slots\n", pyw_prog, a->n_http_efds, seg->hdr->n_http);
        return EXIT_USAGE;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct pyw_args a;
    struct fa_seg seg;
    char dir[PATH_MAX];
    int rc, out_fd = -1;

    memset(&seg, 0, sizeof(seg));
    if (argc > 0 && argv[0] != NULL && argv[0][0] != '\0')
        pyw_prog = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
    setvbuf(stdout, NULL, _IOLBF, 0);
    setvbuf(stderr, NULL, _IONBF, 0);
    pyw__parse(argc, argv, &a);

    if (a.mode == PYW_RUN) {
        sigset_t none;
        char *slash;

        /* sys.path[0]: the script's folder, or for -m the current one, as
         * python3 does. */
        if (a.run_module ? getcwd(dir, sizeof(dir)) == NULL
                         : realpath(a.run_argv[0], dir) == NULL) {
            fprintf(stderr, "%s: --run %s: %s\n", pyw_prog, a.run_argv[0], strerror(errno));
            rc = a.run_module ? 1 : EXIT_USAGE;
            goto out;
        }
        if (!a.run_module && (slash = strrchr(dir, '/')) != NULL)
            slash[slash == dir] = '\0';   /* "/x.py" -> "/" */
        sigemptyset(&none);   /* exec keeps the mask the master may have set */
        sigprocmask(SIG_SETMASK, &none, NULL);
        pyw__python_init(argv[0], a.run_argc, a.run_argv, dir, 1);
        rc = pyw__run(&a);
        if (Py_FinalizeEx() < 0 && rc == 0)
            rc = 120;   /* as python3: flushing stdout failed */
        goto out;
    }

    if (a.app_dir != NULL) {
        if (realpath(a.app_dir, dir) == NULL)
            pyw__bad_usage("--app-dir '%s': no such directory", a.app_dir);
    } else if (getcwd(dir, sizeof(dir)) == NULL) {
        fprintf(stderr, "%s: cannot get the current directory: %s\n", pyw_prog, strerror(errno));
        rc = 1;
        goto out;
    }

    pyw__signals();
    if (a.mode == PYW_DESCRIBE) {
        /* The table goes to the real stdout; fd 1 becomes stderr so that the
         * app's own prints cannot corrupt it. */
        if ((out_fd = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3)) < 0 ||
            dup2(STDERR_FILENO, STDOUT_FILENO) < 0) {
            fprintf(stderr, "%s: cannot set stdout aside: %s\n", pyw_prog, strerror(errno));
            rc = 1;
            goto out;
        }
    } else {
        if ((rc = pyw__attach(&a, &seg)) != 0)
            goto out;
        /* A master that dies makes us leave (drained, as on SIGTERM). */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
    }

    {
        char *pyargv[2] = {argv[0], (char *)a.app};
        pyw__python_init(argv[0], 2, pyargv, dir, 0);
    }
    rc = a.mode == PYW_DESCRIBE ? pyw__describe(&a, out_fd) : pyw__serve(&a, &seg);
    if (Py_FinalizeEx() < 0 && rc == 0)
        rc = 1;
out:
    /* Only now: a body view the app kept frees its chunks when finalisation
     * destroys it, and that writes to the segment. */
    fa_seg_detach(&seg);
    free(a.http_efds);
    return rc;
}
