// route_topk.cuh — DeepSeek-V3's MoE gate after the router GEMM, one
// kernel of a warp a row over the rows route_topk_row.cuh routes (its design
// and parameters; DSCC_ENTRY here the entry point's name). DSCC_ROUTE_FUSE=1's
// router module instances route_topk_row.cuh alone: this entry would never
// launch there, and the emulated NVRTC and the PDL prologue read a module's
// entries from its text, whatever the preprocessor would keep.
#include "route_topk_row.cuh"

#define RT_PASTE2(a, b) a##b
#define RT_PASTE(a, b) RT_PASTE2(a, b)

extern "C" __global__ void __launch_bounds__(256) DSCC_ENTRY(Args a) {
    DSCC_PDL_WAIT(); // the logits are the router GEMM's (programmatic dependent launch: codegen/kernels.h)
    DSCC_PDL_LAUNCH_DEPENDENTS(); // the experts' kernel may start its prologue meanwhile
    const long long row = ((long long)blockIdx.x * blockDim.x + threadIdx.x) / 32;
    const int lane = (int)(threadIdx.x & 31);
    if (row >= (long long)(RT_ROWS)) return;
    RT_PASTE(DSCC_ENTRY, _row)(a, row, lane);
}
#undef RT_PASTE
#undef RT_PASTE2
#undef RT_ROWS
#undef RT_E
#undef RT_K
#undef RT_NG
#undef RT_TG
#undef RT_GT
#undef RT_SEG
#undef RT_LOGIT
#undef RT_BIAS
#undef RT_IDX
#undef RT_W
#undef RT_NORM
#undef RT_EPS
#undef RT_SCALE
