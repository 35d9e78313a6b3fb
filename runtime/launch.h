/* launch.h — `dscc run --nproc N`: start N local ranks and supervise them.
 *
 * The launcher runs one program N times with torchrun-style variables
 * (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR=127.0.0.1 and
 * a free MASTER_PORT), so rt_rank_info in each rank sees a torchrun world;
 * the rank-identity variables of an outer launcher (Open MPI's
 * OMPI_COMM_WORLD_*, Slurm's SLURM_PROCID/NTASKS/NPROCS/LOCALID) are taken
 * out, everything else (NCCL_*, CUDA_VISIBLE_DEVICES, ...) passes through
 * untouched. Each rank's stdout and stderr come back through pipes and are
 * written to the launcher's own, line by line, prefixed "[rank R] " (one
 * write per line: lines of different ranks never mix). Each rank leads its
 * own process group, so signals reach it (and whatever it started) only
 * through the launcher: the first rank that fails (non-zero exit, or a
 * signal) makes the launcher send SIGTERM to the others and SIGKILL after a
 * grace period; SIGINT, SIGTERM or SIGHUP to the launcher is forwarded (a
 * second one kills). The ranks get SIGTERM if the launcher itself dies.
 * The launcher sleeps in poll() on the pipes and a self-pipe its signal
 * handlers write to: no busy waiting, and every wait has a deadline once
 * something has gone wrong. Linux only (prctl, pipe2). */
#ifndef DSCC_RT_LAUNCH_H
#define DSCC_RT_LAUNCH_H

#include "support/support.h"

typedef struct {
    int nproc;               /* ranks to start, 1..4096 */
    const char *exe;         /* what to execute; NULL = argv[0] (searched in PATH without a '/'). "/proc/self/exe" reruns this program */
    char *const *argv;       /* the ranks' argv, NULL-terminated */
    const char *const *env;  /* the environment to start from (NAME=VALUE, NULL-terminated); NULL = this process's */
    const char *master_addr; /* MASTER_ADDR for the ranks; NULL = 127.0.0.1 */
    int master_port;         /* MASTER_PORT; 0 = a free one (bound to port 0 and released) */
    int grace_ms;            /* between SIGTERM and SIGKILL; 0 = 5000 */
    int out_fd, err_fd;      /* where the prefixed lines go; 0 = 1 and 2 */
    bool stdin_rank0;        /* rank 0 reads this process's standard input (a prompt, a chat); the others, and
                              * rank 0 without it, read /dev/null */
} RtLaunchOptions;

typedef struct {
    int exit_code;      /* for the launcher's exit: 0 if every rank exited 0; else the first failure's exit code, or 128 +
                         * its signal; 128 + the signal that interrupted the launcher; 127 if a rank could not be started */
    int failed_rank;    /* the first rank to fail; -1 if none did (or the launcher was interrupted first) */
    int failed_status;  /* its wait status */
    int interrupted_by; /* the signal that interrupted the launcher, 0 if none */
    int master_port;    /* the port the ranks were given */
} RtLaunchResult;

/* Starts the ranks, relays their output, waits for all of them. True iff
 * every rank exited 0; otherwise reports one error naming what happened
 * (the rank and its exit code or signal; the interrupting signal; the
 * program that could not be started) and fills `res` either way. */
bool rt_launch(DiagEngine *d, const RtLaunchOptions *o, RtLaunchResult *res);

/* argv (argc entries) without option `opt` ("--nproc") and its value: both
 * "--nproc N" and "--nproc=N" go (every occurrence; nothing after "--").
 * NULL-terminated, in the arena; *argc_out is its length. */
char **rt_launch_strip_option(Arena *a, int argc, char *const *argv, const char *opt, bool has_value, int *argc_out);

#endif
