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
"       fasterapi stop [--name NAME]\n"
"       fasterapi --help | --version\n"
"\n"
"run: serve the FasterAPI app MODULE:ATTR (e.g. examples.hello:app).\n"
"  --app-dir DIR           directory put first on the Python path to import MODULE\n"
"                          (default: the current directory)\n"
"  --bind HOST:PORT        address to listen on (default 127.0.0.1:8000; [::1]:8000 for IPv6)\n"
"  --workers N             HTTP worker processes (default 1)\n"
"  --py-workers M          Python worker processes (default: number of CPUs)\n"
"  --max-py-workers K      Python worker slots in shared memory, the ceiling for scaling\n"
"                          (default: max(M, 2 x CPUs), at most 64)\n"
"  --name NAME             instance name: the segment is /fasterapi.NAME and shm-stat NAME\n"
"                          attaches to it; one live server per name (default: default)\n"
"  --max-body SIZE         largest request body, e.g. 1048576, 512k, 8m (default 1m);\n"
"                          larger requests get 413\n"
"  --max-header-bytes SIZE request line + headers limit (default 16k; over: 431)\n"
"  --graceful-timeout S    seconds to finish in-flight requests on SIGTERM (default 10)\n"
"\n"
"stop: send SIGTERM to the server named NAME (default: default).\n"
"\n"
"Signals to the master: SIGTERM or SIGINT stop gracefully (exit 0).\n",
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
           O_MAX_HEADER, O_GRACEFUL, O_HELP, O_VERSION };
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
    const char *app_dir = ".";
    bool max_py_set = false;

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
    } else {
        fprintf(stderr, "fasterapi: unknown command '%s' (expected run or stop; see fasterapi --help)\n", cmd);
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
        case O_PY_WORKERS:
            if (cli__count("--py-workers", optarg, 1, FA_MAX_PY_WORKERS, &o->py_workers) < 0)
                return -1;
            break;
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
    if (o->cmd == FA_CMD_STOP) {
        if (optind < argc) {
            fprintf(stderr, "fasterapi: stop takes no argument '%s' (use --name NAME)\n", argv[optind]);
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
        uint32_t m = (uint32_t)(2 * ncpu);
        o->max_py_workers = o->py_workers > m ? o->py_workers : m;
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
