/* files.c - app.mount_static and FileResponse (see files.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#if defined(__has_include)
#if __has_include(<linux/openat2.h>)
#include <linux/openat2.h>
#endif
#endif

#include "worker/files.h"
#include "worker/respond.h"
#include "worker/router.h"
#include "worker/util.h"

#ifndef RESOLVE_BENEATH
#define RESOLVE_NO_MAGICLINKS 0x02
#define RESOLVE_BENEATH 0x08
struct open_how {
    uint64_t flags, mode, resolve;
};
#endif
#ifndef SYS_openat2
#define SYS_openat2 437
#endif

/* ---- Content-Type by extension --------------------------------------------- */

static const char *const files__builtin[][2] = {
    {"html", "text/html; charset=utf-8"}, {"htm", "text/html; charset=utf-8"},
    {"css", "text/css; charset=utf-8"}, {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"}, {"json", "application/json"},
    {"map", "application/json"}, {"txt", "text/plain; charset=utf-8"},
    {"md", "text/markdown; charset=utf-8"}, {"csv", "text/csv; charset=utf-8"},
    {"xml", "application/xml"}, {"svg", "image/svg+xml"}, {"png", "image/png"},
    {"jpg", "image/jpeg"}, {"jpeg", "image/jpeg"}, {"gif", "image/gif"},
    {"webp", "image/webp"}, {"avif", "image/avif"}, {"ico", "image/x-icon"},
    {"woff", "font/woff"}, {"woff2", "font/woff2"}, {"ttf", "font/ttf"}, {"otf", "font/otf"},
    {"pdf", "application/pdf"}, {"wasm", "application/wasm"}, {"zip", "application/zip"},
    {"gz", "application/gzip"}, {"tar", "application/x-tar"}, {"mp4", "video/mp4"},
    {"webm", "video/webm"}, {"mp3", "audio/mpeg"}, {"ogg", "audio/ogg"}, {"wav", "audio/wav"},
    {"webmanifest", "application/manifest+json"},
};

#define MIME_SLOTS 4096   /* power of two, well above /etc/mime.types' ~1300 extensions */

struct files_mime {
    char *ext;            /* lower case */
    char *type;
};

static struct files_mime *files__mime;   /* [MIME_SLOTS], built once per process */

static uint32_t files__hash(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        h = (h ^ (c >= 'A' && c <= 'Z' ? c + 32 : c)) * 16777619u;
    }
    return h;
}

/* The slot of ext, empty or holding it. */
static struct files_mime *files__slot(const char *ext, size_t n)
{
    uint32_t i = files__hash(ext, n) & (MIME_SLOTS - 1);
    for (;;) {
        struct files_mime *e = &files__mime[i];
        if (e->ext == NULL || (strlen(e->ext) == n && strncasecmp(e->ext, ext, n) == 0))
            return e;
        i = (i + 1) & (MIME_SLOTS - 1);
    }
}

static uint32_t files__n_mime;

static void files__mime_add(const char *ext, size_t n, const char *type, size_t tn)
{
    if (n == 0 || n > 32 || files__n_mime >= MIME_SLOTS / 2)
        return;
    struct files_mime *e = files__slot(ext, n);
    if (e->ext)
        return;   /* the first entry wins: built-in, then mime.types order */
    e->ext = fa_xstrndup(ext, n);
    for (char *p = e->ext; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p += 32;
    e->type = fa_xstrndup(type, tn);
    files__n_mime++;
}

static void files__mime_load(void)
{
    if (files__mime)
        return;
    files__mime = fa_xcalloc(MIME_SLOTS, sizeof *files__mime);
    for (size_t i = 0; i < sizeof files__builtin / sizeof *files__builtin; i++)
        files__mime_add(files__builtin[i][0], strlen(files__builtin[i][0]), files__builtin[i][1],
                        strlen(files__builtin[i][1]));
    FILE *f = fopen("/etc/mime.types", "re");
    if (f == NULL)
        return;
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        char *save = NULL;
        char *type = strtok_r(line, " \t\r\n", &save);
        if (type == NULL || type[0] == '#' || !strchr(type, '/') ||
            !fa_respond_value_ok(type, strlen(type)))
            continue;
        for (char *ext; (ext = strtok_r(NULL, " \t\r\n", &save)) != NULL;)
            files__mime_add(ext, strlen(ext), type, strlen(type));
    }
    fclose(f);
}

