/* describe.h - load the route table by running the pyworker in describe mode. */
#ifndef FA_MASTER_DESCRIBE_H
#define FA_MASTER_DESCRIBE_H

#include <stddef.h>

/* Path of fasterapi-pyworker: beside this executable, else the install bindir.
 * Returns a malloc'd path, or NULL with *cause. */
char *fa_pyworker_path(char **cause);

/* Runs `pyworker --describe --app APP --app-dir DIR`; its stderr (a traceback)
 * goes to ours. On success *out (malloc'd) holds the msgpack route table. */
int fa_describe(const char *pyworker, const char *app, const char *app_dir,
                char **out, size_t *len, char **cause);

#endif
