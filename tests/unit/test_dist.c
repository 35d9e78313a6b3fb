/* test_dist.c — rank discovery from each launcher's variables and the TCP
 * rendezvous on loopback with real processes: every rank receives rank 0's
 * blob; a rank that never comes makes rank 0 fail, naming it, within the
 * timeout; a rank with no rank 0 fails within the timeout too. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/runtime.h"
#include "tests/unit/testutil.h"

static void test_rank_info(void **state) {
    (void)state;
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, NULL);
    RtRankInfo ri;
    const char *single[] = {NULL};
    assert_true(rt_rank_info(a, d, single, &ri));
    assert_int_equal(ri.launcher, RT_LAUNCH_SINGLE);
    assert_int_equal(ri.size, 1);
    assert_string_equal(ri.master_addr, "127.0.0.1");
    assert_int_equal(ri.master_port, 29500);
    /* mpirun inside a Slurm job: Open MPI's numbers win */
    const char *both[] = {"SLURM_PROCID=0", "SLURM_NTASKS=2", "OMPI_COMM_WORLD_RANK=3", "OMPI_COMM_WORLD_SIZE=4",
                          "OMPI_COMM_WORLD_LOCAL_RANK=1", "MASTER_ADDR=node7", "MASTER_PORT=6000", NULL};
    assert_true(rt_rank_info(a, d, both, &ri));
    assert_int_equal(ri.launcher, RT_LAUNCH_OPENMPI);
    assert_int_equal(ri.rank, 3);
    assert_int_equal(ri.size, 4);
    assert_int_equal(ri.local_rank, 1);
    assert_string_equal(ri.master_addr, "node7");
    assert_int_equal(ri.master_port, 6000);
    const char *slurm[] = {"SLURM_PROCID=5", "SLURM_NTASKS=8", "SLURM_LOCALID=1", NULL};
    assert_true(rt_rank_info(a, d, slurm, &ri));
    assert_int_equal(ri.launcher, RT_LAUNCH_SLURM);
    assert_int_equal(ri.local_rank, 1);
    assert_string_equal(ri.master_addr, "127.0.0.1");
    const char *srun[] = {"SLURM_PROCID=5", "SLURM_NTASKS=8", "SLURM_JOB_NODELIST=gpu[07-09,12]", "SLURM_STEP_NODELIST=h[3,5]-ib", NULL};
    assert_true(rt_rank_info(a, d, srun, &ri));
    assert_string_equal(ri.master_addr, "h3-ib"); /* the step's first host */
    const char *srun_master[] = {"SLURM_PROCID=5", "SLURM_NTASKS=8", "SLURM_JOB_NODELIST=gpu[07-09]", "MASTER_ADDR=login1", NULL};
    assert_true(rt_rank_info(a, d, srun_master, &ri));
    assert_string_equal(ri.master_addr, "login1");
    assert_string_equal(rt_hostlist_first(a, "gpu[07-09,12],cpu3"), "gpu07");
    assert_string_equal(rt_hostlist_first(a, "rack[2-3]-n[010-011]"), "rack2-n010");
    assert_string_equal(rt_hostlist_first(a, "node1,node2"), "node1");
    assert_string_equal(rt_hostlist_first(a, "single"), "single");
    const char *torch[] = {"RANK=2", "WORLD_SIZE=4", "DSCC_MASTER_PORT=7000", "MASTER_PORT=6000", NULL};
    assert_true(rt_rank_info(a, d, torch, &ri));
    assert_int_equal(ri.launcher, RT_LAUNCH_TORCHRUN);
    assert_int_equal(ri.local_rank, 2);
    assert_int_equal(ri.master_port, 7000);
    const char *bad1[] = {"RANK=4", "WORLD_SIZE=4", NULL};
    assert_false(rt_rank_info(a, d, bad1, &ri));
    assert_string_equal(diag_first(d)->msg, "torchrun says rank 4 of a world of 4 (RANK, WORLD_SIZE)");
    const char *bad2[] = {"SLURM_PROCID=x", "SLURM_NTASKS=2", NULL};
    assert_false(rt_rank_info(a, d, bad2, &ri));
    assert_string_equal(diag_first(d)->next->msg, "launcher variable SLURM_PROCID is 'x', not a non-negative integer");
    const char *bad3[] = {"OMPI_COMM_WORLD_RANK=0", NULL};
    assert_false(rt_rank_info(a, d, bad3, &ri));
    assert_string_equal(diag_first(d)->next->next->msg, "launcher variable OMPI_COMM_WORLD_SIZE is missing");
    const char *bad4[] = {"MASTER_PORT=70000", NULL};
    assert_false(rt_rank_info(a, d, bad4, &ri));
    arena_free(a);
}