const char *fa_files_content_type(const char *name, size_t len)
{
    const char *slash = memrchr(name, '/', len);
    const char *base = slash ? slash + 1 : name;
    const char *dot = memrchr(base, '.', len - (size_t)(base - name));
    files__mime_load();
    if (dot && dot + 1 < name + len) {
        struct files_mime *e = files__slot(dot + 1, (size_t)(name + len - dot - 1));
        if (e->ext)
            return e->type;
    }
    return "application/octet-stream";
}

/* ---- the directory ------------------------------------------------------------ */

struct fa_files *fa_files_open(const char *route, const char *directory, size_t len, char **cause)
{
    char *dir = fa_xstrndup(directory, len);
    char *real = NULL;
    int fd = -1;
    struct stat st;

    if (dir[0] != '/' || strlen(dir) != len) {
        fa_xasprintf(cause, "route %s (files): directory '%s' must be an absolute path", route, dir);
        goto bail;
    }
    fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) < 0) {
        fa_xasprintf(cause, "route %s (files): cannot open directory '%s': %s", route, dir,
                     strerror(errno));
        goto bail;
    }
    real = realpath(dir, NULL);
    if (real == NULL) {
        fa_xasprintf(cause, "route %s (files): directory '%s': %s", route, dir, strerror(errno));
        goto bail;
    }
    files__mime_load();
    struct fa_files *f = fa_xcalloc(1, sizeof *f);
    f->directory = dir;
    f->real = real;
    f->real_len = strlen(real);
    f->dirfd = fd;
    return f;
bail:
    if (fd >= 0)
        close(fd);
    free(real);
    free(dir);
    return NULL;
}

void fa_files_close(struct fa_files *f)
{
    if (!f)
        return;
    close(f->dirfd);
    free(f->directory);
    free(f->real);
    free(f);
}

/* ---- paths -------------------------------------------------------------------- */

static int files__hex(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* 1 if [s, s + n) has a segment that is exactly "..". */
static int files__dotdot(const char *s, size_t n)
{
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || s[i] == '/') {
            if (i - start == 2 && s[start] == '.' && s[start + 1] == '.')
                return 1;
            start = i + 1;
        }
    }
    return 0;
}

/* The raw rest of the path -> a relative file name in out (NUL-terminated).
 * Returns 0, or the status to answer: 400 for a bad escape, 404 for what
 * could leave the directory or name nothing. */
static int files__name(const char *raw, size_t n, char *out, size_t size)
{
    size_t o = 0;

    if (files__dotdot(raw, n))
        return 404;
    for (size_t i = 0; i < n; i++) {
        char c = raw[i];
        if (c == '%') {
            int hi, lo;
            if (i + 2 >= n || (hi = files__hex((unsigned char)raw[i + 1])) < 0 ||
                (lo = files__hex((unsigned char)raw[i + 2])) < 0)
                return 400;
            c = (char)(hi << 4 | lo);
            i += 2;
        }
        if (c == '\0' || c == '\\')
            return 404;
        if (o + 1 >= size)
            return 404;
        out[o++] = c;
    }
    out[o] = '\0';
    if (o == 0 || out[0] == '/' || files__dotdot(out, o))
        return 404;
    return 0;
}

int fa_files_openat2 = -1;

/* Opens name below f's directory without leaving it. Returns the fd, or -1
 * with errno (EXDEV or ELOOP for a way out). */
