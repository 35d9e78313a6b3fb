// sample.cuh — the next token of each row of logits, chosen on the device so
// only the ids cross to the host: greedy (the largest logit, the lowest id
// among equals, as the host's argmax) or a draw from softmax(logits / T)
// cut to the top-k and then to the top-p nucleus (the fewest most likely
// tokens, lowest id first among equals, whose mass reaches p of the total).
// Parameters: DSCC_ENTRY, the entry point's name; SAMPLE_BLOCK, threads per
// block (a multiple of 32, at most 1024). One block per row; grid = rows.
//
// No sort. The cut is found by radix select over the logits' order-keeping
// 32-bit keys, 8 bits a pass, high digit first: each pass histograms the
// keys under the prefix found so far, by count (top-k) or by probability
// mass (top-p) in 2^-40 fixed point, so every sum is an integer and the cut
// is the same on every run whatever order the atomics land in. The copies
// of the histogram (one per lane group) keep the atomics of a warp from
// all hitting one word. Equal logits at the cut are admitted lowest id
// first by one more select over their ids. The draw is an exponential race
// (Gumbel-max): the token of the nucleus with the largest
// (l - max) / T - log(E), E ~ Exp(1) from a counter-based hash of (seed,
// row, step, id), is distributed as softmax over the nucleus, and the
// choice does not depend on the block size.
#ifndef SAMPLE_BLOCK
#define SAMPLE_BLOCK 1024
#endif
#define SAMPLE_WARPS (SAMPLE_BLOCK / 32)
#define SAMPLE_COPIES 16 /* histogram copies: lane % 16 picks one */
#define SAMPLE_FULL 0xffffffffu
#define SAMPLE_FIX 1099511627776.0f /* 2^40: a probability's fixed-point unit */

struct Args {
    const float *logits;           // row r's logits at logits + r * stride
    long long stride;
    int V;
    float inv_temp;                // 1 / temperature; 0: greedy
    int top_k;                     // 0 (or >= V): no cut
    double top_p;                  // >= 1: no cut
    unsigned long long seed, step; // the draw's counter, with the row
    unsigned long long row0;       // row r draws as row row0 + r (its global row)
    int *ids;                      // out: row r's token; -1 when the row holds a NaN
};

enum { SEL_COUNT, SEL_MASS, SEL_TIE_ID };

__device__ unsigned long long sample_mix(unsigned long long z) { // splitmix64's finaliser
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

// A logit's key: a larger float has a larger key (-0 is taken as +0).
__device__ unsigned sample_key(float x) {
    const unsigned u = __float_as_uint(x + 0.0f);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

__device__ float sample_logit(unsigned key) { // sample_key's inverse
    return __uint_as_float((key & 0x80000000u) ? (key & 0x7fffffffu) : ~key);
}

// exp((x - mx) / T) in fixed point; the top logit weighs 2^40 (a NaN from infinities: 0).
__device__ unsigned long long sample_weight(float x, float mx, float inv_temp) {
    const float e = expf((x - mx) * inv_temp);
    return e > 0.0f ? (unsigned long long)(e * SAMPLE_FIX) : 0ull;
}

// The better of (v, i) and (v2, i2): the larger value, the lower index among equals.
__device__ void sample_better(float &v, int &i, float v2, int i2) {
    if (v2 > v || (v2 == v && i2 < i)) v = v2, i = i2;
}

// Block-wide argmax of (v, i) into every thread's v, i.
__device__ void sample_block_argmax(float &v, int &i, float *sv, int *si) {
    for (int o = 16; o > 0; o >>= 1) {
        float v2 = __shfl_xor_sync(SAMPLE_FULL, v, o);
        int i2 = __shfl_xor_sync(SAMPLE_FULL, i, o);
        sample_better(v, i, v2, i2);
    }
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) sv[warp] = v, si[warp] = i;
    __syncthreads();
    v = lane < SAMPLE_WARPS ? sv[lane] : __int_as_float(0xff800000);
    i = lane < SAMPLE_WARPS ? si[lane] : 0x7fffffff;
    for (int o = 16; o > 0; o >>= 1) {
        float v2 = __shfl_xor_sync(SAMPLE_FULL, v, o);
        int i2 = __shfl_xor_sync(SAMPLE_FULL, i, o);
        sample_better(v, i, v2, i2);
    }
    __syncthreads(); // sv, si free again
}

// Block-wide sum of an integer into every thread.
__device__ unsigned long long sample_block_sum(unsigned long long v, unsigned long long *red) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(SAMPLE_FULL, v, o);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) red[warp] = v;
    __syncthreads();
    v = lane < SAMPLE_WARPS ? red[lane] : 0ull;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(SAMPLE_FULL, v, o);
    __syncthreads();
    return v;
}

