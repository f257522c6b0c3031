/* describe.c - the master never runs Python: it asks fasterapi-pyworker to
 * import the app once and print its route table (DESIGN.md, Route table). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "master/describe.h"
#include "worker/util.h"

char *fa_pyworker_path(char **cause)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *path;
        fa_xasprintf(&path, "%s/fasterapi-pyworker", dirname(exe));
        if (access(path, X_OK) == 0)
            return path;
        free(path);
    }
    char *path = fa_xstrdup(FA_BINDIR "/fasterapi-pyworker");
    if (access(path, X_OK) == 0)
        return path;
    fa_xasprintf(cause, "cannot find fasterapi-pyworker beside %s nor in %s (is it built? run make)",
                 n > 0 ? exe : "this program", FA_BINDIR);
    free(path);
    return NULL;
}

int fa_describe(const char *pyworker, const char *app, const char *app_dir,
                char **out, size_t *len, char **cause)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0) {
        fa_xasprintf(cause, "pipe: %s", strerror(errno));
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        fa_xasprintf(cause, "fork: %s", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        dup2(fds[1], STDOUT_FILENO);
        execl(pyworker, pyworker, "--describe", "--app", app, "--app-dir", app_dir, (char *)NULL);
        fprintf(stderr, "fasterapi: cannot execute %s: %s\n", pyworker, strerror(errno));
        _exit(127);
    }
    close(fds[1]);
    size_t cap = 4096, used = 0;
    char *buf = fa_xmalloc(cap);
    for (;;) {
        if (used == cap)
            buf = fa_xrealloc(buf, cap *= 2);
        ssize_t r = read(fds[0], buf + used, cap - used);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        used += (size_t)r;
    }
    close(fds[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        if (WIFEXITED(status))
            fa_xasprintf(cause, "cannot load the app '%s' from %s (the error is above; exit status %d)",
                         app, app_dir, WEXITSTATUS(status));
        else
            fa_xasprintf(cause, "cannot load the app '%s': fasterapi-pyworker was killed by signal %d",
                         app, WTERMSIG(status));
        free(buf);
        return -1;
    }
    *out = buf;
    *len = used;
    return 0;
}