static int files__open_beneath(const struct fa_files *f, const char *name)
{
    int flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY;

    if (fa_files_openat2 != 0) {
        struct open_how how = {.flags = (uint64_t)flags,
                               .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS};
        long fd = syscall(SYS_openat2, f->dirfd, name, &how, sizeof how);
        if (fd >= 0 || (errno != ENOSYS && errno != EPERM)) {
            fa_files_openat2 = 1;
            return (int)fd;
        }
        /* ENOSYS: an older kernel; EPERM: a seccomp filter that refuses it. */
        if (fa_files_openat2 == 1)
            return -1;
        fa_files_openat2 = 0;
    }
    int fd = openat(f->dirfd, name, flags);
    if (fd < 0)
        return -1;
    char link[64], real[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, real, sizeof real - 1);
    if (n < 0) {
        /* No /proc: check the name's real path instead (racy, but /proc-less
         * systems without openat2 are rare). */
        char *joined, *rp;
        fa_xasprintf(&joined, "%s/%s", f->real, name);
        rp = realpath(joined, NULL);
        free(joined);
        n = rp ? (ssize_t)strlen(rp) : -1;
        if (rp && (size_t)n < sizeof real)
            memcpy(real, rp, (size_t)n);
        else
            n = -1;
        free(rp);
    }
    if (n < 0 || (size_t)n <= f->real_len || memcmp(real, f->real, f->real_len) != 0 ||
        (f->real_len > 1 && real[f->real_len] != '/')) {
        close(fd);
        errno = EXDEV;
        return -1;
    }
    return fd;
}

/* ---- validators --------------------------------------------------------------- */

static size_t files__etag(const struct stat *st, char *buf, size_t size)
{
    uint64_t mt = (uint64_t)st->st_mtim.tv_sec * 1000000000u + (uint64_t)st->st_mtim.tv_nsec;
    return (size_t)snprintf(buf, size, "\"%llx-%llx\"", (unsigned long long)mt,
                            (unsigned long long)st->st_size);
}

static size_t files__http_date(time_t t, char *buf, size_t size)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    return strftime(buf, size, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

/* An HTTP-date (IMF-fixdate, RFC 850 or asctime form) -> time, or -1. */
static time_t files__parse_date(const char *s, size_t n)
{
    static const char *const formats[] = {"%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT",
                                          "%a %b %e %H:%M:%S %Y"};
    char buf[64];
    if (n >= sizeof buf)
        return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    for (size_t i = 0; i < sizeof formats / sizeof *formats; i++) {
        struct tm tm;
        memset(&tm, 0, sizeof tm);
        const char *end = strptime(buf, formats[i], &tm);
        if (end && *end == '\0')
            return timegm(&tm);
    }
    return -1;
}

/* If-None-Match: a list of entity tags or "*"; weak comparison. */
static bool files__none_match(const char *s, size_t n, const char *etag, size_t elen)
{
    size_t i = 0;
    while (i < n) {
        while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == ','))
            i++;
        if (i >= n)
            break;
        if (s[i] == '*')
            return true;
        if (n - i >= 2 && s[i] == 'W' && s[i + 1] == '/')
            i += 2;
        size_t start = i;
        if (i < n && s[i] == '"') {
            const char *q = memchr(s + i + 1, '"', n - i - 1);
            if (q == NULL)
                return false;
            i = (size_t)(q - s) + 1;
        } else {
            while (i < n && s[i] != ',')
                i++;
        }
        if (i - start == elen && memcmp(s + start, etag, elen) == 0)
            return true;
    }
    return false;
}

/* The header `name` (lower case) of req, or NULL. */
static const struct fa_http_header *files__header(const struct fa_http_req *req, const char *name)
{
    size_t n = strlen(name);
    for (uint32_t i = 0; i < req->n_headers; i++)
        if (req->headers[i].name_len == n && memcmp(req->headers[i].name, name, n) == 0)
            return &req->headers[i];
    return NULL;
}

enum { RANGE_NONE, RANGE_OK, RANGE_UNSATISFIABLE };

/* Range: bytes=a-b | a- | -n, one range only (a list is ignored: the whole
 * file is sent, which RFC 9110 14.2 allows, as it does for a header it
 * cannot parse). */
