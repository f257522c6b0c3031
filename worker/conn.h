/* conn.h - client connections of an HTTP worker (see worker.h). */
#ifndef FA_WORKER_CONN_H
#define FA_WORKER_CONN_H
#include "worker/worker.h"
#endif
