// The fused block's passes over one plane: see include/cblock.h.
//
// 2 × 2 windows run eight (or four) windows of a row pair at a time: the two rows' 16 (or 8) values are split into
// the windows' four positions (even and odd columns of each row), and the results go back the same way. A row's
// last group may overlap the one before it (it writes the same values again, computed from the inputs alone).
// Rows of fewer than four windows pool window by window, and their planes' gradients take two passes (the values,
// then each window's sum at its maximum), as do windows of other sizes. Selections are bitwise blends of lane
// masks, so the baseline copy (SSE) and the AVX2 copy are the same operations on the same values.
#pragma STDC FP_CONTRACT OFF
// The vector helpers below are always inlined, so the ABI of 8-float vectors without AVX never comes into play.
#pragma clang diagnostic ignored "-Wpsabi"
#include "cblock.h"
#include "vectors.h"

typedef int32_t v8i __attribute__((ext_vector_type(8)));
typedef uint32_t v8u __attribute__((ext_vector_type(8)));
typedef float v4 __attribute__((ext_vector_type(4)));
typedef int32_t v4i __attribute__((ext_vector_type(4)));
typedef uint32_t v4u __attribute__((ext_vector_type(4)));

#define INLINE static inline __attribute__((always_inline))

INLINE v8u load8u(const int32_t *p) { v8u v; memcpy(&v, p, sizeof v); return v; }
INLINE void store8u(int32_t *p, v8u v) { memcpy(p, &v, sizeof v); }
INLINE v4 load4(const float *p) { v4 v; memcpy(&v, p, sizeof v); return v; }
INLINE void store4(float *p, v4 v) { memcpy(p, &v, sizeof v); }
INLINE v4u load4u(const int32_t *p) { v4u v; memcpy(&v, p, sizeof v); return v; }
INLINE void store4u(int32_t *p, v4u v) { memcpy(p, &v, sizeof v); }

// Lane by lane: m (all ones or all zeros) ? a : b, for floats by their bits.
INLINE v8 blend8(v8i m, v8 a, v8 b) { return (v8)(((v8i)a & m) | ((v8i)b & ~m)); }
INLINE v8u blend8u(v8i m, v8u a, v8u b) { return (a & (v8u)m) | (b & ~(v8u)m); }
INLINE v4 blend4(v4i m, v4 a, v4 b) { return (v4)(((v4i)a & m) | ((v4i)b & ~m)); }
INLINE v4u blend4u(v4i m, v4u a, v4u b) { return (a & (v4u)m) | (b & ~(v4u)m); }

// ---------------------------------------------------------------------------------------------------------------
// Forward: each window's first maximum of x·a + shift, then the ReLU.

// Windows xo0 ..< xo0 + 8 of rows r0, r1 (one window per lane).
INLINE void pool8(const float *r0, const float *r1, int xo0, float a, float shift, uint32_t w, uint32_t row_base,
                  float *o, int32_t *oi, float *om) {
    const v8 t0 = load8(r0 + 2 * xo0), t1 = load8(r0 + 2 * xo0 + 8);
    const v8 b0 = load8(r1 + 2 * xo0), b1 = load8(r1 + 2 * xo0 + 8);
    const v8 te = __builtin_shufflevector(t0, t1, 0, 2, 4, 6, 8, 10, 12, 14),
             to = __builtin_shufflevector(t0, t1, 1, 3, 5, 7, 9, 11, 13, 15),
             be = __builtin_shufflevector(b0, b1, 0, 2, 4, 6, 8, 10, 12, 14),
             bo = __builtin_shufflevector(b0, b1, 1, 3, 5, 7, 9, 11, 13, 15);
    const v8 va = a, vs = shift;
    const v8 v0 = te * va + vs, v1 = to * va + vs, v2 = be * va + vs, v3 = bo * va + vs;
    v8 best = v0, raw = te;
    v8u offset = 0;
    const v8i c1 = v1 > best;
    best = blend8(c1, v1, best); offset = blend8u(c1, (v8u)1, offset); raw = blend8(c1, to, raw);
    const v8i c2 = v2 > best;
    best = blend8(c2, v2, best); offset = blend8u(c2, (v8u)w, offset); raw = blend8(c2, be, raw);
    const v8i c3 = v3 > best;
    best = blend8(c3, v3, best); offset = blend8u(c3, (v8u)(w + 1), offset); raw = blend8(c3, bo, raw);
    best = blend8(best > (v8)0, best, (v8)0);
    store8(o + xo0, best);
    store8(om + xo0, raw);
    const v8u base = (v8u)(row_base + 2u * (uint32_t)xo0) + (v8u){0, 2, 4, 6, 8, 10, 12, 14};
    store8u(oi + xo0, base + offset);
}

