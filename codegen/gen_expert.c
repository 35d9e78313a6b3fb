/* gen_expert.c — the expert_linear and fp8_expert_linear templates: each
 * routed row (token, slot) times the weight of the expert idx names.
 *
 * fp8_expert_linear on FP8 codes is a grouped GEMM, one launch for all
 * experts: a first phase (one block) sorts the routed rows by expert
 * (counting sort in shared memory) and cuts each expert's rows into tiles
 * of 64; the second runs the tensor-core FP8 tile of gen_gemm.c on every
 * (tile, 128 outputs), gathering its rows of x through the permutation and
 * scattering results back to their rows. There are at most ceil(R/64) + E
 * tiles for R routed rows and E experts, so that many blocks per output
 * tile are launched and the ones past the real count return at once.
 * Otherwise: one block per routed row and 64 outputs, the row in shared
 * memory. Slots with expert id -1 (dispatched rows whose expert is on
 * another GPU, or that nobody sent: docs/IR.md) are not computed; their
 * outputs are written as 0 (the grouped GEMM sorts them into one more
 * bucket, E, whose tiles only store zeros), as the CPU executor does. */
#include "codegen/gen_internal.h"

/* fp8_expert_linear as a grouped tensor-core GEMM (see the file comment). */
static bool expert_fp8_grouped(Gen *G, const IrNode *n, int64_t I) {
    const IrNode *x = n->ops[0], *w = n->ops[2], *idx = n->ops[4];
    int64_t E = w->type.dims[0].coeff;
    bool bcast = x->type.rank == 2;
    IrDim R = ir_type_numel(&idx->type);
    int sx = cg_slot_value(G, x), sxs = cg_slot_value(G, n->ops[1]), sw = cg_slot_value(G, w), sws = cg_slot_value(G, n->ops[3]);
    int si = cg_slot_value(G, idx), sy = cg_slot_value(G, n);
    int64_t EB = E + 1;                                      /* buckets: the experts, then the slots of id -1 */
    int sc = cg_slot_scratch(G, n, ir_dim_const(2 * EB + 1)); /* per bucket: row count, first sorted row; then the tile count */
    int sp0 = cg_slot_scratch(G, n, R);                      /* sorted position -> routed row */
    int st = cg_slot_scratch(G, n, R);                       /* tile -> its first sorted position (tiles <= R) */
    const char *Ks = cg_dim(G, idx->type.dims[1]);
    cg_head(G, "fp8_expert_linear, phase 1: routed rows sorted by expert (bucket E: id -1), cut into tiles of 64");
    sb_printf(&G->decl, "    const int E = %lld, EB = E + 1;\n"
                        "    const long long R = %s;\n"
                        "    __shared__ int cnt[%lld], cur[%lld];\n"
                        "    int *C = (int *)a.t[%d], *P = (int *)a.t[%d], *T = (int *)a.t[%d];\n"
                        "    for (int e = threadIdx.x; e < EB; e += 256) cnt[e] = 0;\n"
                        "    __syncthreads();\n"
                        "    for (long long r = threadIdx.x; r < R; r += 256) {\n"
                        "        const float f = L%d(a, r);\n"
                        "        if (f == -1.0f) atomicAdd(&cnt[E], 1);  // a slot whose expert is elsewhere\n"
                        "        else if (!(f >= 0.0f && f < (float)E)) fail(a, f);\n"
                        "        else atomicAdd(&cnt[(int)f], 1);\n"
                        "    }\n"
                        "    __syncthreads();\n"
                        "    if (threadIdx.x == 0) {\n"
                        "        int base = 0, nt = 0;\n"
                        "        for (int e = 0; e < EB; e++) {\n"
                        "            C[e] = cnt[e];\n"
                        "            C[EB + e] = cur[e] = base;\n"
                        "            for (int s = 0; s < cnt[e]; s += 64) T[nt++] = base + s;\n"
                        "            base += cnt[e];\n"
                        "        }\n"
                        "        C[2 * EB] = nt;\n"
                        "    }\n"
                        "    __syncthreads();\n"
                        "    for (long long r = threadIdx.x; r < R; r += 256) {\n"
                        "        const float f = L%d(a, r);\n"
                        "        if (f == -1.0f) P[atomicAdd(&cur[E], 1)] = (int)r;\n"
                        "        else if (f >= 0.0f && f < (float)E) P[atomicAdd(&cur[(int)f], 1)] = (int)r;\n"
                        "    }\n"
                        "}\n",
              (long long)E, cg_dim(G, R), (long long)EB, (long long)EB, sc, sp0, st, si, si);
    cg_phase(G, CG_LAUNCH_BLOCK, ir_dim_const(1), 1, ir_dim_const(1), 1, 0);
    IrDim O = w->type.dims[1];
    int64_t nt = (O.coeff + 127) / 128, nkb = (I + 127) / 128;
    int64_t parts = cg_k_splits(1, 2 * nt, nkb); /* the most parts any step takes: R = 1, 2 tiles at most */
    int sp = parts > 1 ? cg_slot_scratch(G, n, ir_dim_const(parts * 64 * O.coeff)) : -1;
    if (sp >= 0) sb_puts(&G->ldr, "__device__ __forceinline__ " CG_K_SPLITS_FN(CG_QUOTE) "\n");
    for (int split = 0; split < (sp >= 0 ? 2 : 1); split++) {
        cg_head(G, split ? "fp8_expert_linear, phase 2, K split between blocks (at most 64 routed rows): partial tiles to scratch"
                         : "fp8_expert_linear, phase 2: tensor-core FP8 tile per (expert tile of 64 rows, 128 outputs)");
        sb_printf(&G->decl, "    extern __shared__ __align__(16) unsigned char sm[];\n"
                            "    __shared__ int srow[64], yrow[64];\n"
                            "    const int E = %lld, EB = E + 1;\n"
                            "    const int *C = (const int *)a.t[%d], *P = (const int *)a.t[%d], *T = (const int *)a.t[%d];\n",
                  (long long)E, sc, sp0, st);
        if (split)
            sb_printf(&G->decl, "    const long long R = %s, nt = %lldLL, tmax = (R + 63) / 64 + (EB < R ? EB : R);  // the grid's tiles\n"
                                "    const long long ns = cg_k_splits(R, tmax * nt, %lldLL), kper = (%lldLL + ns - 1) / ns;\n"
                                "    const long long ot = blockIdx.x %% nt, t = blockIdx.x / nt %% tmax, kpart = blockIdx.x / nt / tmax;\n",
                      cg_dim(G, R), (long long)nt, (long long)nkb, (long long)nkb);
        else sb_printf(&G->decl, "    const long long nt = (%s + 127) / 128, ot = blockIdx.x %% nt, t = blockIdx.x / nt;\n", cg_dim(G, O));
        sb_printf(&G->decl, "    if (t >= C[2 * EB]) return;  // past the tiles this step has\n"
                            "    const int start = T[t];\n"
                            "    const long long e = (long long)L%d(a, P[start]), b = e < 0 ? E : e;\n"
                            "    const int nr = C[EB + b] + C[b] - start < 64 ? C[EB + b] + C[b] - start : 64;\n"
                            "    if (threadIdx.x < 64) {\n"
                            "        const int r = (int)threadIdx.x < nr ? P[start + threadIdx.x] : -1;\n"
                            "        yrow[threadIdx.x] = r;\n"
                            "        srow[threadIdx.x] = r < 0 ? -1 : %s;\n"
                            "    }\n"
                            "    __syncthreads();\n"
                            "    if (e < 0) {  // slots of id -1: zeros, nothing computed\n"
                            "        const long long O = %s;\n"
                            "        for (int k = threadIdx.x; k < nr * 128; k += blockDim.x) {\n"
                            "            const long long r = yrow[k / 128], o = ot * 128 + k %% 128;\n"
                            "            if (o < O) %s;\n"
                            "        }\n"
                            "        return;\n"
                            "    }\n",
                  si, bcast ? arena_printf(G->a, "(int)(r / %s)", Ks) : "r", cg_dim(G, O),
                  split ? arena_printf(G->a, "st_f32(a.t[%d], (kpart * 64 + r) * O + o, 0.0f)", sp) : arena_printf(G->a, "S%d(a, r * O + o, 0.0f)", sy));
        if (split)
            cg_mma_tile_part(G, false, false, sx, sxs, sw, sws, sy, I, cg_dim(G, O), "kpart * kper",
                             "kpart * kper + kper < nkb ? kpart * kper + kper : nkb", sp); /* yrow < R <= 64: [part][row][O] */
        else cg_mma_tile(G, false, false, sx, sxs, sw, sws, sy, I, cg_dim(G, O));
        sb_puts(&G->decl, "}\n");
        cg_phase(G, CG_LAUNCH_BLOCK, R, 64, O, 128, CG_TILE_SMEM(G));
        G->phases[G->nphases - 1].plus = EB;
        if (sp >= 0) cg_phase_k(G, split ? CG_ITEMS_K_SPLIT : CG_ITEMS_K_WHOLE, nkb);
    }
    if (sp >= 0) /* the grid's tiles over M = R routed rows, as the split phase counts them */
        cg_k_sum(G, "fp8_expert_linear: the sum of the K parts", R, O.coeff,
                 arena_printf(G->a, "((M + 63) / 64 + (%lldLL < M ? %lldLL : M)) * %lldLL", (long long)EB, (long long)EB, (long long)nt), nkb, sp, sy, EB);
    return true;
}

