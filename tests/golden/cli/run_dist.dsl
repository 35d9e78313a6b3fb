// dscc run over several ranks: the command-line and launcher errors a user
// meets before any GPU is touched (the runs themselves: tests/emu/dist.sh).
// RUN: dscc run models/deepseek_v3.dsl --config models/tiny/config.json --tokens tests/fixtures/tiny_bf16/tokens.npy --nproc 2; echo "exit=$?"
// CHECK: --nproc 2: several ranks need --backend cuda (expert parallelism runs on GPUs over NCCL; the CPU reference is one process)
// CHECK: exit=2
// RUN: RANK=1 WORLD_SIZE=2 dscc run models/deepseek_v3.dsl --config models/tiny/config.json --tokens tests/fixtures/tiny_bf16/tokens.npy; echo "exit=$?"
// CHECK: rank 1 of 2 (torchrun): several ranks need --backend cuda
// CHECK: exit=2
// RUN: OMPI_COMM_WORLD_RANK=0 OMPI_COMM_WORLD_SIZE=2 dscc run models/deepseek_v3.dsl --tokens tests/fixtures/tiny_bf16/tokens.npy --backend cuda --device 1; echo "exit=$?"
// CHECK: --device picks the GPU of one process; rank 0 of 2 drives GPU LOCAL_RANK (0)
// CHECK: exit=2
// RUN: SLURM_PROCID=3 SLURM_NTASKS=2 dscc run models/deepseek_v3.dsl --tokens tests/fixtures/tiny_bf16/tokens.npy --backend cuda; echo "exit=$?"
// CHECK: Slurm says rank 3 of a world of 2 (SLURM_PROCID, SLURM_NTASKS)
// CHECK: exit=2
// RUN: dscc run models/deepseek_v3.dsl --tokens tests/fixtures/tiny_bf16/tokens.npy --backend cuda --nproc 4 --nodes 3; echo "exit=$?"
// CHECK: --nodes 3 does not divide the world of 4 ranks
// CHECK: exit=2
// RUN: RANK=0 WORLD_SIZE=4 LOCAL_WORLD_SIZE=3 dscc run models/deepseek_v3.dsl --tokens tests/fixtures/tiny_bf16/tokens.npy --backend cuda; echo "exit=$?"
// CHECK: 4 ranks do not make whole nodes of 3 GPUs (LOCAL_WORLD_SIZE)
// CHECK: exit=2
// RUN: dscc run models/deepseek_v3.dsl --tokens tests/fixtures/tiny_bf16/tokens.npy --backend cuda --nodes 2; echo "exit=$?"
// CHECK: --nodes and --gpus-per-node describe several ranks: start them with --nproc N, torchrun, mpirun or srun
// CHECK: exit=2
// RUN: dscc run models/deepseek_v3.dsl --tokens tests/fixtures/tiny_bf16/tokens.npy --backend cuda --nproc 2 --device 1; echo "exit=$?"
// CHECK: --device picks the GPU of one process; with --nproc rank r drives GPU LOCAL_RANK
// CHECK: exit=2
// RUN: dscc run models/deepseek_v3.dsl --tokens tests/fixtures/tiny_bf16/tokens.npy --timeout -1; echo "exit=$?"
// CHECK: --timeout expects a timeout in seconds (a positive number up to 2e6), got '-1'
// CHECK: exit=2
// RUN: DSCC_TIMEOUT=soon dscc run models/deepseek_v3.dsl --tokens tests/fixtures/tiny_bf16/tokens.npy; echo "exit=$?"
// CHECK: DSCC_TIMEOUT expects a timeout in seconds (a positive number up to 2e6), got 'soon'
// CHECK: exit=2
// RUN: dscc run models/deepseek_v3.dsl --tokens tests/fixtures/tiny_bf16/tokens.npy --experts some; echo "exit=$?"
// CHECK: --experts expects spread or replicated, got 'some'
// CHECK: exit=2
// RUN: dscc run models/deepseek_v3.dsl --tokens tests/fixtures/tiny_bf16/tokens.npy --nproc 0; echo "exit=$?"
// CHECK: --nproc expects an integer in 1..4096, got '0'
// CHECK: exit=2
// RUN: OMPI_COMM_WORLD_RANK=0 OMPI_COMM_WORLD_SIZE=2 dscc run models/deepseek_v3.dsl --tokens tests/fixtures/tiny_bf16/tokens.npy --backend cuda --nproc 2; echo "exit=$?"
// CHECK: --nproc starts the ranks itself, but Open MPI already made this process rank 0 of 2: drop --nproc
// CHECK: exit=2
