/* check_segment.c - create / attach / refuse / replace / permissions. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tshm.h"
#include "shm/ring.h"

static struct fa_seg_params params(const char *name)
{
    struct fa_seg_params p = {
        .name = name, .n_http = 2, .max_py = 3, .ring_cap = 16,
        .chunk_size = 1024, .chunks_per_arena = 8,
    };
    return p;
}

/* Expects fn to fail with a message containing `want`. */
#define ck_assert_fails_with(call, cause, want) do {                          \
        int r_ = (call);                                                     \
        ck_assert_int_eq(r_, -1);                                            \
        ck_assert_ptr_nonnull(cause);                                        \
        ck_assert_msg(strstr(cause, want) != NULL,                           \
                      "message \"%s\" lacks \"%s\"", cause, want);           \
        free(cause);                                                         \
        cause = NULL;                                                        \
    } while (0)

START_TEST(test_seg__name_check)
{
    static const char *good[] = { "default", "a", "A-b_c.9", "x.y.z", "..", "-",
        "12345678901234567890123456789012345678901234567" };   /* 47 chars */
    static const char *bad[] = { "", "a/b", "a b", "na\xc3\xafve", "a\nb", "a*", "\x01",
        "123456789012345678901234567890123456789012345678" };   /* 48 chars */
    char *cause = NULL;

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        ck_assert_msg(fa_seg_name_check(good[i], &cause) == 0, "'%s' refused", good[i]);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_msg(fa_seg_name_check(bad[i], &cause) == -1, "'%s' accepted", bad[i]);
        ck_assert_ptr_nonnull(cause);
        free(cause);
        cause = NULL;
    }
    ck_assert_fails_with(fa_seg_name_check("a*b", &cause), cause, "contains '*'");
    ck_assert_fails_with(fa_seg_name_check("a\nb", &cause), cause, "byte 0x0a at position 2");
    ck_assert_fails_with(fa_seg_name_check("", &cause), cause, "empty");
    ck_assert_fails_with(fa_seg_name_check(bad[7], &cause), cause,
                         "48 characters long; at most 47");
    ck_assert_int_eq(fa_seg_name_check(NULL, NULL), -1);
}
END_TEST

START_TEST(test_seg__create_then_attach)
{
    struct fa_seg m, r;
    char *cause = NULL;
    const char *name = tshm_name("attach");
    struct fa_seg_params p = params(name);

    ck_assert_int_eq(fa_seg_create(&m, &p, &cause), 0);
    ck_assert_int_eq(m.writable, 1);
    ck_assert_uint_eq(m.hdr->magic, FA_SHM_MAGIC);
    ck_assert_uint_eq(m.hdr->version, FA_SHM_VERSION);
    ck_assert_int_eq(m.hdr->master_pid, getpid());
    ck_assert_uint_eq(m.hdr->owner_uid, getuid());
    ck_assert_str_eq(m.hdr->name, name);
    ck_assert_uint_eq(m.hdr->n_arenas, 5);
    ck_assert_uint_ge(m.hdr->started_at, 1700000000u);
    fa_seg_py_slot(&m, 2)->stats.requests = 42;

    ck_assert_int_eq(fa_seg_attach(&r, name, 0, &cause), 0);
    ck_assert_int_eq(r.writable, 0);
    ck_assert_uint_eq(r.size, m.size);
    ck_assert_str_eq(r.shm_name, m.shm_name);
    ck_assert_uint_eq(fa_seg_py_slot(&r, 2)->stats.requests, 42);
    fa_seg_detach(&r);
    ck_assert_ptr_null(r.base);
    fa_seg_detach(&m);
}
END_TEST