static int files__range(const char *s, size_t n, uint64_t size, uint64_t *off, uint64_t *len)
{
    uint64_t a = 0, b = 0;
    size_t i = 6;
    bool have_a = false, have_b = false;

    if (n < 7 || strncasecmp(s, "bytes=", 6) != 0 || memchr(s, ',', n))
        return RANGE_NONE;
    while (i < n && (s[i] == ' ' || s[i] == '\t'))
        i++;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++, have_a = true) {
        if (a > (UINT64_MAX - 9) / 10)
            return RANGE_NONE;
        a = a * 10 + (uint64_t)(s[i] - '0');
    }
    if (i >= n || s[i] != '-')
        return RANGE_NONE;
    for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++, have_b = true) {
        if (b > (UINT64_MAX - 9) / 10)
            b = UINT64_MAX / 10;   /* larger than any file: clamped below */
        else
            b = b * 10 + (uint64_t)(s[i] - '0');
    }
    while (i < n && (s[i] == ' ' || s[i] == '\t'))
        i++;
    if (i != n || (!have_a && !have_b))
        return RANGE_NONE;
    if (!have_a) {                          /* -n: the last n bytes */
        if (b == 0 || size == 0)
            return RANGE_UNSATISFIABLE;
        *len = b < size ? b : size;
        *off = size - *len;
        return RANGE_OK;
    }
    if (have_b && b < a)
        return RANGE_NONE;                  /* invalid: ignored */
    if (a >= size)
        return RANGE_UNSATISFIABLE;
    if (!have_b || b >= size)
        b = size - 1;
    *off = a;
    *len = b - a + 1;
    return RANGE_OK;
}

/* If-Range: the Range applies only if the tag (strong comparison) or the
 * date (exact) is still the file's. */
static bool files__if_range(const struct fa_http_header *h, const char *etag, size_t elen,
                            time_t mtime)
{
    if (h->value_len && (h->value[0] == '"' || h->value[0] == 'W'))
        return h->value_len == elen && memcmp(h->value, etag, elen) == 0;
    time_t t = files__parse_date(h->value, h->value_len);
    return t != (time_t)-1 && t == mtime;
}

/* ---- answering ------------------------------------------------------------------ */

static void files__add_header(struct fa_resp *r, const char *name, const char *value, size_t n)
{
    fa_resp_append(r, name, strlen(name));
    fa_resp_append(r, ": ", 2);
    fa_resp_append(r, value, n);
    fa_resp_append(r, "\r\n", 2);
}

static int files__errno_status(int err)
{
    switch (err) {
    case EACCES:
    case EPERM:
        return 403;
    case EMFILE:
    case ENFILE:
    case ENOMEM:
        return 503;
    default:
        return 404;
    }
}

