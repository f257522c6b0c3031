/* doorbell.c - the sleeping-flag wakeup protocol over an eventfd.
 *
 *   producer                              consumer (slot owner)
 *   publish (ring tail, release)          spin a little over its rings
 *   fence(seq_cst)                        store(sleeping, 1)
 *   load(sleeping): 0 -> done, no syscall fence(seq_cst)
 *   exchange(sleeping, 0) == 1 ->         re-check rings: work -> sleeping = 0
 *       write(eventfd)                    else wait on the eventfd
 *
 * The fences make a Dekker pair: of "producer sees sleeping == 0" and
 * "consumer's re-check misses the publish", at most one can happen, so a
 * consumer never sleeps on published work. The plain load before the
 * exchange keeps a busy consumer's flag line shared: a producer that finds
 * it awake pays a fence and a read, no locked instruction, no syscall.
 *
 * Why eventfd for every doorbell: HTTP workers sleep in libevent and Python
 * workers may sleep in asyncio (loop.add_reader); one pollable fd serves
 * both, and the master creates them all before it forks or execs anyone.
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "shm/doorbell.h"

int fa_doorbell_ring(_Atomic uint32_t *sleeping, int efd)
{
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(sleeping, memory_order_relaxed) == 0)
        return 0;
    /* Several producers may find it set: only the one that clears it pays. */
    if (atomic_exchange_explicit(sleeping, 0, memory_order_seq_cst) == 0)
        return 0;
    fa_doorbell_ring_force(efd);
    return 1;
}

void fa_doorbell_ring_force(int efd)
{
    uint64_t one = 1;

    /* EAGAIN: the counter is at its maximum, the consumer is woken anyway. */
    while (write(efd, &one, sizeof(one)) < 0 && errno == EINTR)
        ;
}

void fa_doorbell_sleep_begin(_Atomic uint32_t *sleeping)
{
    atomic_store_explicit(sleeping, 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);
}

void fa_doorbell_sleep_cancel(_Atomic uint32_t *sleeping)
{
    atomic_store_explicit(sleeping, 0, memory_order_relaxed);
}

int fa_doorbell_wait(int efd, int timeout_ms)
{
    struct pollfd pfd = { .fd = efd, .events = POLLIN };
    int r = poll(&pfd, 1, timeout_ms);

    if (r < 0)
        return -1;
    if (r == 0)
        return 0;
    if (pfd.revents & POLLNVAL) {  /* not an fd: do not report a wake forever */
        errno = EBADF;
        return -1;
    }
    fa_doorbell_drain(efd);
    return 1;
}

void fa_doorbell_drain(int efd)
{
    uint64_t v;

    while (read(efd, &v, sizeof(v)) < 0 && errno == EINTR)
        ;
}

int fa_doorbell_create(void)
{
    return eventfd(0, EFD_NONBLOCK);
}
