/* tshm.h - helpers shared by the shm Check binary's files (tests/shm/). */
#ifndef FA_TESTS_TSHM_H
#define FA_TESTS_TSHM_H

#include <check.h>
#include <stdint.h>

#include "shm/segment.h"

Suite *make_suite_segment(void);
Suite *make_suite_ring(void);
Suite *make_suite_chunk(void);
Suite *make_suite_doorbell(void);
Suite *make_suite_pair(void);
Suite *make_suite_stat(void);

/* A segment name unique to this test process ("ck<pid>.<tag>"), remembered
 * so that it is unlinked when the process exits, also after a failed
 * assertion (Check's fork mode ends a failed test with exit()). */
const char *tshm_name(const char *tag);

/* fa_seg_create with a fresh tshm_name(tag); fails the test on error. */
void tshm_create(struct fa_seg *seg, const char *tag, uint32_t n_http, uint32_t max_py,
                 uint32_t ring_cap, uint32_t chunk_size, uint32_t chunks_per_arena);

/* Check has no ordered pointer assertions. */
#define tshm_assert_ptr_le(a, b)                                              \
    ck_assert_msg((const char *)(a) <= (const char *)(b), "%s (%p) > %s (%p)", \
                  #a, (const void *)(a), #b, (const void *)(b))

/* A pid that no process has now (a reaped child). */
int tshm_dead_pid(void);

#endif