// Windows xo0 ..< xo0 + 4: the same with four lanes.
INLINE void pool4(const float *r0, const float *r1, int xo0, float a, float shift, uint32_t w, uint32_t row_base,
                  float *o, int32_t *oi, float *om) {
    const v4 t0 = load4(r0 + 2 * xo0), t1 = load4(r0 + 2 * xo0 + 4);
    const v4 b0 = load4(r1 + 2 * xo0), b1 = load4(r1 + 2 * xo0 + 4);
    const v4 te = __builtin_shufflevector(t0, t1, 0, 2, 4, 6), to = __builtin_shufflevector(t0, t1, 1, 3, 5, 7),
             be = __builtin_shufflevector(b0, b1, 0, 2, 4, 6), bo = __builtin_shufflevector(b0, b1, 1, 3, 5, 7);
    const v4 va = a, vs = shift;
    const v4 v0 = te * va + vs, v1 = to * va + vs, v2 = be * va + vs, v3 = bo * va + vs;
    v4 best = v0, raw = te;
    v4u offset = 0;
    const v4i c1 = v1 > best;
    best = blend4(c1, v1, best); offset = blend4u(c1, (v4u)1, offset); raw = blend4(c1, to, raw);
    const v4i c2 = v2 > best;
    best = blend4(c2, v2, best); offset = blend4u(c2, (v4u)w, offset); raw = blend4(c2, be, raw);
    const v4i c3 = v3 > best;
    best = blend4(c3, v3, best); offset = blend4u(c3, (v4u)(w + 1), offset); raw = blend4(c3, bo, raw);
    best = blend4(best > (v4)0, best, (v4)0);
    store4(o + xo0, best);
    store4(om + xo0, raw);
    const v4u base = (v4u)(row_base + 2u * (uint32_t)xo0) + (v4u){0, 2, 4, 6};
    store4u(oi + xo0, base + offset);
}

// One 2 × 2 window (xo) of rows r0, r1, as a lane of pool8.
INLINE void pool1(const float *r0, const float *r1, int xo, float a, float shift, uint32_t w, uint32_t row_base,
                  float *o, int32_t *oi, float *om) {
    const float x0 = r0[2 * xo], x1 = r0[2 * xo + 1], x2 = r1[2 * xo], x3 = r1[2 * xo + 1];
    const float v0 = x0 * a + shift, v1 = x1 * a + shift, v2 = x2 * a + shift, v3 = x3 * a + shift;
    float best = v0, raw = x0;
    uint32_t offset = 0;
    if (v1 > best) { best = v1; offset = 1; raw = x1; }
    if (v2 > best) { best = v2; offset = w; raw = x2; }
    if (v3 > best) { best = v3; offset = w + 1; raw = x3; }
    o[xo] = best > 0 ? best : 0;
    om[xo] = raw;
    oi[xo] = (int32_t)(row_base + 2u * (uint32_t)xo + offset);
}

INLINE void pool2x2(const float *p, int h, int w, float a, float shift, int32_t first_index, float *po, int32_t *pi,
                    float *pm) {
    const int ho = h / 2, wo = w / 2;
    for (int y = 0; y < ho; y++) {
        const float *r0 = p + (long)2 * y * w, *r1 = r0 + w;
        float *o = po + (long)y * wo, *om = pm + (long)y * wo;
        int32_t *oi = pi + (long)y * wo;
        const uint32_t row_base = (uint32_t)first_index + 2u * (uint32_t)y * (uint32_t)w;
        if (wo >= 8) {
            for (int xo0 = 0;; xo0 = xo0 + 16 <= wo ? xo0 + 8 : wo - 8) {
                pool8(r0, r1, xo0, a, shift, (uint32_t)w, row_base, o, oi, om);
                if (xo0 + 8 >= wo) break;
            }
        } else if (wo >= 4) {
            for (int xo0 = 0;; xo0 = xo0 + 8 <= wo ? xo0 + 4 : wo - 4) {
                pool4(r0, r1, xo0, a, shift, (uint32_t)w, row_base, o, oi, om);
                if (xo0 + 4 >= wo) break;
            }
        } else {
            for (int xo = 0; xo < wo; xo++) pool1(r0, r1, xo, a, shift, (uint32_t)w, row_base, o, oi, om);
        }
    }
}

