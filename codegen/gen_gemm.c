/* gen_gemm.c — the linear and fp8_linear templates: y[M, O] = x[M, K] . w[O, K]^T,
 * FP8 with DeepSeek's 1x128 activation and 128x128 weight block scales
 * applied per 128-wide K block in f32. A 64x64 output tile per block. */
#include "codegen/gen_internal.h"

bool cg_gemm(Gen *G, const IrNode *n, bool fp8) {
    const IrNode *x = n->ops[0], *w = n->ops[fp8 ? 2 : 1];
    if (w->type.rank != 2) {
        G->why = "the weight of a linear must be a matrix";
        return false;
    }
    IrDim K = w->type.dims[1], O = w->type.dims[0], M;
    if (!ir_dim_div(ir_type_numel(&x->type), K, &M)) {
        G->why = "rows of x do not divide";
        return false;
    }
    int sx = cg_slot_value(G, x), sw = cg_slot_value(G, w), sy = cg_slot_value(G, n);
    int sxs = fp8 ? cg_slot_value(G, n->ops[1]) : 0, sws = fp8 ? cg_slot_value(G, n->ops[3]) : 0;
    cg_head(G, fp8 ? "fp8_linear: 64x64 tile, FP8 codes with 1x128 / 128x128 block scales" : "linear: 64x64 tile");
    StrBuf *b = &G->decl;
    sb_printf(b, "    __shared__ float As[32][68], Bs[32][68];\n"
                 "    const long long M = %s, K = %s, O = %s, nkb = (K + 127) / 128;\n"
                 "    const long long nt = (O + 63) / 64, m0 = blockIdx.x / nt * 64, o0 = blockIdx.x %% nt * 64;\n"
                 "    const int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;\n"
                 "    float acc[4][4], part[4][4];\n"
                 "    for (int u = 0; u < 4; u++)\n        for (int v = 0; v < 4; v++) acc[u][v] = part[u][v] = 0.0f;\n"
                 "    for (long long k0 = 0; k0 < K; k0 += 32) {\n"
                 "        for (int e = threadIdx.x; e < 2048; e += 256) {\n"
                 "            const int r = e >> 5, c = e & 31;\n"
                 "            const long long k = k0 + c, m = m0 + r, o = o0 + r;\n"
                 "            As[c][r] = m < M && k < K ? L%d(a, m * K + k) : 0.0f;\n"
                 "            Bs[c][r] = o < O && k < K ? L%d(a, o * K + k) : 0.0f;\n"
                 "        }\n"
                 "        __syncthreads();\n"
                 "#pragma unroll 8\n"
                 "        for (int c = 0; c < 32; c++) {\n"
                 "            float av[4], bv[4];\n"
                 "            for (int u = 0; u < 4; u++) av[u] = As[c][ty + 16 * u], bv[u] = Bs[c][tx + 16 * u];\n"
                 "            for (int u = 0; u < 4; u++)\n                for (int v = 0; v < 4; v++) part[u][v] += av[u] * bv[v];\n"
                 "        }\n"
                 "        __syncthreads();\n",
              cg_dim(G, M), cg_dim(G, K), cg_dim(G, O), sx, sw);
    if (fp8)
        sb_printf(b, "        if ((k0 + 32) %% 128 == 0 || k0 + 32 >= K) {  // end of a 128-wide K block: scale and accumulate\n"
                     "            const long long kb = k0 / 128;\n"
                     "            for (int u = 0; u < 4; u++)\n"
                     "                for (int v = 0; v < 4; v++) {\n"
                     "                    const long long m = m0 + ty + 16 * u, o = o0 + tx + 16 * v;\n"
                     "                    if (m < M && o < O) acc[u][v] += part[u][v] * L%d(a, m * nkb + kb) * L%d(a, o / 128 * nkb + kb);\n"
                     "                    part[u][v] = 0.0f;\n"
                     "                }\n"
                     "        }\n",
                  sxs, sws);
    sb_puts(b, "    }\n");
    sb_printf(b, "    for (int u = 0; u < 4; u++)\n"
                 "        for (int v = 0; v < 4; v++) {\n"
                 "            const long long m = m0 + ty + 16 * u, o = o0 + tx + 16 * v;\n"
                 "            if (m < M && o < O) S%d(a, m * O + o, %s);\n"
                 "        }\n}\n",
              sy, fp8 ? "acc[u][v]" : "part[u][v]");
    cg_phase(G, CG_LAUNCH_BLOCK, M, 64, O, 64, 0);
    return true;
}

