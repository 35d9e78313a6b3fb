// attn_mma.cuh — the tensor-core attention of a generated phase with one key head (absorbed MLA's 128 query heads
// over the shared latent; the steps MLA decode's own kernel does not take): softmax(q k^T * scale) v without a
// score matrix in memory. Not a kernel: the body of one. The phase function around it (codegen/gen_attn.c) has 256
// threads and has declared `sm`, its dynamic shared memory; cg_kernel_fragment writes this text in below its parameters' #defines and #undefs them after. mma.cuh
// (cp.async, mma m16n8k16 BF16, ldmatrix) and cg_key_splits are in the module before it.
//
// A block takes 64 query rows of one batch row (its heads and positions flattened), keeps them in shared memory and
// walks the keys 32 at a time: S = q k^T by mma (each warp 16 rows x 16 keys; the warp with the same rows and the
// other half of the output, warp ^ 4, has the other 16, and the two swap their row maxima and P fragments through
// shared memory), the online softmax in registers (a quad of lanes holds a row), P rounded to bf16 and multiplied
// into the warp's half of the f32 output; k and v in ATM_NSTG cp.async stages, v's tile k's own stage from column
// ATM_V0 where v is a slice of k (ATM_VK). ATM_SPLIT 1: a decode step's keys split between cg_key_splits blocks a
// query tile, each writing its softmax state (unnormalised o, then m and l) to scratch for the merge phase.
//
// Parameters (#define):
//   ATM_SPLIT               0 the whole keys of each query tile, 1 a decode step's keys split between blocks
//   ATM_S, ATM_T, ATM_HQ    query positions, keys, query heads (expressions)
//   ATM_DK, ATM_DV          q/k's and v's widths (constants: 576LL, 512LL); ATM_NT Dv / 16, no suffix
//   ATM_QST                 bytes of a row of q or k in shared memory (Dk * 2 + 16)
//   ATM_KT                  rows of k a batch row (a cache's capacity: a.cap)
//   ATM_VT, ATM_VS, ATM_V0  v: rows a batch row, elements a row, its first column in them
//   ATM_VK                  1: v read from k's stage (a slice of the cache), 0: staged on its own
//   ATM_NSTG                stages of keys in flight (2 or 3)
//   ATM_Q, ATM_Q1, ATM_QD0  q's argument slots: its first ATM_QD0 columns in ATM_Q, the rest in ATM_Q1
//   ATM_K, ATM_V            k's and v's argument slots
//   ATM_LAST                the last key the row at position s sees (causal: s + T - S, else T - 1)
//   ATM_KEND                the last key any row of the block sees
//   ATM_SCALE               the softmax scale (a float literal)
//   ATM_BN, ATM_PART        (split) the batch rows; the scratch slot of the parts' states
//   ATM_STORE(i, v)         (whole keys) stores output element i = v
#if !defined(ATM_SPLIT) || !defined(ATM_DK) || !defined(ATM_DV) || !defined(ATM_VK) || !defined(ATM_NSTG) || !defined(ATM_NT)
#error "attn_mma.cuh takes ATM_SPLIT, ATM_DK, ATM_DV, ATM_VK, ATM_NSTG and ATM_NT (codegen/gen_attn.c defines them)"
#endif
    const long long S = ATM_S, T = ATM_T, Hq = ATM_HQ, Dk = ATM_DK, Dv = ATM_DV, QST = ATM_QST;
    const long long KT = ATM_KT;  // rows of k per batch row (its cache capacity when k is a cache)
    const long long VT = ATM_VT, VS = ATM_VS, V0 = ATM_V0;  // v: rows per batch row, elements per row, first column
    const bool VK = ATM_VK;  // v's tile is k's own stage from column V0 (not loaded twice)
    const int NSTG = ATM_NSTG;  // stages of keys in flight
    const int NT = ATM_NT;       // 8-wide output tiles per warp (its half of Dv)
#if ATM_SPLIT
    const long long Bn = ATM_BN, rows = S * Hq, nrb = (rows + 63) / 64, nsp = cg_key_splits(S, Bn, Hq, T);
    const long long bs = blockIdx.x / nrb, r0 = blockIdx.x % nrb * 64, bb = bs / nsp, sp = bs % nsp;  // sp: which part of the keys
#else
    const long long rows = S * Hq, nrb = (rows + 63) / 64, bb = blockIdx.x / nrb, r0 = blockIdx.x % nrb * 64;
