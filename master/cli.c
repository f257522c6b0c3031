/* cli.c - fasterapi's command line: subcommands, flags, defaults, messages. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdbool.h>
#include <unistd.h>

#include "master/cli.h"
#include "shm/segment.h"
#include "worker/util.h"

#define FA_MAX_HTTP_WORKERS 64
#define FA_MAX_PY_WORKERS 64

void fa_cli_usage(FILE *f)
{
    fputs(
"usage: fasterapi run MODULE:ATTR [options]\n"
"       fasterapi stop | reload | status [--name NAME]\n"
"       fasterapi scale [--name NAME] --py-workers N\n"
"       fasterapi --help | --version\n"
"\n"
"run: serve the FasterAPI app MODULE:ATTR (e.g. examples.hello:app).\n"
"  --app-dir DIR           directory put first on the Python path to import MODULE\n"
"                          (default: the current directory)\n"
"  --bind HOST:PORT        address to listen on (default 127.0.0.1:8000; [::1]:8000 for IPv6;\n"
"                          unix:PATH for a Unix socket, e.g. behind nginx)\n"
"  --workers N             HTTP worker processes (default 1)\n"
"  --py-workers M          Python worker processes (default: number of CPUs); MIN:MAX\n"
"                          scales automatically: starts workers when requests queue and\n"
"                          retires idle ones after --idle-timeout\n"
"  --idle-timeout S        seconds an autoscaled Python worker may stay idle (default 30)\n"
"  --max-py-workers K      Python worker slots in shared memory, the ceiling for scaling\n"
"                          (default: max(2 x M, 2 x CPUs), at most 64; a reload needs 2 x M)\n"
"  --name NAME             instance name: the segment is /fasterapi.NAME and shm-stat NAME\n"
"                          attaches to it; one live server per name (default: default)\n"
"  --max-body SIZE         largest request body, e.g. 1048576, 512k, 8m (default 1m);\n"
"                          larger requests get 413\n"
"  --max-header-bytes SIZE request line + headers limit (default 16k; over: 431)\n"
"  --graceful-timeout S    seconds to finish in-flight requests on SIGTERM (default 10)\n"
"  --timeout S             a Python request running longer gets 504 and its worker is\n"
"                          replaced (default 60; 0: no limit)\n"
"  --max-requests N        recycle a Python worker after N requests (default 0: never)\n"
"  --max-requests-jitter J add 0..J to --max-requests per worker (default 0)\n"
"  --max-rss MB            recycle a Python worker whose RSS grows past MB (default 0: never)\n"
"  --keepalive-timeout S   close idle keep-alive connections after S seconds (default 15)\n"
"  --header-timeout S      a request head must arrive within S seconds, else 408 (default 10)\n"
"  --body-timeout S        a request body must progress every S seconds, else 408 (default 30)\n"
"  --max-connections N     open connections per HTTP worker; more wait in the kernel's\n"
"                          accept queue (default 10000)\n"
"  --metrics PATH          serve Prometheus text metrics at PATH, in C (default: off)\n"
"  --access-log FILE|-     write an access log line per request (- is stdout; default: off)\n"
"  --access-log-format F   combined (default) or json\n"
"  --log-level L           error, warning, info (default) or debug\n"
"  --interface I           what MODULE:ATTR is: auto (default: a FasterAPI App is native, an\n"
"                          async callable of 3 arguments is ASGI, any other callable WSGI),\n"
"                          native, wsgi or asgi\n"
"  --root-path P           the prefix the app is mounted under (WSGI SCRIPT_NAME, ASGI\n"
"                          root_path; default empty)\n"
"  --py-concurrency N      requests a Python worker keeps in flight at once: async handlers\n"
"                          waiting on the event loop, streamed responses, --py-threads work\n"
"                          (default 100, 1..65535)\n"
"  --py-threads N          run plain def handlers on a pool of N threads per Python worker,\n"
"                          for blocking code (default 0: inline, one at a time)\n"
"\n"
"stop: send SIGTERM to the server named NAME (default: default).\n"
"reload: send SIGHUP: load the app again, start new workers, retire the old ones.\n"
"status: print the server's workers and their states.\n"
"scale: set the number of Python workers (1..--max-py-workers) at run time; SIGTTIN and\n"
"       SIGTTOU to the master add or remove one.\n"
"\n"
"Signals to the master: SIGTERM or SIGINT stop gracefully (exit 0), SIGHUP reloads,\n"
"SIGTTIN / SIGTTOU add / remove a Python worker.\n",
        f);
}

/* Parses a count in [lo, hi]. */
static int cli__count(const char *flag, const char *s, uint32_t lo, uint32_t hi, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi || s[0] == '-') {
        fprintf(stderr, "fasterapi: %s: expected a whole number from %u to %u, got '%s'\n", flag, lo, hi, s);
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

/* Parses "123", "64k", "8m", "1g". */
static int cli__size(const char *flag, const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    uint64_t mul = 1;
    if (*end == 'k' || *end == 'K')
        mul = 1024, end++;
    else if (*end == 'm' || *end == 'M')
        mul = 1024 * 1024, end++;
    else if (*end == 'g' || *end == 'G')
        mul = 1024ull * 1024 * 1024, end++;
    if (errno || end == s || *end || s[0] == '-' || v * mul < lo || v * mul > hi) {
        fprintf(stderr, "fasterapi: %s: expected a size from %llu to %llu bytes (suffix k, m or g allowed), got '%s'\n",
                flag, (unsigned long long)lo, (unsigned long long)hi, s);
        return -1;
    }
    *out = v * mul;
    return 0;
}

int fa_cli_parse(int argc, char **argv, struct fa_options *o)
{
    enum { O_APP_DIR = 256, O_BIND, O_WORKERS, O_PY_WORKERS, O_MAX_PY, O_NAME, O_MAX_BODY,
           O_MAX_HEADER, O_GRACEFUL, O_HELP, O_VERSION, O_TIMEOUT, O_MAX_REQ, O_MAX_REQ_JITTER,
           O_MAX_RSS, O_KEEPALIVE, O_HEADER_TO, O_BODY_TO, O_MAX_CONN, O_METRICS, O_ACCESS_LOG,
           O_ACCESS_FMT, O_LOG_LEVEL, O_IDLE, O_INTERFACE, O_ROOT_PATH, O_PY_CONCURRENCY,
           O_PY_THREADS };
    static const struct option longopts[] = {
        {"app-dir", required_argument, NULL, O_APP_DIR},
        {"bind", required_argument, NULL, O_BIND},
        {"workers", required_argument, NULL, O_WORKERS},
        {"py-workers", required_argument, NULL, O_PY_WORKERS},
        {"max-py-workers", required_argument, NULL, O_MAX_PY},
        {"name", required_argument, NULL, O_NAME},
        {"max-body", required_argument, NULL, O_MAX_BODY},
        {"max-header-bytes", required_argument, NULL, O_MAX_HEADER},
        {"graceful-timeout", required_argument, NULL, O_GRACEFUL},
        {"timeout", required_argument, NULL, O_TIMEOUT},
        {"max-requests", required_argument, NULL, O_MAX_REQ},
        {"max-requests-jitter", required_argument, NULL, O_MAX_REQ_JITTER},
        {"max-rss", required_argument, NULL, O_MAX_RSS},
        {"keepalive-timeout", required_argument, NULL, O_KEEPALIVE},
        {"header-timeout", required_argument, NULL, O_HEADER_TO},
        {"body-timeout", required_argument, NULL, O_BODY_TO},
        {"max-connections", required_argument, NULL, O_MAX_CONN},
        {"metrics", required_argument, NULL, O_METRICS},
        {"access-log", required_argument, NULL, O_ACCESS_LOG},
        {"access-log-format", required_argument, NULL, O_ACCESS_FMT},
        {"log-level", required_argument, NULL, O_LOG_LEVEL},
        {"idle-timeout", required_argument, NULL, O_IDLE},
        {"interface", required_argument, NULL, O_INTERFACE},
        {"root-path", required_argument, NULL, O_ROOT_PATH},
        {"py-concurrency", required_argument, NULL, O_PY_CONCURRENCY},
        {"py-threads", required_argument, NULL, O_PY_THREADS},
        {"help", no_argument, NULL, O_HELP},
        {"version", no_argument, NULL, O_VERSION},
        {NULL, 0, NULL, 0},
    };
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (ncpu < 1)
        ncpu = 1;

    memset(o, 0, sizeof *o);
    o->bind = "127.0.0.1:8000";
    o->name = "default";
    o->workers = 1;
    o->py_workers = (uint32_t)(ncpu > FA_MAX_PY_WORKERS ? FA_MAX_PY_WORKERS : ncpu);
    fa_http_limits_default(&o->wcfg.limits);
    o->wcfg.limits.max_body = 1024 * 1024;
    o->wcfg.max_pipeline = 64;
    o->wcfg.backlog_max = 4096;
    o->wcfg.graceful_timeout = 10;
    o->wcfg.keepalive_timeout = 15;
    o->wcfg.header_timeout = 10;
    o->wcfg.body_timeout = 30;
    o->wcfg.max_connections = 10000;
    o->wcfg.request_timeout = 60;
    o->wcfg.access_log_fd = -1;
    o->wcfg.log_level = FA_LOG_INFO;
    o->idle_timeout = 30;
    o->interface = "auto";
    o->root_path = "";
    o->py_concurrency = 100;
    const char *app_dir = ".";
    bool max_py_set = false;
    bool py_set = false;

    if (argc < 2) {
        fa_cli_usage(stderr);
        return -1;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        o->cmd = FA_CMD_HELP;
        return 0;
    }
    if (strcmp(cmd, "--version") == 0) {
        o->cmd = FA_CMD_VERSION;
        return 0;
    }
    if (strcmp(cmd, "run") == 0) {
        o->cmd = FA_CMD_RUN;
    } else if (strcmp(cmd, "stop") == 0) {
        o->cmd = FA_CMD_STOP;
    } else if (strcmp(cmd, "scale") == 0) {
        o->cmd = FA_CMD_SCALE;
    } else if (strcmp(cmd, "status") == 0) {
        o->cmd = FA_CMD_STATUS;
    } else if (strcmp(cmd, "reload") == 0) {
        o->cmd = FA_CMD_RELOAD;
    } else {
        fprintf(stderr, "fasterapi: unknown command '%s' (expected run, stop, reload, status or scale; see fasterapi --help)\n", cmd);
        return -1;
    }

    optind = 2;
    opterr = 0;
    int c;
    uint64_t v64;
    while ((c = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
        switch (c) {
        case O_APP_DIR: app_dir = optarg; break;
        case O_BIND: o->bind = optarg; break;
        case O_WORKERS:
            if (cli__count("--workers", optarg, 1, FA_MAX_HTTP_WORKERS, &o->workers) < 0)
                return -1;
            break;
        case O_PY_WORKERS: {
            py_set = true;
            const char *colon = strchr(optarg, ':');
            if (colon) {
                char lo[32];
                size_t n = (size_t)(colon - optarg);
                if (n >= sizeof lo)
                    n = sizeof lo - 1;
                memcpy(lo, optarg, n);
                lo[n] = '\0';
                if (cli__count("--py-workers MIN", lo, 1, FA_MAX_PY_WORKERS, &o->min_py_workers) < 0 ||
                    cli__count("--py-workers MAX", colon + 1, 1, FA_MAX_PY_WORKERS, &o->py_workers) < 0)
                    return -1;
                if (o->min_py_workers > o->py_workers) {
                    fprintf(stderr, "fasterapi: --py-workers %s: MIN is more than MAX\n", optarg);
                    return -1;
                }
                o->autoscale = true;
            } else if (cli__count("--py-workers", optarg, 1, FA_MAX_PY_WORKERS, &o->py_workers) < 0) {
                return -1;
            }
            break;
        }
        case O_TIMEOUT:
            if (cli__count("--timeout", optarg, 0, 86400, &o->wcfg.request_timeout) < 0)
                return -1;
            break;
        case O_MAX_REQ:
            if (cli__count("--max-requests", optarg, 0, UINT32_MAX / 2, &o->max_requests) < 0)
                return -1;
            break;
        case O_MAX_REQ_JITTER:
            if (cli__count("--max-requests-jitter", optarg, 0, UINT32_MAX / 4, &o->max_requests_jitter) < 0)
                return -1;
            break;
        case O_MAX_RSS:
            if (cli__count("--max-rss", optarg, 0, 1u << 20, &o->max_rss_mb) < 0)
                return -1;
            break;
        case O_KEEPALIVE:
            if (cli__count("--keepalive-timeout", optarg, 0, 86400, &o->wcfg.keepalive_timeout) < 0)
                return -1;
            break;
        case O_HEADER_TO:
            if (cli__count("--header-timeout", optarg, 1, 3600, &o->wcfg.header_timeout) < 0)
                return -1;
            break;
        case O_BODY_TO:
            if (cli__count("--body-timeout", optarg, 1, 3600, &o->wcfg.body_timeout) < 0)
                return -1;
            break;
        case O_MAX_CONN:
            if (cli__count("--max-connections", optarg, 1, 1000000, &o->wcfg.max_connections) < 0)
                return -1;
            break;
        case O_IDLE:
            if (cli__count("--idle-timeout", optarg, 1, 86400, &o->idle_timeout) < 0)
                return -1;
            break;
        case O_METRICS:
            if (optarg[0] != '/') {
                fprintf(stderr, "fasterapi: --metrics: expected a path starting with '/', got '%s'\n", optarg);
                return -1;
            }
            o->metrics_path = optarg;
            break;
        case O_ACCESS_LOG: o->access_log = optarg; break;
        case O_INTERFACE:
            if (strcmp(optarg, "auto") && strcmp(optarg, "native") && strcmp(optarg, "wsgi") &&
                strcmp(optarg, "asgi")) {
                fprintf(stderr, "fasterapi: --interface: expected auto, native, wsgi or asgi, got '%s'\n", optarg);
                return -1;
            }
            o->interface = optarg;
            break;
        case O_ROOT_PATH:
            if (optarg[0] != '\0' && (optarg[0] != '/' || optarg[strlen(optarg) - 1] == '/')) {
                fprintf(stderr, "fasterapi: --root-path: expected a path like /api (a leading '/', "
                                "no trailing '/'), got '%s'\n", optarg);
                return -1;
            }
            o->root_path = optarg;
            break;
        case O_PY_CONCURRENCY:
            if (cli__count("--py-concurrency", optarg, 1, 65535, &o->py_concurrency) < 0)
                return -1;
            break;
        case O_PY_THREADS:
            if (cli__count("--py-threads", optarg, 0, 1024, &o->py_threads) < 0)
                return -1;
            break;
        case O_ACCESS_FMT:
            if (strcmp(optarg, "combined") == 0) {
                o->wcfg.access_log_json = 0;
            } else if (strcmp(optarg, "json") == 0) {
                o->wcfg.access_log_json = 1;
            } else {
                fprintf(stderr, "fasterapi: --access-log-format: expected combined or json, got '%s'\n", optarg);
                return -1;
            }
            break;
        case O_LOG_LEVEL: {
            static const char *const levels[] = {"error", "warning", "info", "debug"};
            int found = -1;
            for (int i = 0; i < 4; i++)
                if (strcmp(optarg, levels[i]) == 0)
                    found = i;
            if (found < 0) {
                fprintf(stderr, "fasterapi: --log-level: expected error, warning, info or debug, got '%s'\n", optarg);
                return -1;
            }
            o->wcfg.log_level = found;
            break;
        }
        case O_MAX_PY:
            if (cli__count("--max-py-workers", optarg, 1, FA_MAX_PY_WORKERS, &o->max_py_workers) < 0)
                return -1;
            max_py_set = true;
            break;
        case O_NAME: o->name = optarg; break;
        case O_MAX_BODY:
            if (cli__size("--max-body", optarg, 0, 1ull << 30, &v64) < 0)
                return -1;
            o->wcfg.limits.max_body = v64;
            break;
        case O_MAX_HEADER:
            if (cli__size("--max-header-bytes", optarg, 1024, 1024 * 1024, &v64) < 0)
                return -1;
            o->wcfg.limits.max_header_bytes = (uint32_t)v64;
            break;
        case O_GRACEFUL:
            if (cli__count("--graceful-timeout", optarg, 0, 3600, &o->wcfg.graceful_timeout) < 0)
                return -1;
            break;
        case O_HELP: o->cmd = FA_CMD_HELP; return 0;
        case O_VERSION: o->cmd = FA_CMD_VERSION; return 0;
        case ':':
            fprintf(stderr, "fasterapi: %s needs a value (see fasterapi --help)\n", argv[optind - 1]);
            return -1;
        default:
            fprintf(stderr, "fasterapi: unknown option '%s' (see fasterapi --help)\n", argv[optind - 1]);
            return -1;
        }
    }
    char *cause = NULL;
    if (fa_seg_name_check(o->name, &cause) < 0) {
        fprintf(stderr, "fasterapi: --name: %s\n", cause);
        free(cause);
        return -1;
    }
    if (o->cmd != FA_CMD_RUN) {
        if (optind < argc) {
            fprintf(stderr, "fasterapi: %s takes no argument '%s' (use --name NAME)\n", cmd, argv[optind]);
            return -1;
        }
        if (o->cmd == FA_CMD_SCALE && !py_set) {
            fprintf(stderr, "fasterapi: scale needs --py-workers N\n");
            return -1;
        }
        return 0;
    }
    if (optind >= argc) {
        fprintf(stderr, "fasterapi: run needs the app to serve, as MODULE:ATTR (e.g. fasterapi run examples.hello:app)\n");
        return -1;
    }
    o->app = argv[optind++];
    if (optind < argc) {
        fprintf(stderr, "fasterapi: unexpected argument '%s' after the app (options go before or after MODULE:ATTR, one app only)\n", argv[optind]);
        return -1;
    }
    const char *colon = strchr(o->app, ':');
    if (colon == NULL || colon == o->app || colon[1] == '\0') {
        fprintf(stderr, "fasterapi: the app must be given as MODULE:ATTR (e.g. examples.hello:app), got '%s'\n", o->app);
        return -1;
    }
    if (!max_py_set) {
        /* Room for a reload (new workers beside the old) and for scaling. */
        uint32_t m = (uint32_t)(2 * ncpu);
        o->max_py_workers = 2 * o->py_workers > m ? 2 * o->py_workers : m;
        if (o->max_py_workers > FA_MAX_PY_WORKERS)
            o->max_py_workers = FA_MAX_PY_WORKERS;
    }
    if (o->py_workers > o->max_py_workers) {
        fprintf(stderr, "fasterapi: --py-workers %u is more than --max-py-workers %u\n", o->py_workers, o->max_py_workers);
        return -1;
    }
    char *abs = realpath(app_dir, NULL);
    if (abs == NULL) {
        fprintf(stderr, "fasterapi: --app-dir %s: %s\n", app_dir, strerror(errno));
        return -1;
    }
    o->app_dir = abs;
    /* The parser's body limit decides 413; keep it within what fits the arena. */
    return 0;
}
