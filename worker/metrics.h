/* metrics.h - the Prometheus text endpoint (--metrics PATH), served in C. */
#ifndef FA_WORKER_METRICS_H
#define FA_WORKER_METRICS_H
#include "worker/worker.h"

/* Fills r with a 200 text/plain; version=0.0.4 response holding every
 * counter of the segment (the same ones shm-stat shows). */
void fa_metrics_render(struct fa_worker *w, struct fa_resp *r);

#endif