// Any window size: each window's positions row by row, the first maximum winning.
INLINE void pool_any(const float *p, int h, int w, int size, float a, float shift, int32_t first_index, float *po,
                     int32_t *pi, float *pm) {
    const int ho = h / size, wo = w / size;
    for (int y = 0; y < ho; y++)
        for (int xo = 0; xo < wo; xo++) {
            long best_index = (long)y * size * w + (long)xo * size;
            float best = p[best_index] * a + shift;
            for (int i = 0; i < size; i++)
                for (int j = 0; j < size; j++) {
                    const long index = (long)(y * size + i) * w + (long)xo * size + j;
                    const float value = p[index] * a + shift;
                    if (value > best) { best = value; best_index = index; }
                }
            const long k = (long)y * wo + xo;
            po[k] = best > 0 ? best : 0;
            pi[k] = (int32_t)((uint32_t)first_index + (uint32_t)best_index);
            pm[k] = p[best_index];
        }
}

// ---------------------------------------------------------------------------------------------------------------
// Gradient: value = (−a)·(sum_g + (x − mean)·scale_x), plus am·g at each window's maximum.

typedef struct {
    float mean, negative_a, sum_g, scale_x, am;
} gradient_constants;

INLINE v8 values8(const gradient_constants *k, v8 x) {
    return (v8)k->negative_a * ((v8)k->sum_g + (x - (v8)k->mean) * (v8)k->scale_x);
}
INLINE v4 values4(const gradient_constants *k, v4 x) {
    return (v4)k->negative_a * ((v4)k->sum_g + (x - (v4)k->mean) * (v4)k->scale_x);
}
INLINE float value1(const gradient_constants *k, float x) {
    return k->negative_a * (k->sum_g + (x - k->mean) * k->scale_x);
}

// Windows xo0 ..< xo0 + 8 of output rows r0, r1 (input rows q0, q1): the values, and each window's am·g at the
// lane of its maximum (its offset from the window's first position: 0, 1, w or w + 1).
INLINE void gradient8(const gradient_constants *k, const float *q0, const float *q1, float *r0, float *r1, int xo0,
                      const float *g, const float *y, const int32_t *idx, uint32_t w, uint32_t row_base) {
    const v8 gv = blend8(load8(y + xo0) > (v8)0, load8(g + xo0), (v8)0);
    const v8 t = (v8)k->am * gv;
    const v8u rel = load8u(idx + xo0) - ((v8u)(row_base + 2u * (uint32_t)xo0) + (v8u){0, 2, 4, 6, 8, 10, 12, 14});
    const v8 tl = __builtin_shufflevector(t, t, 0, 0, 1, 1, 2, 2, 3, 3),
             th = __builtin_shufflevector(t, t, 4, 4, 5, 5, 6, 6, 7, 7);
    const v8u rl = __builtin_shufflevector(rel, rel, 0, 0, 1, 1, 2, 2, 3, 3),
              rh = __builtin_shufflevector(rel, rel, 4, 4, 5, 5, 6, 6, 7, 7);
    const v8u top = {0, 1, 0, 1, 0, 1, 0, 1}, bottom = top + w;
    const v8 a0 = values8(k, load8(q0 + 2 * xo0)), a1 = values8(k, load8(q0 + 2 * xo0 + 8));
    const v8 b0 = values8(k, load8(q1 + 2 * xo0)), b1 = values8(k, load8(q1 + 2 * xo0 + 8));
    store8(r0 + 2 * xo0, blend8(rl == top, a0 + tl, a0));
    store8(r0 + 2 * xo0 + 8, blend8(rh == top, a1 + th, a1));
    store8(r1 + 2 * xo0, blend8(rl == bottom, b0 + tl, b0));
    store8(r1 + 2 * xo0 + 8, blend8(rh == bottom, b1 + th, b1));
}

