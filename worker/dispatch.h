/* dispatch.h - Python routes: envelopes, rings, responses (see worker.h). */
#ifndef FA_WORKER_DISPATCH_H
#define FA_WORKER_DISPATCH_H
#include "worker/worker.h"
#endif
