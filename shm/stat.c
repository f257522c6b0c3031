/* stat.c - shm-stat: what a running server's workers and queues are doing.
 *
 *   shm-stat [NAME] [--json]
 *
 * Attaches /dev/shm/fasterapi.NAME read-only (a stray write would fault, it
 * cannot disturb the server) and prints one snapshot: the HTTP worker
 * slots, the Python worker slots (the load board) and totals. Counters are
 * read with relaxed loads while the server runs, so a row is consistent
 * only roughly; that is what a monitor needs.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shm/ring.h"
#include "shm/segment.h"

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)

static void usage(void)
{
    printf(
            "usage: shm-stat [NAME] [--json]\n"
            "\n"
            "Shows the workers, queues and counters of the running FasterAPI server\n"
            "NAME (the --name it was started with; default \"default\"), read from\n"
            "/dev/shm/fasterapi.NAME without changing anything.\n"
            "\n"
            "  --json      print one JSON object instead of tables\n"
            "  -h, --help  show this help\n"
            "\n"
            "Exit status: 0 on success, 1 if the server is not running or the\n"
            "segment cannot be read.\n");
}

static const char *state_name(uint32_t s)
{
    static const char *names[] = { "empty", "starting", "ready", "draining", "dead" };

    return s < sizeof(names) / sizeof(names[0]) ? names[s] : "corrupt";
}

/* One snapshot of a slot, read once so the table and the totals agree. */
struct row {
    uint32_t state, gen, in_flight, depth;
    int32_t pid;
    uint64_t requests, errors, bytes_in, bytes_out, connections, restarts;
};

static void read_row(const struct fa_slot_sh *s, struct row *r)
{
    r->state = LOAD(s->state);
    r->gen = LOAD(s->gen);
    r->pid = LOAD(s->pid);
    r->in_flight = LOAD(s->in_flight);
    r->requests = LOAD(s->stats.requests);
    r->errors = LOAD(s->stats.errors);
    r->bytes_in = LOAD(s->stats.bytes_in);
    r->bytes_out = LOAD(s->stats.bytes_out);
    r->connections = LOAD(s->stats.connections);
    r->restarts = LOAD(s->stats.restarts);
    r->depth = 0;
}

static void add_row(struct row *t, const struct row *r)
{
    t->in_flight += r->in_flight;
    t->depth += r->depth;
    t->requests += r->requests;
    t->errors += r->errors;
    t->bytes_in += r->bytes_in;
    t->bytes_out += r->bytes_out;
    t->connections += r->connections;
    t->restarts += r->restarts;
}

/* Never seen a process: not worth a line in the table. */
static int row_unused(const struct row *r)
{
    return r->state == FA_SLOT_EMPTY && r->pid == 0 && r->gen == 0 && r->requests == 0 &&
           r->restarts == 0 && r->depth == 0;
}

