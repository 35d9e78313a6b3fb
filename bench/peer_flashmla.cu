// peer_flashmla.cu — FlashMLA's dense MLA decode kernel for Hopper (the
// peer the issue measures dscc's MLA decode against) timed on the shape
// bench_mla times: batch 32, 4,097 keys, 128 query heads, one latent KV head
// of 576 (its first 512 the value), bf16. Our own harness around FlashMLA's
// C++ entry points (csrc/api/dense_decode.h does the same with torch): the
// scheduler metadata once, then per run the split-KV kernel and its combine,
// each timed by events right around them, as bench_mla times dscc's decode +
// combine. FLOPs are bench_mla's count, 2 B H T (576 + 512).
//
// FlashMLA is not part of dscc: bench/build_peer_flashmla.sh compiles this
// file against a copy of github.com/deepseek-ai/FlashMLA (with its cutlass
// submodule) in the ignored folder .peers/flashmla and writes
// build/bench/peer_flashmla; tests/gpu/rounds.sh's `flashmla` part runs it
// beside bench_mla in the same call.
//
// Before timing, the output of two batch rows (the first and the last) is
// checked against a CPU reference in double precision from the same bf16
// inputs: a wrong launch (strides, scale) fails the run (exit 1) instead of
// timing a kernel that computes something else.
//
//   peer_flashmla [--batch B] [--ctx T] [--reps N]
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <cuda_runtime.h>
#include <cuda_bf16.h>

#include "params.h"
#include "sm90/decode/dense/splitkv_mla.h"
#include "smxx/decode/combine/combine.h"
#include "smxx/decode/get_decoding_sched_meta/get_decoding_sched_meta.h"

#define CK(call)                                                                                      \
    do {                                                                                              \
        cudaError_t e_ = (call);                                                                      \
        if (e_ != cudaSuccess) {                                                                      \
            fprintf(stderr, "peer_flashmla: %s (%s:%d)\n", cudaGetErrorString(e_), __FILE__, __LINE__); \
            exit(1);                                                                                  \
        }                                                                                             \
    } while (0)

static constexpr int HQ = 128, DK = 576, DV = 512, PAGE = 64;

static float bf(__nv_bfloat16 v) { return __bfloat162float(v); }

// a deterministic value in [-1, 1) from an index (a 32-bit hash), rounded to bf16
static __nv_bfloat16 rnd(uint64_t i, uint32_t seed) {
    uint32_t x = (uint32_t)(i * 0x9E3779B1u) ^ seed;
    x ^= x >> 15, x *= 0x2C1B3C6Du, x ^= x >> 12, x *= 0x297A2D39u, x ^= x >> 15;
    return __float2bfloat16((float)(x >> 8) / 8388608.0f - 1.0f);
}

// worst relative L2 error over the heads of batch row b against a double-precision reference
static double check_row(const std::vector<__nv_bfloat16> &q, const std::vector<__nv_bfloat16> &k, const std::vector<__nv_bfloat16> &out,
                        long long b, long long T, long long nblk, float scale) {
    double worst = 0;
    std::vector<double> s((size_t)T), o(DV);
    for (int h = 0; h < HQ; h++) {
        const __nv_bfloat16 *qh = &q[((size_t)b * HQ + h) * DK];
        double m = -1e300;
        for (long long t = 0; t < T; t++) {
            const __nv_bfloat16 *kt = &k[((size_t)b * nblk * PAGE + t) * DK];
            double acc = 0;
            for (int d = 0; d < DK; d++) acc += (double)bf(qh[d]) * bf(kt[d]);
            s[t] = acc * scale;
            m = std::max(m, s[t]);
        }
        double l = 0;
        std::fill(o.begin(), o.end(), 0.0);
        for (long long t = 0; t < T; t++) {
            double p = exp(s[t] - m);
            l += p;
            const __nv_bfloat16 *kt = &k[((size_t)b * nblk * PAGE + t) * DK];
            for (int d = 0; d < DV; d++) o[d] += p * bf(kt[d]);
        }
        double num = 0, den = 0;
        for (int d = 0; d < DV; d++) {
            double ref = o[d] / l, got = bf(out[((size_t)b * HQ + h) * DV + d]);
            num += (got - ref) * (got - ref), den += ref * ref;
        }
        worst = std::max(worst, sqrt(num / (den > 0 ? den : 1)));
    }
    return worst;
}