bool cg_expert_gemm(Gen *G, const IrNode *n, bool fp8) {
    const IrNode *x = n->ops[0], *w = n->ops[fp8 ? 2 : 1], *idx = n->ops[fp8 ? 4 : 2];
    if (w->type.rank != 3 || idx->type.rank != 2 || !ir_dim_is_const(w->type.dims[2]) || w->type.dims[2].coeff > 12288) {
        G->why = "expert weights must be [E, O, I] with I <= 12288";
        return false;
    }
    int64_t I = w->type.dims[2].coeff;
    if (fp8 && x->op != IR_OP_KV_CACHE && ir_dim_is_const(w->type.dims[0]) && w->type.dims[0].coeff <= 4096 && ir_dim_is_const(w->type.dims[1]) &&
        G->dtype[x->id] == IR_DT_FP8E4M3 && G->dtype[w->id] == IR_DT_FP8E4M3)
        return expert_fp8_grouped(G, n, I);
    bool bcast = x->type.rank == 2;
    IrDim R = ir_type_numel(&idx->type);
    int sx = cg_slot_value(G, x), sw = cg_slot_value(G, w), si = cg_slot_value(G, idx), sy = cg_slot_value(G, n);
    int sxs = fp8 ? cg_slot_value(G, n->ops[1]) : 0, sws = fp8 ? cg_slot_value(G, n->ops[3]) : 0;
    cg_head(G, fp8 ? "fp8_expert_linear: one block per routed row and 64 outputs" : "expert_linear: one block per routed row and 64 outputs");
    StrBuf *b = &G->decl;
    sb_printf(b, "    extern __shared__ float xr[];\n"
                 "    const long long Ks = %s, I = %lldLL, O = %s, E = %s, nkb = (I + 127) / 128, nob = (O + 127) / 128;\n"
                 "    const long long r = blockIdx.x / ((O + 63) / 64), o0 = blockIdx.x %% ((O + 63) / 64) * 64;  // 64 outputs of one row\n"
                 "    if (r >= %s) return;\n"
                 "    const long long src = %s;\n"
                 "    const float ef = L%d(a, r);\n"
                 "    if (ef == -1.0f) {  // a slot whose expert is elsewhere: zeros, nothing computed\n"
                 "        for (long long o = o0 + threadIdx.x; o < O && o < o0 + 64; o += blockDim.x) S%d(a, r * O + o, 0.0f);\n"
                 "        return;\n"
                 "    }\n"
                 "    if (!(ef >= 0.0f && ef < (float)E)) {\n        if (threadIdx.x == 0) fail(a, ef);\n        return;\n    }\n"
                 "    const long long e = (long long)ef;\n"
                 "    for (long long k = threadIdx.x; k < I; k += 256) xr[k] = L%d(a, src * I + k);\n"
                 "    __syncthreads();\n"
                 "    const int lane = LANE();\n"
                 "    for (long long o = o0 + (threadIdx.x >> 5); o < O && o < o0 + 64; o += 8) {\n"
                 "        const long long wb = (e * O + o) * I;\n"
                 "        float acc = 0.0f;\n",
              cg_dim(G, idx->type.dims[1]), (long long)I, cg_dim(G, w->type.dims[1]), cg_dim(G, w->type.dims[0]), cg_dim(G, R),
              bcast ? "r / Ks" : "r", si, sy, sx);
    (void)sws;
    if (fp8)
        sb_printf(b, "        for (long long kb = 0; kb < nkb; kb++) {\n"
                     "            float part = 0.0f;\n"
                     "            const long long end = kb * 128 + 128 < I ? kb * 128 + 128 : I;\n"
                     "            for (long long k = kb * 128 + lane; k < end; k += 32) part += xr[k] * L%d(a, wb + k);\n"
                     "            acc += part * L%d(a, src * nkb + kb) * L%d(a, (e * nob + o / 128) * nkb + kb);\n"
                     "        }\n",
                  sw, sxs, sws);
    else
        sb_printf(b, "        for (long long k = lane; k < I; k += 32) acc += xr[k] * L%d(a, wb + k);\n", sw);
    sb_printf(b, "        acc = wsum(acc);\n        if (lane == 0) S%d(a, r * O + o, acc);\n    }\n}\n", sy);
    cg_phase(G, CG_LAUNCH_BLOCK, R, 1, w->type.dims[1], 64, I * 4);
    return true;
}