// Windows xo0 ..< xo0 + 4: the same with four lanes.
INLINE void gradient4(const gradient_constants *k, const float *q0, const float *q1, float *r0, float *r1, int xo0,
                      const float *g, const float *y, const int32_t *idx, uint32_t w, uint32_t row_base) {
    const v4 gv = blend4(load4(y + xo0) > (v4)0, load4(g + xo0), (v4)0);
    const v4 t = (v4)k->am * gv;
    const v4u rel = load4u(idx + xo0) - ((v4u)(row_base + 2u * (uint32_t)xo0) + (v4u){0, 2, 4, 6});
    const v4 tl = __builtin_shufflevector(t, t, 0, 0, 1, 1), th = __builtin_shufflevector(t, t, 2, 2, 3, 3);
    const v4u rl = __builtin_shufflevector(rel, rel, 0, 0, 1, 1), rh = __builtin_shufflevector(rel, rel, 2, 2, 3, 3);
    const v4u top = {0, 1, 0, 1}, bottom = top + w;
    const v4 a0 = values4(k, load4(q0 + 2 * xo0)), a1 = values4(k, load4(q0 + 2 * xo0 + 4));
    const v4 b0 = values4(k, load4(q1 + 2 * xo0)), b1 = values4(k, load4(q1 + 2 * xo0 + 4));
    store4(r0 + 2 * xo0, blend4(rl == top, a0 + tl, a0));
    store4(r0 + 2 * xo0 + 4, blend4(rh == top, a1 + th, a1));
    store4(r1 + 2 * xo0, blend4(rl == bottom, b0 + tl, b0));
    store4(r1 + 2 * xo0 + 4, blend4(rh == bottom, b1 + th, b1));
}

// n values of x into o.
INLINE void values_row(const gradient_constants *k, const float *x, float *o, long n) {
    long i = 0;
    for (; i + 8 <= n; i += 8) store8(o + i, values8(k, load8(x + i)));
    for (; i < n; i++) o[i] = value1(k, x[i]);
}

// Any window size (or rows of fewer than four 2 × 2 windows): all values, then each window's sum at its maximum.
INLINE void gradient_any(const gradient_constants *k, const float *p, int h, int w, int size, const float *pg,
                         const float *py, const int32_t *pi, long plane_start, float *o) {
    values_row(k, p, o, (long)h * w);
    const long pooled = (long)(h / size) * (w / size);
    for (long i = 0; i < pooled; i++) {
        const float gv = py[i] > 0 ? pg[i] : 0;
        o[(long)pi[i] - plane_start] += k->am * gv;
    }
}

INLINE void gradient2x2(const gradient_constants *k, const float *p, int h, int w, const float *pg, const float *py,
                        const int32_t *pi, long plane_start, float *o) {
    const int ho = h / 2, wo = w / 2;
    const uint32_t start = (uint32_t)plane_start;
    for (int y = 0; y < ho; y++) {
        const float *q0 = p + (long)2 * y * w, *q1 = q0 + w;
        float *r0 = o + (long)2 * y * w, *r1 = r0 + w;
        const float *g = pg + (long)y * wo, *yv = py + (long)y * wo;
        const int32_t *idx = pi + (long)y * wo;
        const uint32_t row_base = start + 2u * (uint32_t)y * (uint32_t)w;
        if (wo >= 8) {
            for (int xo0 = 0;; xo0 = xo0 + 16 <= wo ? xo0 + 8 : wo - 8) {
                gradient8(k, q0, q1, r0, r1, xo0, g, yv, idx, (uint32_t)w, row_base);
                if (xo0 + 8 >= wo) break;
            }
        } else {
            for (int xo0 = 0;; xo0 = xo0 + 8 <= wo ? xo0 + 4 : wo - 4) {
                gradient4(k, q0, q1, r0, r1, xo0, g, yv, idx, (uint32_t)w, row_base);
                if (xo0 + 4 >= wo) break;
            }
        }
        if (w % 2) { r0[w - 1] = value1(k, q0[w - 1]); r1[w - 1] = value1(k, q1[w - 1]); }
    }
    if (h % 2) values_row(k, p + (long)(h - 1) * w, o + (long)(h - 1) * w, w);
}

// ---------------------------------------------------------------------------------------------------------------
// Both passes compiled twice: for AVX2 and for the baseline instruction set.

#define PASSES(suffix, attributes)                                                                              \
    static attributes void pool_##suffix(const float *p, int h, int w, int size, float a, float shift,           \
                                         int32_t first_index, float *po, int32_t *pi, float *pm) {              \
        if (size == 2) pool2x2(p, h, w, a, shift, first_index, po, pi, pm);                                     \
        else pool_any(p, h, w, size, a, shift, first_index, po, pi, pm);                                        \
    }                                                                                                           \
    static attributes void gradient_##suffix(const gradient_constants *k, const float *p, int h, int w, int size, \
                                             const float *pg, const float *py, const int32_t *pi,               \
                                             long plane_start, float *o) {                                      \
        if (size == 2 && w / 2 >= 4) gradient2x2(k, p, h, w, pg, py, pi, plane_start, o);                       \
        else gradient_any(k, p, h, w, size, pg, py, pi, plane_start, o);                                        \
    }
