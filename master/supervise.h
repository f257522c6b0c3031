/* supervise.h - the master's processes: spawn, reap, restart, stop. */
#ifndef FA_MASTER_SUPERVISE_H
#define FA_MASTER_SUPERVISE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "master/cli.h"
#include "shm/segment.h"
#include "worker/routes.h"

struct fa_proc {
    pid_t pid;               /* 0: not running */
    uint64_t started_ns;
    uint64_t restart_at_ns;  /* 0: no restart scheduled */
    uint32_t quick_deaths;   /* consecutive deaths soon after start */
};

struct fa_master {
    const struct fa_options *o;
    struct fa_seg seg;
    int shm_fd;
    struct fa_routes routes;
    int listen_fd;
    int *http_efd;           /* [n_http] */
    int *py_efd;             /* [max_py] */
    char *pyworker;
    struct fa_proc *http;    /* [n_http] */
    struct fa_proc *py;      /* [max_py] */
    uint32_t py_target;
    bool stopping;
    bool announced;
    int exit_code;
};

/* Forks the HTTP workers, starts the Python workers, supervises until a stop
 * signal; returns the exit code (0 after SIGTERM/SIGINT). Expects SIGCHLD,
 * SIGTERM, SIGINT, SIGHUP blocked. */
int fa_master_run(struct fa_master *m);

#endif
