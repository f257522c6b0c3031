/* main.c - fasterapi: parse the command line, load the route table, create
 * the segment and the listening socket, then supervise (supervise.c). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "master/cli.h"
#include "master/describe.h"
#include "master/supervise.h"
#include "shm/doorbell.h"
#include "worker/util.h"

/* Chunks per arena: room for many small in-flight messages and for a few
 * bodies of the largest size, whichever is more. */
static uint32_t main__chunks_per_arena(uint64_t max_body, uint32_t chunk_size)
{
    uint64_t big = (max_body + 64 * 1024) / chunk_size + 1;
    uint64_t n = 4 * big;
    if (n < 1024)
        n = 1024;
    if (n > 1u << 20)
        n = 1u << 20;
    return (uint32_t)n;
}

/* unix:PATH -> a listening Unix socket (a stale socket file is replaced,
 * anything else at PATH is refused). */
static int main__listen_unix(const char *addr, char **cause)
{
    const char *path = addr + 5;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (*path == '\0' || strlen(path) >= sizeof sa.sun_path) {
        fa_xasprintf(cause, "--bind %s: expected unix:PATH with PATH shorter than %zu bytes", addr,
                     sizeof sa.sun_path);
        return -1;
    }
    strcpy(sa.sun_path, path);
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            fa_xasprintf(cause, "--bind %s: %s exists and is not a socket", addr, path);
            return -1;
        }
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof sa) == 0) {
            close(probe);
            fa_xasprintf(cause, "--bind %s: a server is listening there already", addr);
            return -1;
        }
        if (probe >= 0)
            close(probe);
        unlink(path);    /* left by a server that is gone */
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 4096) < 0) {
        fa_xasprintf(cause, "cannot listen on %s: %s", addr, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/* HOST:PORT or [V6]:PORT -> a listening, non-blocking socket. */
static int main__listen(const char *addr, char **cause)
{
    if (strncmp(addr, "unix:", 5) == 0)
        return main__listen_unix(addr, cause);
    char host[256];
    const char *port;
    const char *s = addr;
    const char *colon = strrchr(s, ':');
    if (colon == NULL || colon[1] == '\0') {
        fa_xasprintf(cause, "--bind: expected HOST:PORT (e.g. 127.0.0.1:8000), got '%s'", addr);
        return -1;
    }
    size_t hl = (size_t)(colon - s);
    if (hl >= 2 && s[0] == '[' && s[hl - 1] == ']') {
        s++;
        hl -= 2;
    }
    if (hl >= sizeof host) {
        fa_xasprintf(cause, "--bind: host name too long in '%s'", addr);
        return -1;
    }
    memcpy(host, s, hl);
    host[hl] = '\0';
    port = colon + 1;

    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *res;
    int rc = getaddrinfo(hl ? host : NULL, port, &hints, &res);
    if (rc != 0) {
        fa_xasprintf(cause, "--bind %s: %s", addr, gai_strerror(rc));
        return -1;
    }
    int fd = -1, err = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 4096) == 0)
            break;
        err = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        fa_xasprintf(cause, "cannot listen on %s: %s%s", addr, strerror(err),
                     err == EADDRINUSE ? " (another server uses this port: pick another with --bind)" : "");
    return fd;
}