PASSES(avx2, __attribute__((target("avx2"))))
PASSES(base, )

static int baseline_only = 0;

void cblock_use_baseline_kernels(int on) { baseline_only = on != 0; }

static inline int has_avx2(void) { return !baseline_only && __builtin_cpu_supports("avx2"); }

int cblock_kernels_use_avx2(void) { return has_avx2(); }

void cblock_pool(const float *p, int h, int w, int size, float a, float shift, int32_t first_index, float *po,
                 int32_t *pi, float *pm) {
    if (has_avx2()) pool_avx2(p, h, w, size, a, shift, first_index, po, pi, pm);
    else pool_base(p, h, w, size, a, shift, first_index, po, pi, pm);
}

void cblock_plane_gradient(const float *p, int h, int w, int size, float mean, float a, float sum_g, float scale_x,
                           float am, const float *pg, const float *py, const int32_t *pi, long plane_start, float *o) {
    const gradient_constants k = {mean, -a, sum_g, scale_x, am};
    if (has_avx2()) gradient_avx2(&k, p, h, w, size, pg, py, pi, plane_start, o);
    else gradient_base(&k, p, h, w, size, pg, py, pi, plane_start, o);
}

// ---------------------------------------------------------------------------------------------------------------
// The gradient's sums: eight planes at a time, one per lane (each lane's chains are the scalar loop's), their
// values brought into lanes by transposing 8 × 8 blocks; the rest of the planes one at a time.

INLINE float clipped(float y, float g) { return y > 0 ? g : 0; }

// Planes i … i + 7 (of `pooled` windows each, from g, y, m) into sums[2i …].
INLINE void sums8(const float *g, const float *y, const float *m, long pooled, long i, long channels,
                  const float *mean, float *sums) {
    v8 mu;
    for (int j = 0; j < 8; j++) mu[j] = mean[(i + j) % channels];
    v8 s = 0, d = 0;
    long k = 0;
    for (; k + 8 <= pooled; k += 8) {
        v8 G[8], Y[8], M[8];
        for (int j = 0; j < 8; j++) {
            G[j] = load8(g + j * pooled + k); Y[j] = load8(y + j * pooled + k); M[j] = load8(m + j * pooled + k);
        }
        transpose8(G); transpose8(Y); transpose8(M);
        for (int t = 0; t < 8; t++) {
            const v8 v = blend8(Y[t] > (v8)0, G[t], (v8)0);
            s += v; d += v * (M[t] - mu);
        }
    }
    for (; k < pooled; k++) {
        v8 G, Y, M;
        for (int j = 0; j < 8; j++) { G[j] = g[j * pooled + k]; Y[j] = y[j * pooled + k]; M[j] = m[j * pooled + k]; }
        const v8 v = blend8(Y > (v8)0, G, (v8)0);
        s += v; d += v * (M - mu);
    }
    for (int j = 0; j < 8; j++) { sums[2 * (i + j)] = s[j]; sums[2 * (i + j) + 1] = d[j]; }
}

INLINE void sums1(const float *g, const float *y, const float *m, long pooled, long i, float mu, float *sums) {
    float s = 0, d = 0;
    for (long k = 0; k < pooled; k++) {
        const float v = clipped(y[k], g[k]);
        s += v; d += v * (m[k] - mu);
    }
    sums[2 * i] = s; sums[2 * i + 1] = d;
}

#define SUMS(suffix, attributes)                                                                                \
    static attributes void sums_##suffix(const float *pg, const float *py, const float *pm, long pooled,        \
                                         long first, long count, long channels, const float *mean, float *sums) { \
        long i = first;                                                                                         \
        for (; i + 8 <= first + count; i += 8)                                                                  \
            sums8(pg + i * pooled, py + i * pooled, pm + i * pooled, pooled, i, channels, mean, sums);          \
        for (; i < first + count; i++)                                                                          \
            sums1(pg + i * pooled, py + i * pooled, pm + i * pooled, pooled, i, mean[i % channels], sums);      \
    }
SUMS(avx2, __attribute__((target("avx2"))))
SUMS(base, )

void cblock_gradient_sums(const float *pg, const float *py, const float *pm, long pooled, long first, long count,
                          long channels, const float *mean, float *sums) {
    if (has_avx2()) sums_avx2(pg, py, pm, pooled, first, count, channels, mean, sums);
    else sums_base(pg, py, pm, pooled, first, count, channels, mean, sums);
}