void fa_files_respond(struct fa_worker *w, struct fa_resp *r, const struct fa_route *rt,
                      const struct fa_http_req *req, const struct fa_match *m)
{
    char name[PATH_MAX];
    struct stat st;
    int status = files__name(m->params[0].p, m->params[0].len, name, sizeof name);
    int fd = -1;

    if (status)
        goto fail;
    fd = files__open_beneath(rt->files, name);
    if (fd < 0) {
        status = files__errno_status(errno);
        if (status == 503)
            fa_log("route %s: cannot open a file: %s", rt->name, strerror(errno));
        goto fail;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        status = 404;
        goto fail;
    }

    char etag[64], lm[40], cr[96];
    size_t elen = files__etag(&st, etag, sizeof etag);
    size_t lmlen = files__http_date(st.st_mtim.tv_sec, lm, sizeof lm);
    const struct fa_http_header *inm = files__header(req, "if-none-match");
    const struct fa_http_header *ims = files__header(req, "if-modified-since");
    bool not_modified = false;
    if (inm) {
        not_modified = files__none_match(inm->value, inm->value_len, etag, elen);
    } else if (ims) {
        time_t t = files__parse_date(ims->value, ims->value_len);
        not_modified = t != (time_t)-1 && st.st_mtim.tv_sec <= t;
    }
    if (not_modified) {
        close(fd);
        r->hlen = 0;
        fa_respond_head(w, r, 304, 0);
        files__add_header(r, "ETag", etag, elen);
        files__add_header(r, "Last-Modified", lm, lmlen);
        fa_resp_append(r, "\r\n", 2);
        r->niov = 0;
        r->total = r->hlen;
        r->sent = 0;
        r->state = FA_RESP_READY;
        return;
    }

    uint64_t size = (uint64_t)st.st_size, off = 0, len = size;
    int code = 200;
    const struct fa_http_header *range = files__header(req, "range");
    const struct fa_http_header *if_range = files__header(req, "if-range");
    if (range && (!if_range || files__if_range(if_range, etag, elen, st.st_mtim.tv_sec))) {
        int rc = files__range(range->value, range->value_len, size, &off, &len);
        if (rc == RANGE_UNSATISFIABLE) {
            close(fd);
            snprintf(cr, sizeof cr, "Content-Range: bytes */%llu\r\n", (unsigned long long)size);
            fa_respond_error(w, r, 416, cr);
            return;
        }
        if (rc == RANGE_OK)
            code = 206;
        else
            off = 0, len = size;
    }

    const char *ctype = fa_files_content_type(name, strlen(name));
    r->hlen = 0;
    fa_respond_head(w, r, code, len);
    files__add_header(r, "Content-Type", ctype, strlen(ctype));
    files__add_header(r, "ETag", etag, elen);
    files__add_header(r, "Last-Modified", lm, lmlen);
    fa_resp_append(r, "Accept-Ranges: bytes\r\n", 22);
    if (code == 206) {
        int n = snprintf(cr, sizeof cr, "bytes %llu-%llu/%llu", (unsigned long long)off,
                         (unsigned long long)(off + len - 1), (unsigned long long)size);
        files__add_header(r, "Content-Range", cr, (size_t)n);
    }
    fa_resp_append(r, "\r\n", 2);
    r->niov = 0;
    r->total = r->hlen;
    if (r->head_only || len == 0) {
        close(fd);
    } else {
        r->file = true;
        r->file_fd = fd;
        r->file_off = off;
        r->file_len = len;
        r->total += len;
    }
    r->sent = 0;
    r->state = FA_RESP_READY;
    return;
fail:
    if (fd >= 0)
        close(fd);
    fa_respond_error(w, r, status, NULL);
}

static const char *files__route_name(const struct fa_worker *w, uint32_t id)
{
    const struct fa_route *rt = w->env && w->env->routes ? fa_routes_get(w->env->routes, id) : NULL;
    return rt ? rt->name : "?";
}

int fa_files_attach(struct fa_worker *w, struct fa_resp *r, const char *path, size_t len,
                    uint64_t *size)
{
    struct stat st;
    char *p = fa_xstrndup(path, len);
    int status = 0;

    if (strlen(p) != len || p[0] != '/') {
        fa_log("route %s: FileResponse %s: not an absolute path: answering 500",
               files__route_name(w, r->route_id), p);
        status = 500;
        goto out;
    }
    int fd = open(p, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
        status = files__errno_status(errno);
        fa_log("route %s: FileResponse %s: %s: answering %d", files__route_name(w, r->route_id), p,
               strerror(errno), status);
        goto out;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        fa_log("route %s: FileResponse %s: not a regular file: answering 404",
               files__route_name(w, r->route_id), p);
        close(fd);
        status = 404;
        goto out;
    }
    fa_files_detach(r);
    r->file = true;
    r->file_fd = fd;
    r->file_off = 0;
    r->file_len = (uint64_t)st.st_size;
    *size = r->file_len;
out:
    free(p);
    return status;
}

void fa_files_detach(struct fa_resp *r)
{
    if (r->file) {
        close(r->file_fd);
        r->file = false;
        r->file_len = 0;
    }
}
