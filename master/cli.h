/* cli.h - the fasterapi command line. */
#ifndef FA_MASTER_CLI_H
#define FA_MASTER_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include "worker/worker.h"

enum fa_cmd { FA_CMD_RUN = 1, FA_CMD_STOP, FA_CMD_SCALE, FA_CMD_STATUS, FA_CMD_RELOAD, FA_CMD_HELP, FA_CMD_VERSION };

struct fa_options {
    enum fa_cmd cmd;
    const char *app;            /* MODULE:ATTR */
    char *app_dir;              /* absolute */
    const char *bind;           /* HOST:PORT */
    const char *name;
    uint32_t workers;           /* HTTP workers */
    uint32_t py_workers;
    uint32_t max_py_workers;
    uint32_t min_py_workers;    /* --py-workers MIN:MAX: autoscaling between MIN and py_workers */
    bool autoscale;
    uint32_t idle_timeout;      /* seconds before an idle autoscaled worker retires */
    uint32_t max_requests;      /* recycle a Python worker after this many requests (0: never) */
    uint32_t max_requests_jitter;
    uint32_t max_rss_mb;        /* recycle a Python worker above this RSS (0: never) */
    const char *metrics_path;   /* Prometheus text endpoint served in C, or NULL */
    const char *access_log;     /* FILE, "-" for stdout, or NULL */
    const char *interface;      /* auto, native, wsgi or asgi */
    const char *root_path;      /* WSGI SCRIPT_NAME / ASGI root_path prefix */
    uint32_t py_concurrency;    /* deferred requests in flight per Python worker */
    uint32_t py_threads;        /* thread pool for plain def handlers (0: inline) */
    struct fa_worker_config wcfg;
};

/* Parses argv. Returns 0, or -1 after printing a message that names the flag
 * and what it expects (exit code 64 is then right). */
int fa_cli_parse(int argc, char **argv, struct fa_options *o);
void fa_cli_usage(FILE *f);

#endif
