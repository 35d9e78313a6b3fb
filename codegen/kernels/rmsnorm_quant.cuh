// rmsnorm_quant.cuh — the fused group every FP8 linear of DeepSeek-V3 starts
// from: RMSNorm, then 1x128-tile FP8 E4M3 quantization of the normalised row,
// so the activation never goes back to memory between the two.
// Parameters: DSCC_ENTRY, the entry point's name. One block (256 threads, D
// floats of dynamic shared memory) per row of x[rows, D]: y = rmsnorm(x) * w
// and y's codes q with one scale (amax / 448) per 1x128 tile, the scales
// stored K-block-major, scales[tile][row] (rows = the grid's blocks): the
// layout every GEMM of dscc and cuBLASLt's VEC128 scales read.
#include <cuda_bf16.h>
#include <cuda_fp8.h>
// rmsnorm -> act_scale -> quantize, one block of 256 threads per row
__device__ float block_sum(float v, float *red) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = v;
    __syncthreads();
    float t = threadIdx.x < (blockDim.x >> 5) ? red[threadIdx.x] : 0.0f;
    for (int o = 16; o > 0; o >>= 1) t += __shfl_xor_sync(0xffffffffu, t, o);
    return t; // in every lane of warp 0; broadcast below
}
extern "C" __global__ void DSCC_ENTRY(const __nv_bfloat16 *__restrict__ x, const __nv_bfloat16 *__restrict__ w, int D,
                               float eps, __nv_bfloat16 *__restrict__ y, __nv_fp8_e4m3 *__restrict__ q,
                               float *__restrict__ scales) {
    extern __shared__ float row[];          // D values
    __shared__ float red[32], total;
    const size_t base = (size_t)blockIdx.x * D;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < D; i += blockDim.x) {
        float v = __bfloat162float(x[base + i]);
        row[i] = v;
        ss += v * v;
    }
    float t = block_sum(ss, red);
    if (threadIdx.x == 0) total = t;
    __syncthreads();
    const float inv = 1.0f / sqrtf(total / (float)D + eps);
    for (int i = threadIdx.x; i < D; i += blockDim.x) {
        float v = __bfloat162float(w[i]) * (row[i] * inv);
        row[i] = v;
        y[base + i] = __float2bfloat16(v);
    }
    __syncthreads();
    const int tiles = (D + 127) / 128, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    for (int tl = warp; tl < tiles; tl += blockDim.x >> 5) {   // one warp per 1x128 tile
        const int k0 = tl * 128, n = D - k0 < 128 ? D - k0 : 128;
        float m = 0.0f;
        for (int k = lane; k < n; k += 32) m = fmaxf(m, fabsf(row[k0 + k]));
        for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
        const float s = m / 448.0f;
        if (lane == 0) scales[(size_t)tl * gridDim.x + blockIdx.x] = s;
        for (int k = lane; k < n; k += 32)
            q[base + k0 + k] = s > 0.0f ? __nv_fp8_e4m3(row[k0 + k] / s) : __nv_fp8_e4m3(0.0f);
    }
}
