/* util.c - see util.h */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "worker/util.h"

static void util__oom(size_t n)
{
    fprintf(stderr, "fasterapi[%d]: out of memory (%zu bytes)\n", (int)getpid(), n);
    abort();
}

void *fa_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        util__oom(n);
    return p;
}

void *fa_try_malloc(size_t n)
{
    return malloc(n ? n : 1);
}

void *fa_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL)
        util__oom(n * size);
    return p;
}

void *fa_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL)
        util__oom(n);
    return q;
}

char *fa_xstrdup(const char *s)
{
    return fa_xstrndup(s, strlen(s));
}

char *fa_xstrndup(const char *s, size_t n)
{
    char *p = fa_xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

int fa_xasprintf(char **out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(out, fmt, ap);
    va_end(ap);
    if (n < 0)
        util__oom(0);
    return n;
}

void fa_log(const char *fmt, ...)
{
    char buf[2048];
    int n = snprintf(buf, sizeof buf, "fasterapi[%d]: ", (int)getpid());
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(buf + n, sizeof buf - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        m = 0;
    size_t len = (size_t)n + ((size_t)m < sizeof buf - (size_t)n - 1 ? (size_t)m : sizeof buf - (size_t)n - 2);
    buf[len++] = '\n';
    /* One write so lines from several processes do not interleave. */
    ssize_t w = write(STDERR_FILENO, buf, len);
    (void)w;
}