static bool parse(int argc, char **argv, long long *B, long long *T, int *reps) {
    for (int i = 1; i < argc; i++) {
        long long *dst = !strcmp(argv[i], "--batch") ? B : !strcmp(argv[i], "--ctx") ? T : nullptr;
        if ((dst || !strcmp(argv[i], "--reps")) && i + 1 < argc) {
            char *end;
            long long v = strtoll(argv[++i], &end, 10);
            if (*end || v < 1 || v > (dst == T ? 1 << 20 : 4096)) return false;
            if (dst) *dst = v;
            else *reps = (int)v;
            continue;
        }
        return false;
    }
    return true;
}

int main(int argc, char **argv) {
    long long B = 32, T = 4097;
    int reps = 20;
    if (!parse(argc, argv, &B, &T, &reps)) {
        fprintf(stderr, "usage: peer_flashmla [--batch B (1-4096)] [--ctx T (1-1048576)] [--reps N (1-4096)]\n");
        return 2;
    }
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    const long long nblk = (T + PAGE - 1) / PAGE; // pages a row
    const double kv_bytes = (double)B * nblk * PAGE * DK * 2; // held on the host as well (the reference)
    if (kv_bytes > 0.5 * (double)prop.totalGlobalMem) {
        fprintf(stderr, "peer_flashmla: batch %lld x %lld keys needs %.1f GB of keys, more than half the GPU's %.1f GB\n", B, T,
                kv_bytes / 1e9, (double)prop.totalGlobalMem / 1e9);
        return 2;
    }
    const float scale = 1.0f / sqrtf(192.0f);     // 1/sqrt(qk_nope + qk_rope) of V3 (YaRN's factor left out)
    std::vector<__nv_bfloat16> hq((size_t)B * HQ * DK), hk((size_t)B * nblk * PAGE * DK), ho((size_t)B * HQ * DV);
    for (size_t i = 0; i < hq.size(); i++) hq[i] = rnd(i, 0x51u);
    for (size_t i = 0; i < hk.size(); i++) hk[i] = rnd(i, 0xA7u);
    std::vector<int> table((size_t)B * nblk), lens((size_t)B, (int)T);
    for (size_t i = 0; i < table.size(); i++) table[i] = (int)i; // each row's pages in order, rows one after another

    // FlashMLA's grid: num_sm_parts as dense_decode.h chooses it for one KV head and one query position
    const int tiles = (HQ + 63) / 64, parts = std::max(prop.multiProcessorCount / tiles, 1);
    __nv_bfloat16 *q, *k, *o;
    float *lse, *lse_acc, *o_acc;
    int *dtable, *dlens, *nsplits;
    DecodingSchedMeta *meta;
    const long long total_splits = B + parts;
    CK(cudaMalloc(&q, hq.size() * 2));
    CK(cudaMalloc(&k, hk.size() * 2));
    CK(cudaMalloc(&o, ho.size() * 2));
    CK(cudaMalloc(&lse, (size_t)B * HQ * 4));
    CK(cudaMalloc(&lse_acc, (size_t)total_splits * HQ * 4));
    CK(cudaMalloc(&o_acc, (size_t)total_splits * HQ * DV * 4));
    CK(cudaMalloc(&dtable, table.size() * 4));
    CK(cudaMalloc(&dlens, lens.size() * 4));
    CK(cudaMalloc(&nsplits, (size_t)(B + 1) * 4));
    CK(cudaMalloc(&meta, (size_t)parts * sizeof(DecodingSchedMeta)));
    CK(cudaMemcpy(q, hq.data(), hq.size() * 2, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(k, hk.data(), hk.size() * 2, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(dtable, table.data(), table.size() * 4, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(dlens, lens.data(), lens.size() * 4, cudaMemcpyHostToDevice));
    cudaStream_t st;
    CK(cudaStreamCreate(&st));

    // the schedule: 64-key blocks, a fixed overhead of 5 blocks a split (dense_decode.h's values)
    GetDecodeSchedMetaParams mp = {(int)B, 1, PAGE, 5, -1, -1, nullptr, nullptr, dlens, meta, nsplits, parts, st};
    smxx::decode::run_get_decoding_sched_meta_kernel(mp);
    CK(cudaGetLastError());

    // one query position, one KV head: q is [B][128 rows][1 head][576], out [B][1 head][128 rows][512]
    DenseAttnDecodeParams p = {};
    p.b = (int)B, p.s_q = 1, p.q_seq_per_hk = HQ, p.d = DK, p.d_v = DV, p.h_q = HQ, p.h_k = 1;
    p.num_blocks = (int)(B * nblk), p.q_head_per_hk = HQ, p.is_causal = false;
    p.scale_softmax = scale, p.scale_softmax_log2 = scale * (float)M_LOG2E;
    p.q_ptr = q, p.k_ptr = k, p.o_ptr = o, p.softmax_lse_ptr = lse;
    p.q_batch_stride = (long long)HQ * DK, p.q_row_stride = DK, p.q_head_stride = DK;
    p.k_batch_stride = (long long)PAGE * DK, p.k_row_stride = DK, p.k_head_stride = DK;
    p.o_batch_stride = (long long)HQ * DV, p.o_row_stride = DV, p.o_head_stride = (long long)HQ * DV;
    p.block_table = dtable, p.block_table_batch_stride = nblk, p.page_block_size = PAGE, p.seqlens_k_ptr = dlens;
    p.tile_scheduler_metadata_ptr = meta, p.num_sm_parts = parts, p.num_splits_ptr = nsplits;
    p.total_num_splits = (int)total_splits, p.softmax_lseaccum_ptr = lse_acc, p.oaccum_ptr = o_acc;
    p.stream = st;

    CombineParams cp = {};
    cp.b = (int)B, cp.s_q = 1, cp.h_q = HQ, cp.d_v = DV;
    cp.lse = lse, cp.out = o;
    cp.stride_lse_b = HQ, cp.stride_lse_s_q = HQ;
    cp.stride_o_b = HQ * DV, cp.stride_o_s_q = HQ * DV, cp.stride_o_h_q = DV;
    cp.lse_accum = lse_acc, cp.o_accum = o_acc;
    cp.stride_lse_accum_split = HQ, cp.stride_lse_accum_s_q = HQ;
    cp.stride_o_accum_split = HQ * DV, cp.stride_o_accum_s_q = HQ * DV, cp.stride_o_accum_h_q = DV;
    cp.tile_scheduler_metadata_ptr = meta, cp.num_splits_ptr = nsplits, cp.num_sm_parts = parts;
    cp.attn_sink = nullptr, cp.stream = st;

    auto run = [&](bool combine) {
        sm90::run_flash_splitkv_mla_kernel<cutlass::bfloat16_t>(p);
        if (combine) smxx::decode::run_flash_mla_combine_kernel<cutlass::bfloat16_t>(cp);
    };
    run(true);
    CK(cudaStreamSynchronize(st));
    CK(cudaMemcpy(ho.data(), o, ho.size() * 2, cudaMemcpyDeviceToHost));
    double e0 = check_row(hq, hk, ho, 0, T, nblk, scale), e1 = check_row(hq, hk, ho, B - 1, T, nblk, scale);
    const double bound = 1e-2; // bf16 output: ~4e-3 expected
    printf("FlashMLA %s on %s, batch %lld, %lld keys, %d heads: rel L2 vs CPU (rows 0, %lld) %.2e %.2e (bound %.0e)\n",
           FLASHMLA_COMMIT, prop.name, B, T, HQ, B - 1, e0, e1, bound);
    if (!(e0 < bound && e1 < bound)) {
        fprintf(stderr, "peer_flashmla: FlashMLA's output is wrong (rel L2 %.2e, %.2e): not timed\n", e0, e1);
        return 1;
    }

    const double flops = 2.0 * (double)B * HQ * (double)T * (DK + DV);
    cudaEvent_t a, b;
    CK(cudaEventCreate(&a));
    CK(cudaEventCreate(&b));
    printf("| FlashMLA | median ms | TFLOPS | best ms | TFLOPS |\n|---|---|---|---|---|\n");
    for (int combine = 1; combine >= 0; combine--) {
        std::vector<float> ms((size_t)reps);
        for (int w = 0; w < 3; w++) run(combine);
        for (int r = 0; r < reps; r++) {
            CK(cudaEventRecord(a, st));
            run(combine);
            CK(cudaEventRecord(b, st));
            CK(cudaEventSynchronize(b));
            CK(cudaEventElapsedTime(&ms[r], a, b));
        }
        std::sort(ms.begin(), ms.end());
        double med = ms[(size_t)reps / 2], best = ms[0];
        printf("| %s | %.4f | %.1f | %.4f | %.1f |\n", combine ? "split-KV kernel + combine" : "split-KV kernel alone", med,
               flops / (med * 1e-3) / 1e12, best, flops / (best * 1e-3) / 1e12);
    }
    CK(cudaGetLastError());
    return 0;
}