#endif
    const long long VST = VK ? QST : Dv * 2 + 16, STG = 32 * QST + (VK ? 0 : 32 * VST);  // bytes per row of v; per stage
    unsigned char *Qs = sm, *Ks = sm + 64 * QST;  // stage st: k [32 keys][Dk] at Ks + st * STG, v [32 keys][Dv] after it
    const unsigned short *Q = (const unsigned short *)a.t[ATM_Q], *Q1 = (const unsigned short *)a.t[ATM_Q1];
    const long long QD0 = ATM_QD0;  // q's columns in Q; the rest (Dk - QD0) in Q1
    const unsigned short *Kg = (const unsigned short *)a.t[ATM_K], *Vg = (const unsigned short *)a.t[ATM_V];
    const int warp = threadIdx.x >> 5, g = (threadIdx.x & 31) >> 2, q4 = threadIdx.x & 3;
    const int wr = (warp & 3) * 16, wc = (warp >> 2) * NT * 8, kh = warp >> 2;  // rows, value half, key half
    __shared__ float xrow[8][16];               // per warp and row: its max, then its sum, for the partner warp
    __shared__ uint4 xp[8][32];                  // per warp and lane: its P fragment, for the partner warp
    const int qch = (int)(Dk / 8);  // 16-byte chunks per row of q or k
    for (int c = threadIdx.x; c < 64 * qch; c += 256) {
        const int i = c / qch, kc = c % qch;
        const bool ok = r0 + i < rows;
        const long long qr = bb * rows + r0 + i;
        const unsigned short *qs = kc * 8 < QD0 ? Q + (qr * QD0 + kc * 8) : Q1 + (qr * (Dk - QD0) + kc * 8 - QD0);
        cp16(Qs + i * QST + kc * 16, ok ? qs : Q, ok);
    }
    cp_commit();
    long long last[2];  // the last key each of this thread's two rows sees
    for (int h = 0; h < 2; h++) {
        const long long r = r0 + wr + g + 8 * h, s = (r < rows ? r : rows - 1) / Hq;
        last[h] = ATM_LAST;
        if (last[h] > T - 1) last[h] = T - 1;
    }
    long long kend = ATM_KEND;  // keys any row of the block sees
    if (kend > T - 1) kend = T - 1;
#if ATM_SPLIT
    const long long chunk = (kend + 32 * nsp) / (32 * nsp) * 32, jlo = sp * chunk;  // this block's keys: jlo..jhi
    const long long jhi = jlo + chunk - 1 < kend ? jlo + chunk - 1 : kend;
#endif
    float o[NT][4], m[2], l[2];
    for (int t = 0; t < NT; t++)
        for (int c = 0; c < 4; c++) o[t][c] = 0.0f;
    for (int h = 0; h < 2; h++) m[h] = __int_as_float(0xff800000), l[h] = 0.0f;
    auto stage = [&](int st, long long j0) {  // keys j0 .. j0 + 31 of k and v into stage st
        unsigned char *Kd = Ks + st * STG, *Vd = Kd + 32 * QST;
        for (int c = threadIdx.x; c < 32 * qch; c += 256) {
            const int jj = c / qch, kc = c % qch;
            const bool ok = j0 + jj < T;
            cp16(Kd + jj * QST + kc * 16, ok ? Kg + ((bb * KT + j0 + jj) * Dk + kc * 8) : Kg, ok);
        }
        for (int c = threadIdx.x; !VK && c < 32 * (int)(Dv / 8); c += 256) {
            const int jj = c / (int)(Dv / 8), c8 = c % (int)(Dv / 8) * 8;
            const bool ok = j0 + jj < T;
            cp16(Vd + jj * VST + c8 * 2, ok ? Vg + ((bb * VT + j0 + jj) * VS + V0 + c8) : Vg, ok);
        }
    };
#if ATM_SPLIT
    const long long jfirst = jlo, jlast = jhi;
#else
    const long long jfirst = 0, jlast = kend;
#endif
    for (int s = 0; s < NSTG - 1; s++) {  // the first NSTG - 1 stages, one commit group each
        if (jfirst + 32 * s <= jlast) stage(s, jfirst + 32 * s);
        cp_commit();
    }
    for (long long j0 = jfirst, it = 0; j0 <= jlast; j0 += 32, it++) {  // the keys NSTG - 1 steps on load during this step
        if (j0 + 32 * (NSTG - 1) <= jlast) stage((int)((it + NSTG - 1) % NSTG), j0 + 32 * (NSTG - 1));
        cp_commit();
        if (NSTG == 3) cp_wait2();  // this step's stage has landed
        else cp_wait1();
        __syncthreads();
        const unsigned char *Kc = Ks + (it % NSTG) * STG, *Vc = VK ? Kc + V0 * 2 : Kc + 32 * QST;
        float sc[2][4];  // q k^T of this warp's 16 rows and its half of the 32 keys (the partner warp, warp ^ 4, has the other)
#pragma unroll
        for (int t = 0; t < 2; t++)
#pragma unroll
            for (int c = 0; c < 4; c++) sc[t][c] = 0.0f;
        for (int ks = 0; ks < (int)(Dk / 16); ks++) {
            const unsigned char *pa = Qs + (wr + g) * QST + ks * 32 + q4 * 4;
            const unsigned af[4] = {*(const unsigned *)pa, *(const unsigned *)(pa + 8 * QST), *(const unsigned *)(pa + 16),
                                    *(const unsigned *)(pa + 8 * QST + 16)};
#pragma unroll
            for (int t = 0; t < 2; t++) {
                const unsigned char *pb = Kc + (kh * 16 + t * 8 + g) * QST + ks * 32 + q4 * 4;
                const unsigned bf[2] = {*(const unsigned *)pb, *(const unsigned *)(pb + 16)};
                mma_bf16(sc[t], af, bf);
            }
        }
        float mx[2] = {__int_as_float(0xff800000), __int_as_float(0xff800000)};
#pragma unroll
        for (int t = 0; t < 2; t++)
#pragma unroll
            for (int c = 0; c < 4; c++) {
                const long long j = j0 + kh * 16 + t * 8 + q4 * 2 + (c & 1);
                sc[t][c] = j <= last[c >> 1] ? sc[t][c] * ATM_SCALE : __int_as_float(0xff800000);
                mx[c >> 1] = fmaxf(mx[c >> 1], sc[t][c]);
            }
        for (int h = 0; h < 2; h++) {  // the row's max over its quad, shared with the partner
            mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 1));
            mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 2));
            if (q4 == 0) xrow[warp][g + 8 * h] = mx[h];
        }
        __syncthreads();
        float corr[2];
        for (int h = 0; h < 2; h++) {  // the running max over both halves: the same in both warps
            const float mn = fmaxf(m[h], fmaxf(mx[h], xrow[warp ^ 4][g + 8 * h]));
            corr[h] = mn == __int_as_float(0xff800000) ? 1.0f : expf(m[h] - mn);
            m[h] = mn;
            l[h] *= corr[h];  // l: this warp's keys only, summed with the partner's at the end
        }