struct SampleSel {
    unsigned key;             // the cut: the largest key whose keys at or above weigh >= the target
    unsigned long long above; // weight of the keys above it
    unsigned long long at;    // weight of the keys equal to it
};

// Radix select over the row: what `mode` weighs (SEL_COUNT: 1 per logit,
// SEL_MASS: its fixed-point probability, of the keys >= tie alone;
// SEL_TIE_ID: 1 per logit whose key is `tie`, keyed by the complement of
// its id so lower ids rank higher), target in 1..total. Every thread gets
// the result.
__device__ SampleSel sample_select(const float *row, int V, int mode, unsigned long long target, float mx, float inv_temp,
                                   unsigned tie, unsigned long long *hist, SampleSel *out) {
    const int tid = threadIdx.x, lane = tid & 31;
    unsigned prefix = 0u, mask = 0u;
    unsigned long long above = 0ull;
    for (int shift = 24; shift >= 0; shift -= 8) {
        for (int j = tid; j < 256 * SAMPLE_COPIES; j += SAMPLE_BLOCK) hist[j] = 0ull;
        __syncthreads();
        for (int i = tid; i < V; i += SAMPLE_BLOCK) {
            const float x = row[i];
            unsigned k = sample_key(x);
            if (mode == SEL_TIE_ID) {
                if (k != tie) continue;
                k = ~(unsigned)i;
            } else if (k < tie) { // SEL_MASS below the floor
                continue;
            }
            if ((k & mask) != prefix) continue; // settled by an earlier digit
            const unsigned long long w = mode == SEL_MASS ? sample_weight(x, mx, inv_temp) : 1ull;
            if (w) atomicAdd(&hist[((k >> shift) & 255u) * SAMPLE_COPIES + (lane & (SAMPLE_COPIES - 1))], w);
        }
        __syncthreads();
        for (int j = tid; j < 256; j += SAMPLE_BLOCK) { // fold the copies into the first of each bin
            unsigned long long s = 0ull;
            for (int c = 0; c < SAMPLE_COPIES; c++) s += hist[j * SAMPLE_COPIES + c];
            hist[j * SAMPLE_COPIES] = s;
        }
        __syncthreads();
        if (tid < 32) { // lane l holds bins 255 - 8l down to 248 - 8l: the highest first
            unsigned long long part = 0ull;
            for (int b = 0; b < 8; b++) part += hist[(255 - 8 * lane - b) * SAMPLE_COPIES];
            unsigned long long incl = part; // inclusive prefix over the lanes
            for (int o = 1; o < 32; o <<= 1) {
                unsigned long long y = __shfl_sync(SAMPLE_FULL, incl, lane >= o ? lane - o : 0);
                if (lane >= o) incl += y;
            }
            const unsigned hit = __ballot_sync(SAMPLE_FULL, above + incl >= target);
            int first = 31;
            for (int l = 31; l >= 0; l--)
                if (hit >> l & 1u) first = l;
            if (lane == first) { // the digit is in this lane's eight bins
                unsigned long long acc = above + incl - part;
                int b = 255 - 8 * lane;
                for (; b > 248 - 8 * lane; b--) {
                    const unsigned long long h = hist[b * SAMPLE_COPIES];
                    if (acc + h >= target) break;
                    acc += h;
                }
                out->key = prefix | ((unsigned)b << shift);
                out->above = acc;
                out->at = hist[b * SAMPLE_COPIES];
            }
        }
        __syncthreads();
        prefix = out->key;
        above = out->above;
        mask |= 255u << shift;
        __syncthreads(); // out and hist are rewritten by the next pass
    }
    SampleSel r;
    r.key = prefix;
    r.above = above;
    r.at = out->at;
    __syncthreads();
    return r;
}

