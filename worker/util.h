/* util.h - allocation that aborts, messages, time. Shared by master/ and worker/. */
#ifndef FA_WORKER_UTIL_H
#define FA_WORKER_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

void *fa_xmalloc(size_t n);
void *fa_xcalloc(size_t n, size_t size);
void *fa_xrealloc(void *p, size_t n);
char *fa_xstrdup(const char *s);
char *fa_xstrndup(const char *s, size_t n);
/* *out = malloc'd formatted string (aborts on failure). Returns its length. */
int fa_xasprintf(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
__attribute__((warn_unused_result)) void *fa_try_malloc(size_t n);

/* "fasterapi[pid]: message" on stderr. */
void fa_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static inline uint64_t fa_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

#endif