/* Rank r of `size`, a child: exit 0 iff it received `expect`. */
typedef struct {
    int r, size, port, timeout_ms;
    const uint8_t *expect;
} Joiner;

static int joiner(void *arg) {
    const Joiner *j = arg;
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, NULL);
    RtRankInfo ri = {RT_LAUNCH_TORCHRUN, j->r, j->size, j->r, "127.0.0.1", j->port};
    uint8_t got[128] = {0};
    return rt_rendezvous(d, &ri, got, sizeof got, j->timeout_ms) && memcmp(got, j->expect, sizeof got) == 0 ? 0 : 1;
}

static pid_t spawn_rank(int r, int size, int port, const uint8_t *expect, int timeout_ms) {
    return tu_fork(joiner, &(Joiner){r, size, port, timeout_ms, expect});
}

static void test_rendezvous(void **state) {
    (void)state;
    uint8_t blob[128];
    srand((unsigned)time(NULL));
    for (size_t i = 0; i < sizeof blob; i++) blob[i] = (uint8_t)rand();
    int port = tu_free_port();
    pid_t kids[3];
    for (int r = 1; r <= 3; r++) kids[r - 1] = spawn_rank(r, 4, port, blob, 10000);
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, stderr);
    RtRankInfo ri = {RT_LAUNCH_TORCHRUN, 0, 4, 0, "127.0.0.1", port};
    assert_true(rt_rendezvous(d, &ri, blob, sizeof blob, 10000));
    for (int i = 0; i < 3; i++) assert_int_equal(tu_wait(kids[i]), 0);
    arena_free(a);
}

static void test_missing_rank_times_out(void **state) {
    (void)state;
    uint8_t blob[128] = {1, 2, 3};
    int port = tu_free_port();
    pid_t kid = spawn_rank(1, 3, port, blob, 3000); /* rank 2 never starts */
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, NULL);
    RtRankInfo ri = {RT_LAUNCH_TORCHRUN, 0, 3, 0, "127.0.0.1", port};
    double t0 = tu_now_s();
    assert_false(rt_rendezvous(d, &ri, blob, sizeof blob, 800));
    double took = tu_now_s() - t0;
    assert_true(took >= 0.7 && took < 3.0);
    assert_string_equal(diag_first(d)->msg, "rendezvous: rank 2 did not join within the timeout (2 of 3 ranks present)");
    assert_int_equal(tu_wait(kid), 1); /* rank 1 got nothing */
    /* and a rank whose rank 0 never comes */
    RtRankInfo lone = {RT_LAUNCH_TORCHRUN, 1, 2, 1, "127.0.0.1", tu_free_port()};
    t0 = tu_now_s();
    assert_false(rt_rendezvous(d, &lone, blob, sizeof blob, 500));
    assert_true(tu_now_s() - t0 < 3.0);
    assert_non_null(strstr(diag_first(d)->next->msg, "rank 1 could not reach rank 0 at 127.0.0.1:"));
    arena_free(a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rank_info),
        cmocka_unit_test(test_rendezvous),
        cmocka_unit_test(test_missing_rank_times_out),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