extern "C" __global__ void __launch_bounds__(SAMPLE_BLOCK) DSCC_ENTRY(Args a) {
    __shared__ unsigned long long hist[256 * SAMPLE_COPIES], red[32];
    __shared__ float sv[32];
    __shared__ int si[32], nan_seen;
    __shared__ SampleSel sel;
    const int tid = threadIdx.x, V = a.V;
    const float *row = a.logits + (long long)blockIdx.x * a.stride;
    if (tid == 0) nan_seen = 0;
    __syncthreads();
    float mx = __int_as_float(0xff800000);
    int arg = 0x7fffffff;
    for (int i = tid; i < V; i += SAMPLE_BLOCK) {
        const float x = row[i];
        if (x != x) nan_seen = 1;
        sample_better(mx, arg, x, i);
    }
    sample_block_argmax(mx, arg, sv, si);
    if (nan_seen || arg >= V) { // a NaN: the host names it; greedy must not answer a silent id
        if (tid == 0) a.ids[blockIdx.x] = -1;
        return;
    }
    const bool cut_k = a.top_k > 0 && a.top_k < V, cut_p = a.top_p < 1.0;
    if (a.inv_temp <= 0.0f || a.top_k == 1) {
        if (tid == 0) a.ids[blockIdx.x] = arg;
        return;
    }
    // the cut: (key, m) admits every key above `key` and the first m (by id) equal to it
    unsigned cut = 0u;            // no cut: every key (NaN's key, 0, is never present)
    unsigned long long m = ~0ull;
    if (cut_k) {
        SampleSel s = sample_select(row, V, SEL_COUNT, (unsigned long long)a.top_k, mx, a.inv_temp, 0u, hist, &sel);
        cut = s.key;
        m = (unsigned long long)a.top_k - s.above;
    }
    if (cut_p) { // the mass select weighs only the keys at or above the top-k cut: a cut below it would lose anyway
        unsigned long long part = 0ull, kept = 0ull;
        for (int i = tid; i < V; i += SAMPLE_BLOCK) {
            const float x = row[i];
            const unsigned long long w = sample_weight(x, mx, a.inv_temp);
            part += w;
            kept += sample_key(x) >= cut ? w : 0ull;
        }
        const unsigned long long total = sample_block_sum(part, red), within = sample_block_sum(kept, red);
        unsigned long long target = (unsigned long long)ceil(a.top_p * (double)total);
        target = target < 1ull ? 1ull : target > total ? total : target;
        if (total && target <= within) { // total 0: a row of infinities, no mass to weigh; target > within: top-k cuts first
            SampleSel s = sample_select(row, V, SEL_MASS, target, mx, a.inv_temp, cut, hist, &sel);
            unsigned long long w1 = sample_weight(sample_logit(s.key), mx, a.inv_temp); // each of the equal keys
            w1 = w1 ? w1 : 1ull;
            const unsigned long long mp = (target - s.above + w1 - 1ull) / w1;
            if (s.key > cut || (s.key == cut && mp < m)) cut = s.key, m = mp;
        }
    }
    // the equal keys admitted: ids up to id_max
    int id_max = 0x7fffffff;
    if (m != ~0ull) {
        unsigned long long ties = 0ull;
        for (int i = tid; i < V; i += SAMPLE_BLOCK) ties += sample_key(row[i]) == cut;
        ties = sample_block_sum(ties, red);
        if (m < ties) id_max = (int)~sample_select(row, V, SEL_TIE_ID, m, mx, a.inv_temp, cut, hist, &sel).key;
    }
    // the race: one exponential per admitted token, from the counter (seed, row, step, id)
    const unsigned long long base = sample_mix(sample_mix(a.seed ^ 0x9e3779b97f4a7c15ull) ^ sample_mix(a.step + 0x632be59bd9b4e019ull) ^
                                               ((a.row0 + blockIdx.x) * 0xd1b54a32d192ed03ull));
    float best = __int_as_float(0xff800000);
    int pick = 0x7fffffff;
    for (int i = tid; i < V; i += SAMPLE_BLOCK) {
        const float x = row[i];
        const unsigned k = sample_key(x);
        if (k < cut || (k == cut && i > id_max)) continue;
        const unsigned long long h = sample_mix(base + (unsigned long long)(i + 1) * 0x9e3779b97f4a7c15ull);
        const float u = ((float)(h >> 40) + 0.5f) * (1.0f / 16777216.0f); // (0, 1)
        sample_better(best, pick, (x - mx) * a.inv_temp - logf(-logf(u)), i);
    }
    sample_block_argmax(best, pick, sv, si);
    if (tid == 0) a.ids[blockIdx.x] = pick < V ? pick : arg;
}