#pragma unroll
        for (int t = 0; t < 2; t++)
#pragma unroll
            for (int c = 0; c < 4; c++) {
                const float p = sc[t][c] == __int_as_float(0xff800000) ? 0.0f : expf(sc[t][c] - m[c >> 1]);
                sc[t][c] = p;
                l[c >> 1] += p;
            }
        for (int t = 0; t < NT; t++)
            for (int c = 0; c < 4; c++) o[t][c] *= corr[c >> 1];
        // P as the A operand, one 16-key step per half: this warp's, and the partner's through shared memory
        const uint4 own = make_uint4((unsigned)f2bf(sc[0][0]) | (unsigned)f2bf(sc[0][1]) << 16,
                                     (unsigned)f2bf(sc[0][2]) | (unsigned)f2bf(sc[0][3]) << 16,
                                     (unsigned)f2bf(sc[1][0]) | (unsigned)f2bf(sc[1][1]) << 16,
                                     (unsigned)f2bf(sc[1][2]) | (unsigned)f2bf(sc[1][3]) << 16);
        xp[warp][threadIdx.x & 31] = own;
        __syncthreads();
        const uint4 oth = xp[warp ^ 4][threadIdx.x & 31], lo = kh ? oth : own, hi = kh ? own : oth;
        const unsigned pf[2][4] = {{lo.x, lo.y, lo.z, lo.w}, {hi.x, hi.y, hi.z, hi.w}};  // keys 0-15, 16-31
#pragma unroll
        for (int kk = 0; kk < 2; kk++) {
            const unsigned char *pv = Vc + (kk * 16 + (threadIdx.x & 15)) * VST + wc * 2;  // this lane's key row
#pragma unroll
            for (int t = 0; t < NT; t++) {
                unsigned bf[2];  // keys kk*16 + 2 q4 (+1) and + 8, value column wc + t*8 + g
                ldsm_x2_t(bf, pv + t * 16);
                mma_bf16(o[t], pf[kk], bf);
            }
        }
        __syncthreads();  // every warp is done with this stage before it is loaded again
    }
    for (int h = 0; h < 2; h++) {  // the row sums over the quad, then over both halves of the keys
        l[h] += __shfl_xor_sync(0xffffffffu, l[h], 1);
        l[h] += __shfl_xor_sync(0xffffffffu, l[h], 2);
        if (q4 == 0) xrow[warp][g + 8 * h] = l[h];
    }
    __syncthreads();
    for (int h = 0; h < 2; h++) l[h] += xrow[warp ^ 4][g + 8 * h];
#if ATM_SPLIT
    cp_wait0();  // a part past the keys loaded q and nothing else
    float *part = (float *)a.t[ATM_PART];  // per (part, batch row, query row): o, then m and l
#endif
#pragma unroll
    for (int t = 0; t < NT; t++)
#pragma unroll
        for (int c = 0; c < 4; c++) {
            const long long r = r0 + wr + g + 8 * (c >> 1), col = wc + t * 8 + q4 * 2 + (c & 1);
#if ATM_SPLIT
            if (r >= rows) continue;
            float *pp = part + ((sp * Bn + bb) * rows + r) * (Dv + 2);
            pp[col] = o[t][c];
            if (t == 0 && (c & 1) == 0 && q4 == 0 && wc == 0) pp[Dv] = m[c >> 1], pp[Dv + 1] = l[c >> 1];
#else
            if (r < rows) ATM_STORE((bb * rows + r) * Dv + col, o[t][c] / l[c >> 1]);
#endif
        }
