/* stat.c - shm-stat: what a running server's workers and queues are doing.
 *
 *   shm-stat [NAME] [--json] [--watch SECONDS]
 *
 * Attaches /dev/shm/fasterapi.NAME read-only (a stray write would fault, it
 * cannot disturb the server) and prints a snapshot: the HTTP worker slots,
 * the Python worker slots (the load board) and totals. Rates (req/s) come
 * from two snapshots: half a second apart for one snapshot, the --watch
 * interval otherwise. Counters are read with relaxed loads while the server
 * runs, so a row is consistent only roughly; that is what a monitor needs.
 */
#include <math.h>
#include <unistd.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shm/chunk.h"
#include "shm/ring.h"
#include "shm/segment.h"

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)

static void usage(void)
{
    printf(
            "usage: shm-stat [NAME] [--json] [--watch SECONDS]\n"
            "\n"
            "Shows the workers, queues and counters of the running FasterAPI server\n"
            "NAME (the --name it was started with; default \"default\"), read from\n"
            "/dev/shm/fasterapi.NAME without changing anything.\n"
            "\n"
            "  --json           print one JSON object instead of tables\n"
            "  --watch SECONDS  redraw every SECONDS until interrupted\n"
            "\n"
            "Python workers: requests, req/s, errors (answers >= 500), in-flight, ring\n"
            "depth (requests queued in its rings), average and p99 latency (from the\n"
            "HTTP workers' push to the answer; p99 is the upper bound of a power-of-two\n"
            "bucket), RSS, restarts. HTTP workers: connections, requests, req/s, queued\n"
            "(waiting for a Python worker), bytes, RSS.\n"
            "  -h, --help       show this help\n"
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
    uint64_t requests, errors, bytes_in, bytes_out, connections, restarts, rss_kb, queued;
    uint64_t lat_count, lat_sum_us, lat_bucket[FA_LAT_BUCKETS];
    uint32_t chunks_free;  /* of the slot's own arena */
    double rate;          /* requests per second since the previous snapshot */
    double avg_ms, p99_ms;
};

static void read_row(const struct fa_slot_sh *s, struct row *r)
{
    r->state = LOAD(s->state);
    r->gen = LOAD(s->gen);
    r->pid = LOAD(s->pid);
    r->in_flight = 0;
    r->requests = LOAD(s->stats.requests);
    r->errors = LOAD(s->stats.errors);
    r->bytes_in = LOAD(s->stats.bytes_in);
    r->bytes_out = LOAD(s->stats.bytes_out);
    r->connections = LOAD(s->stats.connections);
    r->restarts = LOAD(s->stats.restarts);
    r->rss_kb = LOAD(s->stats.rss_kb);
    r->queued = LOAD(s->stats.queued);
    r->lat_count = LOAD(s->lat.count);
    r->lat_sum_us = LOAD(s->lat.sum_us);
    for (int i = 0; i < FA_LAT_BUCKETS; i++)
        r->lat_bucket[i] = LOAD(s->lat.bucket[i]);
    r->depth = 0;
}

/* Latency over the requests between two snapshots (all of them if prev is
 * NULL): average, and p99 as the upper bound of its power-of-two bucket. */
static void latency(struct row *r, const struct row *prev)
{
    uint64_t n = r->lat_count - (prev ? prev->lat_count : 0);
    uint64_t sum = r->lat_sum_us - (prev ? prev->lat_sum_us : 0);
    r->avg_ms = r->p99_ms = NAN;
    if (n == 0 || n > (1ull << 60))
        return;
    r->avg_ms = (double)sum / (double)n / 1000.0;
    uint64_t want = n - n / 100, seen = 0;
    for (int i = 0; i < FA_LAT_BUCKETS; i++) {
        seen += r->lat_bucket[i] - (prev ? prev->lat_bucket[i] : 0);
        if (seen >= want) {
            r->p99_ms = (double)(2ull << i) / 1000.0;
            return;
        }
    }
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
    t->rss_kb += r->rss_kb;
    t->queued += r->queued;
    t->rate += r->rate;
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

    char b3[32];
    printf("HTTP  %4s %8s %-9s %6s %10s %8s %6s %10s %10s %9s\n", "slot", "pid", "state", "conns",
           "requests", "req/s", "queued", "bytes in", "bytes out", "rss");
    for (uint32_t i = 0; i < s->n_http; i++) {
        const struct row *r = &s->http[i];
        if (row_unused(r)) {
            hidden++;
            continue;
        }
        printf("      %4u %8d %-9s %6llu %10llu %8.0f %6llu %10s %10s %9s\n", i, (int)r->pid,
               state_name(r->state), (unsigned long long)r->connections,
               (unsigned long long)r->requests, r->rate, (unsigned long long)r->queued,
               human_bytes(r->bytes_in, b1, sizeof(b1)), human_bytes(r->bytes_out, b2, sizeof(b2)),
               human_bytes(r->rss_kb * 1024, b3, sizeof(b3)));
    }
    printf("      %4s %8s %-9s %6llu %10llu %8.0f %6llu %10s %10s\n\n", "all", "", "",
           (unsigned long long)s->http_total.connections,
           (unsigned long long)s->http_total.requests, s->http_total.rate,
           (unsigned long long)s->http_total.queued,
           human_bytes(s->http_total.bytes_in, b1, sizeof(b1)),
           human_bytes(s->http_total.bytes_out, b2, sizeof(b2)));

    printf("PY    %4s %8s %-9s %5s %10s %8s %7s %9s %6s %8s %8s %9s %8s\n", "slot", "pid", "state",
           "gen", "requests", "req/s", "errors", "in-flight", "depth", "avg ms", "p99 ms", "rss",
           "restarts");
    for (uint32_t i = 0; i < s->max_py; i++) {
        const struct row *r = &s->py[i];
        if (row_unused(r)) {
            hidden++;
            continue;
        }
        char avg[16] = "-", p99[16] = "-";
        if (!isnan(r->avg_ms))
            snprintf(avg, sizeof avg, "%.2f", r->avg_ms);
        if (!isnan(r->p99_ms))
            snprintf(p99, sizeof p99, "%.2f", r->p99_ms);
        printf("      %4u %8d %-9s %5u %10llu %8.0f %7llu %9u %6u %8s %8s %9s %8llu\n", i, (int)r->pid,
               state_name(r->state), r->gen, (unsigned long long)r->requests, r->rate,
               (unsigned long long)r->errors, r->in_flight, r->depth, avg, p99,
               human_bytes(r->rss_kb * 1024, b1, sizeof(b1)), (unsigned long long)r->restarts);
    }
    printf("      %4s %8s %-9s %5s %10llu %8.0f %7llu %9u %6u %8s %8s %9s %8llu\n", "all", "", "", "",
           (unsigned long long)s->py_total.requests, s->py_total.rate,
           (unsigned long long)s->py_total.errors, s->py_total.in_flight, s->py_total.depth, "", "",
           "", (unsigned long long)s->py_total.restarts);
    if (hidden)
        printf("      (%u unused slot%s not shown)\n", hidden, hidden == 1 ? "" : "s");
}

static void print_json_num(const char *key, double v)
{
    if (isnan(v))
        printf(",\"%s\":null", key);
    else
        printf(",\"%s\":%.3f", key, v);
}

static void print_json_row(const struct row *r, uint32_t i, int python)
{
    printf("{\"slot\":%u,\"pid\":%d,\"state\":\"%s\"", i, (int)r->pid, state_name(r->state));
    print_json_num("req_per_s", r->rate);
    printf(",\"rss_kb\":%llu,\"chunks_free\":%u", (unsigned long long)r->rss_kb, r->chunks_free);
    if (python) {
        print_json_num("latency_avg_ms", r->avg_ms);
        print_json_num("latency_p99_ms", r->p99_ms);
        printf(",\"gen\":%u,\"requests\":%llu,\"errors\":%llu,\"in_flight\":%u,"
               "\"ring_depth\":%u,\"restarts\":%llu}", r->gen, (unsigned long long)r->requests,
               (unsigned long long)r->errors, r->in_flight, r->depth,
               (unsigned long long)r->restarts);
    } else {
        printf(",\"connections\":%llu,\"requests\":%llu,\"queued\":%llu,\"bytes_in\":%llu,"
               "\"bytes_out\":%llu,\"restarts\":%llu}",
               (unsigned long long)r->connections, (unsigned long long)r->requests,
               (unsigned long long)r->queued, (unsigned long long)r->bytes_in,
               (unsigned long long)r->bytes_out, (unsigned long long)r->restarts);
    }
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
    double watch = 0;
    int32_t master;
    uint32_t cap;
    uint64_t now;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else if (strcmp(argv[i], "--watch") == 0) {
            char *end = NULL;
            watch = i + 1 < argc ? strtod(argv[i + 1], &end) : 0;
            if (i + 1 >= argc || end == argv[i + 1] || *end || watch < 0.1 || watch > 3600) {
                fprintf(stderr, "shm-stat: --watch needs a number of seconds from 0.1 to 3600\n");
                return 1;
            }
            i++;
        }
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
    s.n_http = seg.hdr->n_http;
    s.max_py = seg.hdr->max_py;
    cap = seg.hdr->ring_cap;
    s.http = calloc(s.n_http, sizeof(*s.http));
    s.py = calloc(s.max_py, sizeof(*s.py));
    struct row *prev_http = calloc(s.n_http, sizeof(*prev_http));
    struct row *prev_py = calloc(s.max_py, sizeof(*prev_py));
    if (s.http == NULL || s.py == NULL || prev_http == NULL || prev_py == NULL) {
        fprintf(stderr, "shm-stat: out of memory\n");
        return 1;
    }
    double interval = watch > 0 ? watch : 0.5;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (uint32_t i = 0; i < s.n_http; i++)
        read_row(fa_seg_http_slot(&seg, i), &prev_http[i]);
    for (uint32_t p = 0; p < s.max_py; p++)
        read_row(fa_seg_py_slot(&seg, p), &prev_py[p]);
    for (;;) {
        struct timespec ts = {(time_t)interval, (long)((interval - (double)(time_t)interval) * 1e9)};
        nanosleep(&ts, NULL);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double dt = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
        t0 = t1;
        memset(&s.http_total, 0, sizeof s.http_total);
        memset(&s.py_total, 0, sizeof s.py_total);
        now = (uint64_t)time(NULL);
        s.uptime = now > seg.hdr->started_at ? now - seg.hdr->started_at : 0;
        for (uint32_t i = 0; i < s.n_http; i++) {
            read_row(fa_seg_http_slot(&seg, i), &s.http[i]);
            s.http[i].chunks_free = fa_arena_count_free(&seg, fa_seg_http_arena(&seg, i));
            s.http[i].rate = s.http[i].requests >= prev_http[i].requests && dt > 0
                                 ? (double)(s.http[i].requests - prev_http[i].requests) / dt : 0;
            prev_http[i] = s.http[i];
            add_row(&s.http_total, &s.http[i]);
        }
        for (uint32_t p = 0; p < s.max_py; p++) {
            read_row(fa_seg_py_slot(&seg, p), &s.py[p]);
            s.py[p].in_flight = fa_seg_py_in_flight(&seg, p);
            s.py[p].chunks_free = fa_arena_count_free(&seg, fa_seg_py_arena(&seg, p));
            for (uint32_t h = 0; h < s.n_http; h++) {
                uint32_t d = fa_ring_depth(fa_seg_req_ring(&seg, h, p));
                /* A broken ring could report anything: cap it. */
                s.py[p].depth += d <= cap ? d : cap;
            }
            s.py[p].rate = s.py[p].requests >= prev_py[p].requests && dt > 0
                               ? (double)(s.py[p].requests - prev_py[p].requests) / dt : 0;
            /* Latency of the interval when there was traffic, else since start. */
            latency(&s.py[p], s.py[p].lat_count > prev_py[p].lat_count ? &prev_py[p] : NULL);
            prev_py[p] = s.py[p];
            add_row(&s.py_total, &s.py[p]);
        }
        if (watch > 0 && !json)
            printf("\033[H\033[2J");
        if (json)
            print_json(&s);
        else
            print_table(&s);
        fflush(stdout);
        if (watch <= 0)
            break;
        master = LOAD(seg.hdr->master_pid);
        if (kill(master, 0) < 0 && errno == ESRCH) {
            fprintf(stderr, "shm-stat: server '%s' stopped\n", name);
            break;
        }
    }
    free(s.http);
    free(s.py);
    free(prev_http);
    free(prev_py);
    fa_seg_detach(&seg);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "shm-stat: cannot write the output: %s\n", strerror(errno));
        return 1;
    }
    return 0;
}
