/* files.h - app.mount_static routes: files from a directory, sent with
 * sendfile by the HTTP worker; and the file part of Python FileResponses.
 *
 * Served: regular files only (a directory is 404, no listings), with
 * Content-Type by extension, ETag and Last-Modified, 304 for If-None-Match /
 * If-Modified-Since, one byte range (206, 416, If-Range), HEAD.
 * Never served: anything outside the directory. A ".." segment is refused
 * before and after percent-decoding, so are NUL and a decoded leading '/';
 * the file is opened with openat2(RESOLVE_BENEATH) below the directory, or
 * where the kernel lacks openat2, opened and then checked to lie under the
 * directory's real path, so a symlink that leads outside is refused too.
 */
#ifndef FA_WORKER_FILES_H
#define FA_WORKER_FILES_H

#include <stddef.h>
#include <stdint.h>

#include "worker/worker.h"

struct fa_files {
    char *directory;        /* as given (absolute) */
    char *real;             /* its realpath(), for the check without openat2 */
    size_t real_len;
    int dirfd;              /* O_PATH | O_DIRECTORY, inherited by the workers */
};

/* Opens the directory of route `route` ("GET /static/{path:path}") in the
 * master; also loads the Content-Type table (built in, then
 * /etc/mime.types) so that the workers inherit it. NULL with *cause
 * (malloc'd) naming the route and the directory. */
struct fa_files *fa_files_open(const char *route, const char *directory, size_t len, char **cause);
void fa_files_close(struct fa_files *f);

/* Answers a request matched to a files route (m->params[0] is the raw
 * rest of the path). r is ready on return. */
void fa_files_respond(struct fa_worker *w, struct fa_resp *r, const struct fa_route *rt,
                      const struct fa_http_req *req, const struct fa_match *m);

/* Python FileResponse (the internal response header x-fasterapi-sendfile:
 * /abs/path, from dispatch.c): opens path (len bytes, not NUL-terminated)
 * and makes it r's file part: r->file, r->file_fd, r->file_off = 0,
 * r->file_len = *size = its length. The caller writes the head with
 * Content-Length *size, then adds *size to r->total (or, for HEAD, 204 and
 * 304, calls fa_files_detach). Returns 0, or an HTTP status to answer
 * instead (404: missing or not a regular file, 403: not readable, 500),
 * logged with the path. */
int fa_files_attach(struct fa_worker *w, struct fa_resp *r, const char *path, size_t len,
                    uint64_t *size);
/* Drops r's file part, if any (closes the file). */
void fa_files_detach(struct fa_resp *r);

/* openat2(RESOLVE_BENEATH): -1 not tried yet, 1 in use, 0 the kernel (or
 * a seccomp filter) refuses it: open, then check the path under /proc.
 * Tests set 0 to exercise that second way. */
extern int fa_files_openat2;

/* The Content-Type for a file name, by its extension ("application/
 * octet-stream" if unknown). */
const char *fa_files_content_type(const char *name, size_t len);

#endif
