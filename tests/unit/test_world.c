/* test_world.c — what `dscc run` decides about a distributed run before any
 * GPU is involved: the topology from options or the launcher's variables,
 * the split of the batch rows, the device of a rank, and the TCP gather of
 * results at rank 0 with real processes (rank order kept whatever order
 * they arrive in; a rank that never sends makes rank 0 fail, naming it,
 * within the timeout; a rank with no rank 0 fails within it too). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/world.h"
#include "tests/unit/testutil.h"

static void test_topology(void **state) {
    (void)state;
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, NULL);
    RtRankInfo ri = {.size = 8};
    const char *none[] = {NULL}, *torch[] = {"LOCAL_WORLD_SIZE=4", NULL}, *ompi[] = {"OMPI_COMM_WORLD_LOCAL_SIZE=2", NULL},
               *slurm[] = {"SLURM_NTASKS_PER_NODE=4(x2)", NULL}, *odd[] = {"LOCAL_WORLD_SIZE=3", NULL};
    int n, g;
    assert_true(rt_world_topology(d, &ri, none, 0, 0, &n, &g));
    assert_true(n == 1 && g == 8); /* one node by default */
    assert_true(rt_world_topology(d, &ri, none, 2, 0, &n, &g));
    assert_true(n == 2 && g == 4);
    assert_true(rt_world_topology(d, &ri, none, 0, 2, &n, &g));
    assert_true(n == 4 && g == 2);
    assert_true(rt_world_topology(d, &ri, torch, 0, 0, &n, &g));
    assert_true(n == 2 && g == 4);
    assert_true(rt_world_topology(d, &ri, ompi, 0, 0, &n, &g));
    assert_true(n == 4 && g == 2);
    assert_true(rt_world_topology(d, &ri, slurm, 0, 0, &n, &g));
    assert_true(n == 2 && g == 4);
    assert_true(rt_world_topology(d, &ri, torch, 8, 0, &n, &g)); /* the option wins */
    assert_true(n == 8 && g == 1);
    assert_false(rt_world_topology(d, &ri, none, 3, 0, &n, &g));
    assert_string_equal(diag_first(d)->msg, "--nodes 3 does not divide the world of 8 ranks");
    assert_false(rt_world_topology(d, &ri, none, 2, 2, &n, &g));
    assert_string_equal(diag_first(d)->next->msg, "8 ranks do not make 2 nodes of 2 GPUs (--gpus-per-node)");
    assert_false(rt_world_topology(d, &ri, odd, 0, 0, &n, &g));
    assert_string_equal(diag_first(d)->next->next->msg, "8 ranks do not make whole nodes of 3 GPUs (LOCAL_WORLD_SIZE)");
    arena_free(a);
}

static void test_rows_and_device(void **state) {
    (void)state;
    int64_t first, count, want_first[4] = {0, 3, 5, 7}, want_count[4] = {3, 2, 2, 2};
    for (int r = 0; r < 4; r++) { /* 9 rows over 4 ranks: the remainder on the first */
        rt_world_rows(9, r, 4, &first, &count);
        assert_int_equal(first, want_first[r]);
        assert_int_equal(count, want_count[r]);
    }
    rt_world_rows(2, 3, 4, &first, &count); /* fewer rows than ranks: none */
    assert_int_equal(count, 0);
    assert_int_equal(first, 2);
    RtRankInfo ri = {.rank = 5, .size = 8, .local_rank = 1};
    const char *none[] = {NULL}, *one[] = {"CUDA_VISIBLE_DEVICES=3", NULL}, *two[] = {"CUDA_VISIBLE_DEVICES=2,3", NULL};
    assert_int_equal(rt_world_device(&ri, none), 1);
    assert_int_equal(rt_world_device(&ri, one), 0); /* srun --gpus-per-task=1: the one GPU it sees */
    assert_int_equal(rt_world_device(&ri, two), 1);
}

/* Rank r sends r+1 bytes of value r after (size - r) x 50 ms; exits 0 iff it could. */
typedef struct {
    int r, size, port, timeout_ms;
} Sender;

static int sender(void *arg) {
    const Sender *s = arg;
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, NULL);
    RtRankInfo ri = {RT_LAUNCH_TORCHRUN, s->r, s->size, s->r, "127.0.0.1", s->port};
    char buf[16];
    memset(buf, s->r, sizeof buf);
    usleep((useconds_t)(s->size - s->r) * 50000); /* the last rank first */
    void *all;
    size_t lens[8];
    return rt_world_gather(NULL, d, &ri, buf, (size_t)s->r + 1, &all, lens, s->timeout_ms) && !all ? 0 : 1;
}

static pid_t spawn_sender(int r, int size, int port, int timeout_ms) {
    return tu_fork(sender, &(Sender){r, size, port, timeout_ms});
}

static void test_gather(void **state) {
    (void)state;
    int port = tu_free_port();
    pid_t kids[3];
    for (int r = 1; r <= 3; r++) kids[r - 1] = spawn_sender(r, 4, port, 10000);
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, stderr);
    RtRankInfo ri = {RT_LAUNCH_TORCHRUN, 0, 4, 0, "127.0.0.1", port};
    char mine = 0;
    void *all = NULL;
    size_t lens[4];
    assert_true(rt_world_gather(NULL, d, &ri, &mine, 1, &all, lens, 10000));
    const char want[] = {0, 1, 1, 2, 2, 2, 3, 3, 3, 3};
    assert_memory_equal(all, want, sizeof want);
    for (int r = 0; r < 4; r++) assert_int_equal(lens[r], r + 1);
    free(all);
    for (int i = 0; i < 3; i++) assert_int_equal(tu_wait(kids[i]), 0);
    /* a world of one: its own bytes */
    RtRankInfo solo = {RT_LAUNCH_SINGLE, 0, 1, 0, "127.0.0.1", port};
    assert_true(rt_world_gather(NULL, d, &solo, "xy", 2, &all, lens, 100));
    assert_memory_equal(all, "xy", 2);
    free(all);
    arena_free(a);
}

static void test_gather_missing_rank(void **state) {
    (void)state;
    int port = tu_free_port();
    pid_t kid = spawn_sender(1, 3, port, 3000); /* rank 2 never sends */
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, NULL);
    RtRankInfo ri = {RT_LAUNCH_TORCHRUN, 0, 3, 0, "127.0.0.1", port};
    void *all = NULL;
    size_t lens[3];
    double t0 = tu_now_s();
    assert_false(rt_world_gather(NULL, d, &ri, "a", 1, &all, lens, 800));
    double took = tu_now_s() - t0;
    assert_true(took >= 0.7 && took < 3.0);
    assert_null(all);
    assert_string_equal(diag_first(d)->msg, "gather: rank 2 sent no results within the timeout");
    assert_int_equal(tu_wait(kid), 0); /* rank 1 delivered */
    RtRankInfo lone = {RT_LAUNCH_TORCHRUN, 1, 2, 1, "127.0.0.1", tu_free_port()};
    t0 = tu_now_s();
    assert_false(rt_world_gather(NULL, d, &lone, "b", 1, &all, lens, 500));
    assert_true(tu_now_s() - t0 < 3.0);
    assert_string_equal(diag_first(d)->next->msg, "gather: rank 1 could not reach rank 0 within the timeout");
    arena_free(a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_topology),
        cmocka_unit_test(test_rows_and_device),
        cmocka_unit_test(test_gather),
        cmocka_unit_test(test_gather_missing_rank),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
