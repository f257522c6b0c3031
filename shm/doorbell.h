/* doorbell.h - the sleeping-flag wakeup protocol.
 *
 *   producer                              consumer (slot owner)
 *   publish (ring tail, release)          spin a little over its rings
 *   atomic_thread_fence(seq_cst)          store(sleeping, 1)
 *   if exchange(sleeping, 0) == 1:        atomic_thread_fence(seq_cst)
 *       write(eventfd)                    re-check rings: if work, sleeping = 0
 *                                         else wait on eventfd
 *
 * The two seq_cst fences forbid the outcome where the producer reads
 * sleeping == 0 while the consumer's re-check misses the publish. The
 * syscall happens only when the consumer really went to sleep; a busy
 * consumer costs the producer one fence and one exchange.
 *
 * Every slot has one eventfd (EFD_NONBLOCK), created by the master before it
 * forks or execs anybody, so every process holds every doorbell it may ring.
 */
#ifndef FA_SHM_DOORBELL_H
#define FA_SHM_DOORBELL_H

#include "shm/layout.h"

/* Producer side, after publishing. Writes the eventfd only if the consumer
 * declared itself asleep. Returns 1 if it did a syscall. */
int fa_doorbell_ring(_Atomic uint32_t *sleeping, int efd);
/* Unconditional wake (master on a death, shutdown). */
void fa_doorbell_ring_force(int efd);

/* Consumer side: declare sleep (store 1 + seq_cst fence). The caller must
 * then re-check all its rings and call fa_doorbell_sleep_cancel() if it
 * finds work, or block (fa_doorbell_wait or its event loop) otherwise. */
void fa_doorbell_sleep_begin(_Atomic uint32_t *sleeping);
void fa_doorbell_sleep_cancel(_Atomic uint32_t *sleeping);

/* Blocks until the eventfd is written or timeout_ms passes (-1: forever).
 * Consumes the eventfd counter. Returns 1 woken, 0 timeout, -1 EINTR. */
int fa_doorbell_wait(int efd, int timeout_ms);
/* Reads and discards the counter (non-blocking). */
void fa_doorbell_drain(int efd);

/* New eventfd for a doorbell (EFD_NONBLOCK, inheritable). -1 on error. */
int fa_doorbell_create(void);

#endif