START_TEST(test_seg__layout_is_aligned_and_fresh)
{
    struct fa_seg s;
    const struct fa_seg_header_sh *h;
    long page = sysconf(_SC_PAGESIZE);

    tshm_create(&s, "layout", 2, 3, 16, 1024, 8);
    h = s.hdr;
    ck_assert_uint_eq(h->off_http_slots % FA_CACHELINE, 0);
    ck_assert_uint_eq(h->off_py_slots % FA_CACHELINE, 0);
    ck_assert_uint_eq(h->off_rings % FA_CACHELINE, 0);
    ck_assert_uint_eq(h->ring_stride % FA_CACHELINE, 0);
    ck_assert_uint_ge(h->ring_stride, sizeof(struct fa_ring_sh) + 16 * sizeof(struct fa_desc));
    ck_assert_uint_eq(h->off_chunks % (uint64_t)page, 0);
    ck_assert_uint_ge(h->off_py_slots, h->off_http_slots + 2 * sizeof(struct fa_slot_sh));
    ck_assert_uint_ge(h->off_rings, h->off_py_slots + 3 * sizeof(struct fa_slot_sh));
    ck_assert_uint_ge(h->off_chunk_meta, h->off_rings + 2 * 2 * 3 * h->ring_stride);
    ck_assert_uint_ge(h->off_chunks, h->off_chunk_meta + 5 * 8 * sizeof(struct fa_chunk_meta_sh));
    ck_assert_uint_eq(h->size, h->off_chunks + 5 * 8 * 1024);
    ck_assert_uint_eq(h->size, s.size);
    /* The last ring and the last chunk end inside the segment. */
    tshm_assert_ptr_le((char *)fa_seg_resp_ring(&s, 1, 2) + h->ring_stride,
                     (char *)s.base + h->off_chunk_meta);
    ck_assert_ptr_eq(fa_seg_chunk_data(&s, 4, 7) + 1024, s.base + s.size);
    for (uint32_t a = 0; a < 5; a++)
        for (uint32_t i = 0; i < 8; i++) {
            struct fa_chunk_meta_sh *m = fa_seg_chunk_meta(&s, a, i);
            ck_assert_uint_eq(atomic_load(&m->state), FA_CHUNK_FREE);
            ck_assert_uint_eq(m->next, FA_CHUNK_NONE);
        }
    for (uint32_t h2 = 0; h2 < 2; h2++)
        for (uint32_t p = 0; p < 3; p++) {
            ck_assert_uint_eq(fa_ring_depth(fa_seg_req_ring(&s, h2, p)), 0);
            ck_assert_uint_eq(fa_ring_depth(fa_seg_resp_ring(&s, h2, p)), 0);
        }
    ck_assert_uint_eq(atomic_load(&fa_seg_py_slot(&s, 2)->state), FA_SLOT_EMPTY);
    fa_seg_detach(&s);
}
END_TEST

START_TEST(test_seg__mode_is_0600)
{
    static const mode_t masks[] = { 0, 022, 0277 };

    for (size_t i = 0; i < sizeof(masks) / sizeof(masks[0]); i++) {
        struct fa_seg s;
        struct stat st;
        char path[128], tag[16];

        snprintf(tag, sizeof(tag), "mode%zu", i);
        umask(masks[i]);
        tshm_create(&s, tag, 1, 1, 2, 64, 1);
        snprintf(path, sizeof(path), "/dev/shm%s", s.shm_name);
        ck_assert_int_eq(stat(path, &st), 0);
        ck_assert_uint_eq(st.st_mode & 07777, 0600);
        ck_assert_uint_eq(st.st_uid, getuid());
        fa_seg_detach(&s);
    }
}
END_TEST

START_TEST(test_seg__create_refuses_live)
{
    struct fa_seg a, b;
    struct fa_seg_params p;
    char *cause = NULL, want[64];

    tshm_create(&a, "live", 1, 1, 2, 64, 1);
    p = params(a.hdr->name);
    snprintf(want, sizeof(want), "already running (pid %d)", (int)getpid());
    ck_assert_fails_with(fa_seg_create(&b, &p, &cause), cause, want);
    /* The live one is untouched. */
    ck_assert_uint_eq(a.hdr->n_http, 1);
    ck_assert_int_eq(fa_seg_attach(&b, a.hdr->name, 0, &cause), 0);
    fa_seg_detach(&b);
    fa_seg_detach(&a);
}
END_TEST