int main(int argc, char **argv)
{
    struct fa_options o;
    struct fa_master m;
    char *cause = NULL;
    char *table = NULL;
    size_t table_len = 0;
    int rc = 1;
    bool seg_made = false;

    setvbuf(stderr, NULL, _IOLBF, 0);
    if (fa_cli_parse(argc, argv, &o) < 0)
        return 64;
    if (o.cmd == FA_CMD_HELP) {
        fa_cli_usage(stdout);
        return 0;
    }
    if (o.cmd == FA_CMD_VERSION) {
        puts(PACKAGE_STRING);
        return 0;
    }
    if (o.cmd == FA_CMD_STOP)
        return fa_cmd_signal(&o, SIGTERM, "SIGTERM");
    if (o.cmd == FA_CMD_RELOAD)
        return fa_cmd_signal(&o, SIGHUP, "SIGHUP (reload)");
    if (o.cmd == FA_CMD_STATUS)
        return fa_cmd_status(&o);
    if (o.cmd == FA_CMD_SCALE)
        return fa_cmd_scale(&o);

    memset(&m, 0, sizeof m);
    m.o = &o;
    m.listen_fd = -1;
    m.shm_fd = -1;

    /* Block what the master waits for before any child exists: children
     * inherit the mask and unblock it themselves. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGTTIN);
    sigaddset(&set, SIGTTOU);
    sigaddset(&set, SIGUSR2);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (o.access_log) {
        if (strcmp(o.access_log, "-") == 0) {
            o.wcfg.access_log_fd = STDOUT_FILENO;
        } else {
            o.wcfg.access_log_fd = open(o.access_log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
            if (o.wcfg.access_log_fd < 0) {
                fa_xasprintf(&cause, "--access-log %s: %s", o.access_log, strerror(errno));
                goto bail;
            }
        }
    }
    /* The Python side reads these when it loads the app (describe and serve,
     * also after a reload): pyworker/fasterapi/_boot.py. */
    setenv("FASTERAPI_INTERFACE", o.interface, 1);
    setenv("FASTERAPI_ROOT_PATH", o.root_path, 1);
    /* Read by the pyworker's serve loop (pyworker/serve.c: --py-concurrency,
     * the deferred-request timeout) and by fasterapi/aio.py (--py-threads). */
    char num[16];
    snprintf(num, sizeof num, "%u", o.py_concurrency);
    setenv("FASTERAPI_PY_CONCURRENCY", num, 1);
    snprintf(num, sizeof num, "%u", o.py_threads);
    setenv("FASTERAPI_PY_THREADS", num, 1);
    snprintf(num, sizeof num, "%u", o.wcfg.request_timeout);
    setenv("FASTERAPI_TIMEOUT", num, 1);
    m.pyworker = fa_pyworker_path(&cause);
    if (m.pyworker == NULL)
        goto bail;

    const uint32_t chunk_size = 16384;
    struct fa_seg_params sp = {
        .name = o.name,
        .n_http = 2 * o.workers,    /* spare slots: a reload starts new HTTP workers beside the old */
        .max_py = o.max_py_workers,
        .ring_cap = 1024,
        .chunk_size = chunk_size,
        .chunks_per_arena = main__chunks_per_arena(o.wcfg.limits.max_body, chunk_size),
    };
    if (fa_seg_create(&m.seg, &sp, &cause) < 0)
        goto bail;
    seg_made = true;
    m.shm_fd = shm_open(m.seg.shm_name, O_RDWR, 0);
    if (m.shm_fd < 0) {
        fa_xasprintf(&cause, "cannot reopen %s: %s", m.seg.shm_name, strerror(errno));
        goto bail;
    }

    if (fa_describe(m.pyworker, o.app, o.app_dir, &table, &table_len, &cause) < 0)
        goto bail;
    if (fa_routes_load(&m.routes, table, table_len, &cause) < 0)
        goto bail;
    if (o.metrics_path && fa_routes_add_metrics(&m.routes, o.metrics_path, &cause) < 0)
        goto bail;

    m.listen_fd = main__listen(o.bind, &cause);
    if (m.listen_fd < 0)
        goto bail;

    m.n_http_active = o.workers;
    m.http_efd = fa_xcalloc(2 * o.workers, sizeof *m.http_efd);
    m.py_efd = fa_xcalloc(o.max_py_workers, sizeof *m.py_efd);
    for (uint32_t h = 0; h < 2 * o.workers; h++)
        if ((m.http_efd[h] = fa_doorbell_create()) < 0)
            goto efd_fail;
    for (uint32_t p = 0; p < o.max_py_workers; p++)
        if ((m.py_efd[p] = fa_doorbell_create()) < 0)
            goto efd_fail;

    rc = fa_master_run(&m);
    fa_log("stopped");
    goto out;

efd_fail:
    fa_xasprintf(&cause, "eventfd: %s", strerror(errno));
bail:
    if (cause)
        fprintf(stderr, "fasterapi: %s\n", cause);
    rc = 1;
out:
    free(cause);
    free(table);
    if (m.listen_fd >= 0 && strncmp(o.bind, "unix:", 5) == 0)
        unlink(o.bind + 5);      /* start-up failed after the socket was made */
    if (seg_made) {
        fa_seg_unlink(o.name);
        fa_seg_detach(&m.seg);
    }
    return rc;
}
