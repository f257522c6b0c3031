/* status.c - the client subcommands: status, scale, stop, reload. They
 * attach to the running server's segment to find its master. */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "master/cli.h"
#include "master/supervise.h"
#include "shm/segment.h"

static const char *status__state(uint32_t s)
{
    static const char *const names[] = {"empty", "starting", "ready", "draining", "dead"};
    return s < sizeof names / sizeof *names ? names[s] : "?";
}

static int status__attach(const struct fa_options *o, struct fa_seg *seg, int writable, pid_t *master)
{
    char *cause = NULL;
    if (fa_seg_attach(seg, o->name, writable, &cause) < 0) {
        fprintf(stderr, "fasterapi: %s\n", cause);
        free(cause);
        return -1;
    }
    *master = atomic_load(&seg->hdr->master_pid);
    if (*master <= 0 || kill(*master, 0) < 0) {
        fprintf(stderr, "fasterapi: the server '%s' is not running (its master pid %d is gone; "
                        "the segment /dev/shm/fasterapi.%s is stale)\n", o->name, (int)*master, o->name);
        fa_seg_detach(seg);
        return -1;
    }
    return 0;
}

int fa_cmd_status(const struct fa_options *o)
{
    struct fa_seg seg;
    pid_t master;
    if (status__attach(o, &seg, 0, &master) < 0)
        return 1;
    const struct fa_seg_header_sh *h = seg.hdr;
    uint32_t live_http = 0;
    for (uint32_t i = 0; i < h->n_http; i++)
        live_http += atomic_load(&fa_seg_http_slot(&seg, i)->pid) > 0;
    printf("server '%s': master pid %d, %u HTTP worker%s, %u Python worker%s wanted (%u slots), app version %u\n",
           o->name, (int)master, live_http, live_http == 1 ? "" : "s", atomic_load(&seg.hdr->py_target),
           atomic_load(&seg.hdr->py_target) == 1 ? "" : "s", h->max_py, atomic_load(&seg.hdr->app_version));
    printf("%-6s %4s %8s %-9s %5s %10s %9s\n", "kind", "slot", "pid", "state", "gen", "requests", "in-flight");
    for (uint32_t i = 0; i < h->n_http; i++) {
        struct fa_slot_sh *s = fa_seg_http_slot(&seg, i);
        if (atomic_load(&s->state) == FA_SLOT_EMPTY && atomic_load(&s->pid) == 0)
            continue;
        printf("%-6s %4u %8d %-9s %5s %10llu %9s\n", "http", i, (int)atomic_load(&s->pid),
               status__state(atomic_load(&s->state)), "-",
               (unsigned long long)atomic_load(&s->stats.requests), "-");
    }
    for (uint32_t i = 0; i < h->max_py; i++) {
        struct fa_slot_sh *s = fa_seg_py_slot(&seg, i);
        uint32_t st = atomic_load(&s->state);
        if (st == FA_SLOT_EMPTY && atomic_load(&s->stats.requests) == 0)
            continue;
        printf("%-6s %4u %8d %-9s %5u %10llu %9u\n", "python", i, (int)atomic_load(&s->pid),
               status__state(st), atomic_load(&s->gen), (unsigned long long)atomic_load(&s->stats.requests),
               fa_seg_py_in_flight(&seg, i));
    }
    fa_seg_detach(&seg);
    return 0;
}

int fa_cmd_scale(const struct fa_options *o)
{
    struct fa_seg seg;
    pid_t master;
    if (status__attach(o, &seg, 1, &master) < 0)
        return 1;
    uint32_t max = seg.hdr->max_py;
    if (o->py_workers > max) {
        fprintf(stderr, "fasterapi: scale: --py-workers %u is more than the server's --max-py-workers %u\n",
                o->py_workers, max);
        fa_seg_detach(&seg);
        return 1;
    }
    atomic_store(&seg.hdr->scale_request, o->py_workers);
    fa_seg_detach(&seg);
    if (kill(master, SIGUSR2) < 0) {
        fprintf(stderr, "fasterapi: cannot signal the master (pid %d): %s\n", (int)master, strerror(errno));
        return 1;
    }
    fprintf(stderr, "fasterapi: asked the server '%s' for %u Python worker%s\n", o->name, o->py_workers,
            o->py_workers == 1 ? "" : "s");
    return 0;
}

int fa_cmd_signal(const struct fa_options *o, int sig, const char *what)
{
    struct fa_seg seg;
    pid_t master;
    if (status__attach(o, &seg, 0, &master) < 0)
        return 1;
    fa_seg_detach(&seg);
    if (kill(master, sig) < 0) {
        fprintf(stderr, "fasterapi: cannot signal the server '%s' (pid %d): %s\n", o->name, (int)master,
                strerror(errno));
        return 1;
    }
    fprintf(stderr, "fasterapi: sent %s to the server '%s' (pid %d)\n", what, o->name, (int)master);
    return 0;
}