static const char *human_bytes(uint64_t v, char *buf, size_t len)
{
    static const char *unit[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
    double d = (double)v;
    int u = 0;

    while (d >= 1024 && u < 5) {
        d /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(buf, len, "%llu B", (unsigned long long)v);
    else
        snprintf(buf, len, "%.1f %s", d, unit[u]);
    return buf;
}

static const char *human_duration(uint64_t s, char *buf, size_t len)
{
    if (s >= 86400)
        snprintf(buf, len, "%llud %02llu:%02llu:%02llu", (unsigned long long)(s / 86400),
                 (unsigned long long)(s / 3600 % 24), (unsigned long long)(s / 60 % 60),
                 (unsigned long long)(s % 60));
    else
        snprintf(buf, len, "%02llu:%02llu:%02llu", (unsigned long long)(s / 3600),
                 (unsigned long long)(s / 60 % 60), (unsigned long long)(s % 60));
    return buf;
}

/* --- output --- */

/* Header fields are read once: the table, the totals and the loops agree
 * even if the server rewrites them meanwhile. */
struct snap {
    const struct fa_seg *seg;
    const char *name;
    uint64_t uptime;
    uint32_t n_http, max_py;
    struct row *http, *py, http_total, py_total;
};

static void print_table(const struct snap *s)
{
    struct fa_seg_header_sh *h = s->seg->hdr;
    char b1[32], b2[32];
    uint32_t hidden = 0;

    printf("server '%s': master pid %d, up %s%s, segment %s\n", s->name,
           (int)LOAD(h->master_pid), human_duration(s->uptime, b1, sizeof(b1)),
           LOAD(h->stopping) ? ", STOPPING" : "", human_bytes(h->size, b2, sizeof(b2)));
    printf("  %u HTTP workers, %u Python slots (%u wanted), rings of %u descriptors, "
           "%u chunks of %s per worker\n\n", s->n_http, s->max_py, LOAD(h->py_target),
           h->ring_cap, h->chunks_per_arena, human_bytes(h->chunk_size, b1, sizeof(b1)));

    printf("HTTP  %4s %8s %-9s %11s %12s %11s %11s\n", "slot", "pid", "state", "connections",
           "requests", "bytes in", "bytes out");
    for (uint32_t i = 0; i < s->n_http; i++) {
        const struct row *r = &s->http[i];
        printf("      %4u %8d %-9s %11llu %12llu %11s %11s\n", i, (int)r->pid,
               state_name(r->state), (unsigned long long)r->connections,
               (unsigned long long)r->requests, human_bytes(r->bytes_in, b1, sizeof(b1)),
               human_bytes(r->bytes_out, b2, sizeof(b2)));
    }
    printf("      %4s %8s %-9s %11llu %12llu %11s %11s\n\n", "all", "", "",
           (unsigned long long)s->http_total.connections,
           (unsigned long long)s->http_total.requests,
           human_bytes(s->http_total.bytes_in, b1, sizeof(b1)),
           human_bytes(s->http_total.bytes_out, b2, sizeof(b2)));

    printf("PY    %4s %8s %-9s %6s %12s %8s %9s %10s %8s\n", "slot", "pid", "state", "gen",
           "requests", "errors", "in-flight", "ring depth", "restarts");
    for (uint32_t i = 0; i < s->max_py; i++) {
        const struct row *r = &s->py[i];
        if (row_unused(r)) {
            hidden++;
            continue;
        }
        printf("      %4u %8d %-9s %6u %12llu %8llu %9u %10u %8llu\n", i, (int)r->pid,
               state_name(r->state), r->gen, (unsigned long long)r->requests,
               (unsigned long long)r->errors, r->in_flight, r->depth,
               (unsigned long long)r->restarts);
    }
    printf("      %4s %8s %-9s %6s %12llu %8llu %9u %10u %8llu\n", "all", "", "", "",
           (unsigned long long)s->py_total.requests, (unsigned long long)s->py_total.errors,
           s->py_total.in_flight, s->py_total.depth, (unsigned long long)s->py_total.restarts);
    if (hidden)
        printf("      (%u unused Python slot%s not shown)\n", hidden, hidden == 1 ? "" : "s");
}

static void print_json_row(const struct row *r, uint32_t i, int python)
{
    printf("{\"slot\":%u,\"pid\":%d,\"state\":\"%s\"", i, (int)r->pid, state_name(r->state));
    if (python)
        printf(",\"gen\":%u,\"requests\":%llu,\"errors\":%llu,\"in_flight\":%u,"
               "\"ring_depth\":%u,\"restarts\":%llu}", r->gen, (unsigned long long)r->requests,
               (unsigned long long)r->errors, r->in_flight, r->depth,
               (unsigned long long)r->restarts);
    else
        printf(",\"connections\":%llu,\"requests\":%llu,\"bytes_in\":%llu,\"bytes_out\":%llu}",
               (unsigned long long)r->connections, (unsigned long long)r->requests,
               (unsigned long long)r->bytes_in, (unsigned long long)r->bytes_out);
}

/* The name passed fa_seg_name_check: no character needs JSON escaping. */
static void print_json(const struct snap *s)
{
    struct fa_seg_header_sh *h = s->seg->hdr;

    printf("{\"name\":\"%s\",\"master_pid\":%d,\"started_at\":%llu,\"uptime_s\":%llu,"
           "\"stopping\":%s,\"segment_bytes\":%llu,\"n_http\":%u,\"max_py\":%u,"
           "\"py_target\":%u,\"ring_cap\":%u,\"chunk_size\":%u,\"chunks_per_arena\":%u,",
           s->name, (int)LOAD(h->master_pid), (unsigned long long)h->started_at,
           (unsigned long long)s->uptime, LOAD(h->stopping) ? "true" : "false",
           (unsigned long long)h->size, s->n_http, s->max_py, LOAD(h->py_target), h->ring_cap,
           h->chunk_size, h->chunks_per_arena);
    printf("\"http\":[");
    for (uint32_t i = 0; i < s->n_http; i++) {
        printf(i ? "," : "");
        print_json_row(&s->http[i], i, 0);
    }
    printf("],\"python\":[");
    for (uint32_t i = 0; i < s->max_py; i++) {
        printf(i ? "," : "");
        print_json_row(&s->py[i], i, 1);
    }
    printf("],\"totals\":{\"http\":{\"connections\":%llu,\"requests\":%llu,\"bytes_in\":%llu,"
           "\"bytes_out\":%llu},\"python\":{\"requests\":%llu,\"errors\":%llu,\"in_flight\":%u,"
           "\"ring_depth\":%u,\"restarts\":%llu}}}\n",
           (unsigned long long)s->http_total.connections,
           (unsigned long long)s->http_total.requests,
           (unsigned long long)s->http_total.bytes_in,
           (unsigned long long)s->http_total.bytes_out,
           (unsigned long long)s->py_total.requests, (unsigned long long)s->py_total.errors,
           s->py_total.in_flight, s->py_total.depth, (unsigned long long)s->py_total.restarts);
}

int main(int argc, char **argv)
{
    const char *name = NULL;
    struct fa_seg seg;
    struct snap s = { 0 };
    char *cause = NULL;
    int json = 0;
    int32_t master;
    uint32_t cap;
    uint64_t now;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage();
            return 0;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "shm-stat: unknown option '%s' (try 'shm-stat --help')\n", argv[i]);
            return 1;
        } else if (name == NULL)
            name = argv[i];
        else {
            fprintf(stderr, "shm-stat: one server name at a time, got '%s' and '%s' "
                    "(try 'shm-stat --help')\n", name, argv[i]);
            return 1;
        }
    }
    if (name == NULL)
        name = "default";

    if (fa_seg_attach(&seg, name, 0, &cause) < 0) {
        fprintf(stderr, "shm-stat: %s\n", cause ? cause : strerror(errno));
        free(cause);
        return 1;
    }
    master = LOAD(seg.hdr->master_pid);
    if (master <= 0 || (kill(master, 0) < 0 && errno == ESRCH)) {
        fprintf(stderr, "shm-stat: server '%s' is not running: its master (pid %d) is gone "
                "and %s%s is a stale leftover (the next server started as '%s' replaces it)\n",
                name, (int)master, "/dev/shm", seg.shm_name, name);
        fa_seg_detach(&seg);
        return 1;
    }

    s.seg = &seg;
    s.name = name;
    now = (uint64_t)time(NULL);
    s.uptime = now > seg.hdr->started_at ? now - seg.hdr->started_at : 0;
    s.n_http = seg.hdr->n_http;
    s.max_py = seg.hdr->max_py;
    cap = seg.hdr->ring_cap;
    s.http = calloc(s.n_http, sizeof(*s.http));
    s.py = calloc(s.max_py, sizeof(*s.py));
    if (s.http == NULL || s.py == NULL) {
        fprintf(stderr, "shm-stat: out of memory\n");
        return 1;
    }
    for (uint32_t i = 0; i < s.n_http; i++) {
        read_row(fa_seg_http_slot(&seg, i), &s.http[i]);
        add_row(&s.http_total, &s.http[i]);
    }
    for (uint32_t p = 0; p < s.max_py; p++) {
        read_row(fa_seg_py_slot(&seg, p), &s.py[p]);
        for (uint32_t h = 0; h < s.n_http; h++) {
            uint32_t d = fa_ring_depth(fa_seg_req_ring(&seg, h, p));
            /* A broken ring could report anything: cap it. */
            s.py[p].depth += d <= cap ? d : cap;
        }
        add_row(&s.py_total, &s.py[p]);
    }
    if (json)
        print_json(&s);
    else
        print_table(&s);
    free(s.http);
    free(s.py);
    fa_seg_detach(&seg);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "shm-stat: cannot write the output: %s\n", strerror(errno));
        return 1;
    }
    return 0;
}