START_TEST(test_seg__create_replaces_stale)
{
    struct fa_seg a, b;
    struct fa_seg_params p;
    char *cause = NULL;

    tshm_create(&a, "stale", 1, 1, 2, 64, 1);
    atomic_store(&a.hdr->master_pid, tshm_dead_pid());
    p = params(a.hdr->name);
    ck_assert_msg(fa_seg_create(&b, &p, &cause) == 0, "%s", cause);
    ck_assert_int_eq(b.hdr->master_pid, getpid());
    ck_assert_uint_eq(b.hdr->n_http, 2);
    /* The old mapping is a different (unlinked) object now. */
    ck_assert_uint_eq(a.hdr->n_http, 1);
    fa_seg_detach(&a);
    fa_seg_detach(&b);
}
END_TEST

/* A creator that died between shm_open and the header leaves an empty or
 * zeroed file: that is stale too. */
START_TEST(test_seg__create_replaces_half_made)
{
    const char *name = tshm_name("half");
    struct fa_seg_params p = params(name);
    struct fa_seg s;
    char shm[96], *cause = NULL;
    int fd;

    snprintf(shm, sizeof(shm), "/fasterapi.%s", name);
    fd = shm_open(shm, O_RDWR | O_CREAT | O_EXCL, 0600);
    ck_assert_int_ge(fd, 0);
    close(fd);
    ck_assert_msg(fa_seg_create(&s, &p, &cause) == 0, "%s", cause);
    fa_seg_detach(&s);
    fa_seg_unlink(name);

    fd = shm_open(shm, O_RDWR | O_CREAT | O_EXCL, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(ftruncate(fd, 1 << 16), 0);
    close(fd);
    ck_assert_msg(fa_seg_create(&s, &p, &cause) == 0, "%s", cause);
    fa_seg_detach(&s);
}
END_TEST

/* Another layout version: we cannot know where its master pid is, so we
 * leave it alone and say why. */
START_TEST(test_seg__create_refuses_other_version)
{
    struct fa_seg a, b;
    struct fa_seg_params p;
    char *cause = NULL;

    tshm_create(&a, "vers", 1, 1, 2, 64, 1);
    a.hdr->version = 99;
    p = params(a.hdr->name);
    ck_assert_fails_with(fa_seg_create(&b, &p, &cause), cause, "layout version 99");
    a.hdr->magic = 0x12345678;
    ck_assert_fails_with(fa_seg_create(&b, &p, &cause), cause, "not a FasterAPI segment");
    fa_seg_detach(&a);
}
END_TEST

START_TEST(test_seg__attach_missing)
{
    struct fa_seg s;
    char *cause = NULL, want[128];
    const char *name = tshm_name("missing");

    snprintf(want, sizeof(want), "no server named '%s' is running (no /dev/shm/fasterapi.%s)",
             name, name);
    ck_assert_fails_with(fa_seg_attach(&s, name, 0, &cause), cause, want);
    ck_assert_fails_with(fa_seg_attach(&s, "bad/name", 0, &cause), cause, "contains '/'");
}
END_TEST

START_TEST(test_seg__attach_wrong_version)
{
    struct fa_seg a, b;
    char *cause = NULL, want[96];

    tshm_create(&a, "wver", 1, 1, 2, 64, 1);
    a.hdr->version = FA_SHM_VERSION + 1;
    snprintf(want, sizeof(want), "layout version %u but this program understands version %u",
             FA_SHM_VERSION + 1, FA_SHM_VERSION);
    ck_assert_fails_with(fa_seg_attach(&b, a.hdr->name, 0, &cause), cause, want);
    a.hdr->version = FA_SHM_VERSION;
    a.hdr->magic = 0xdeadbeef;
    ck_assert_fails_with(fa_seg_attach(&b, a.hdr->name, 1, &cause), cause, "bad magic");
    fa_seg_detach(&a);
}
END_TEST

START_TEST(test_seg__attach_wrong_owner)
{
    struct fa_seg a, b;
    char *cause = NULL, want[64], path[128];

    tshm_create(&a, "owner", 1, 1, 2, 64, 1);
    a.hdr->owner_uid = getuid() + 4242;
    snprintf(want, sizeof(want), "segment belongs to uid %u", (unsigned)getuid() + 4242);
    ck_assert_fails_with(fa_seg_attach(&b, a.hdr->name, 0, &cause), cause, want);
    a.hdr->owner_uid = getuid();
    /* The file's owner counts too (root can hand the file over). */
    if (getuid() == 0) {
        snprintf(path, sizeof(path), "/dev/shm%s", a.shm_name);
        ck_assert_int_eq(chown(path, 4243, (gid_t)-1), 0);
        ck_assert_fails_with(fa_seg_attach(&b, a.hdr->name, 0, &cause), cause,
                             "belongs to uid 4243");
    }
    fa_seg_detach(&a);
}
END_TEST

START_TEST(test_seg__attach_wrong_size)
{
    struct fa_seg a, b;
    char *cause = NULL, name[FA_NAME_MAX];
    int fd;

    tshm_create(&a, "size", 1, 1, 2, 64, 1);
    snprintf(name, sizeof(name), "%s", a.hdr->name);
    fd = shm_open(a.shm_name, O_RDWR, 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(ftruncate(fd, (off_t)a.size + 4096), 0);
    ck_assert_fails_with(fa_seg_attach(&b, name, 0, &cause), cause, "corrupt");
    ck_assert_int_eq(ftruncate(fd, 100), 0);
    ck_assert_fails_with(fa_seg_attach(&b, name, 0, &cause), cause, "only 100 bytes");
    close(fd);
    /* a's mapping now extends past the file: do not touch it, just unmap. */
    fa_seg_detach(&a);
}
END_TEST

START_TEST(test_seg__attach_corrupt_geometry)
{
    struct fa_seg a, b;
    char *cause = NULL;

    tshm_create(&a, "geom", 2, 2, 4, 64, 4);
    a.hdr->chunks_per_arena = 1000000;
    ck_assert_fails_with(fa_seg_attach(&b, a.hdr->name, 0, &cause), cause, "corrupt");
    a.hdr->chunks_per_arena = 4;
    a.hdr->off_chunks += 4096;
    ck_assert_fails_with(fa_seg_attach(&b, a.hdr->name, 0, &cause), cause, "corrupt");
    a.hdr->off_chunks -= 4096;
    a.hdr->ring_cap = 3;
    ck_assert_fails_with(fa_seg_attach(&b, a.hdr->name, 0, &cause), cause, "corrupt");
    a.hdr->ring_cap = 4;
    ck_assert_int_eq(fa_seg_attach(&b, a.hdr->name, 0, &cause), 0);
    fa_seg_detach(&b);
    fa_seg_detach(&a);
}
END_TEST

START_TEST(test_seg__attach_fd)
{
    struct fa_seg a, b, c;
    char *cause = NULL;
    int fd;

    tshm_create(&a, "fd", 1, 2, 4, 64, 2);
    fd = shm_open(a.shm_name, O_RDWR, 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_msg(fa_seg_attach_fd(&b, fd, &cause) == 0, "%s", cause);
    ck_assert_int_eq(b.writable, 1);
    ck_assert_str_eq(b.shm_name, a.shm_name);
    fa_seg_py_slot(&b, 1)->stats.errors = 7;
    ck_assert_uint_eq(fa_seg_py_slot(&a, 1)->stats.errors, 7);
    ck_assert_int_ne(fcntl(fd, F_GETFD), -1);          /* still ours */
    close(fd);
    fd = shm_open(a.shm_name, O_RDONLY, 0);
    ck_assert_int_eq(fa_seg_attach_fd(&c, fd, &cause), 0);
    ck_assert_int_eq(c.writable, 0);
    close(fd);
    ck_assert_fails_with(fa_seg_attach_fd(&c, fd, &cause), cause, "not open");
    fa_seg_detach(&c);
    fa_seg_detach(&b);
    fa_seg_detach(&a);
}
END_TEST

/* shm-stat attaches read-only: a stray write must fault, not corrupt. */
START_TEST(test_seg__readonly_write_faults)
{
    struct fa_seg a, b;
    char *cause = NULL;

    tshm_create(&a, "ro", 1, 1, 2, 64, 1);
    ck_assert_int_eq(fa_seg_attach(&b, a.hdr->name, 0, &cause), 0);
    fa_seg_unlink(a.hdr->name);          /* a death by signal skips atexit */
    fa_seg_http_slot(&b, 0)->stats.requests = 1;
    ck_abort_msg("write to a read-only mapping did not fault");
}
END_TEST

START_TEST(test_seg__create_rejects_bad_params)
{
    static const struct { uint32_t n_http, max_py, cap, chunk, cpa; const char *want; } t[] = {
        { 0, 1, 2, 64, 1, "at least one" },
        { 1, 0, 2, 64, 1, "at least one" },
        { 1, 1, 3, 64, 1, "power of two" },
        { 1, 1, 1, 64, 1, "power of two" },
        { 1, 1, 2, 100, 1, "multiple of 64" },
        { 1, 1, 2, 0, 1, "multiple of 64" },
        { 1, 1, 2, 64, 0, "at least 1" },
        { 10000, 10000, 2, 64, 1, "too many worker slots" },
        { 16, 16, 2, 1u << 30, 1u << 20, "too large" },
    };
    const char *name = tshm_name("params");

    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        struct fa_seg_params p = {
            .name = name, .n_http = t[i].n_http, .max_py = t[i].max_py,
            .ring_cap = t[i].cap, .chunk_size = t[i].chunk, .chunks_per_arena = t[i].cpa,
        };
        struct fa_seg s;
        char *cause = NULL;
        ck_assert_fails_with(fa_seg_create(&s, &p, &cause), cause, t[i].want);
    }
    {
        struct fa_seg_params p = params("no/slash");
        struct fa_seg s;
        char *cause = NULL;
        ck_assert_fails_with(fa_seg_create(&s, &p, &cause), cause, "'/'");
    }
    ck_assert_int_eq(access("/dev/shm/fasterapi.no", F_OK), -1);
}
END_TEST

START_TEST(test_seg__unlink_keeps_mappings)
{
    struct fa_seg a, b;
    char *cause = NULL;

    tshm_create(&a, "unlink", 1, 1, 2, 64, 1);
    ck_assert_int_eq(fa_seg_unlink(a.hdr->name), 0);
    ck_assert_fails_with(fa_seg_attach(&b, a.hdr->name, 0, &cause), cause, "no server named");
    a.hdr->py_target = 3;                 /* still mapped */
    ck_assert_int_eq(fa_seg_unlink(a.hdr->name), -1);
    ck_assert_int_eq(errno, ENOENT);
    ck_assert_int_eq(fa_seg_unlink("../etc"), -1);
    ck_assert_int_eq(errno, EINVAL);
    fa_seg_detach(&a);
}
END_TEST

Suite *make_suite_segment(void)
{
    Suite *s = suite_create("segment");
    TCase *tc = tcase_create("segment");

    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, test_seg__name_check);
    tcase_add_test(tc, test_seg__create_then_attach);
    tcase_add_test(tc, test_seg__layout_is_aligned_and_fresh);
    tcase_add_test(tc, test_seg__mode_is_0600);
    tcase_add_test(tc, test_seg__create_refuses_live);
    tcase_add_test(tc, test_seg__create_replaces_stale);
    tcase_add_test(tc, test_seg__create_replaces_half_made);
    tcase_add_test(tc, test_seg__create_refuses_other_version);
    tcase_add_test(tc, test_seg__attach_missing);
    tcase_add_test(tc, test_seg__attach_wrong_version);
    tcase_add_test(tc, test_seg__attach_wrong_owner);
    tcase_add_test(tc, test_seg__attach_wrong_size);
    tcase_add_test(tc, test_seg__attach_corrupt_geometry);
    tcase_add_test(tc, test_seg__attach_fd);
    tcase_add_test_raise_signal(tc, test_seg__readonly_write_faults, SIGSEGV);
    tcase_add_test(tc, test_seg__create_rejects_bad_params);
    tcase_add_test(tc, test_seg__unlink_keeps_mappings);
    suite_add_tcase(s, tc);
    return s;
}
