// Winograd F(2×2, 3×3) convolutions: see include/cwinograd.h.
//
// Buffers for one image (the workspace): V [16][c][ld] the input tiles' transforms, M [16][o][ld] their products
// (or the output gradient's transforms), tiles in row-major order along the last axis, ld = tiles rounded up
// to 8, plus 8 of slack; then (for the weight gradient's sums up to XSMM_WEIGHT_GRADIENT_TILES tiles) T [16][m][c],
// V with tiles and channels swapped. The transforms work on eight tiles of a row at once; a row's last vector may
// spill into the next row's tiles, which are written after it, or into the slack. The 16 planes of V and of M are
// kept off multiples of 4 KiB apart (48 floats more) so that their streams do not share cache sets.
#pragma STDC FP_CONTRACT OFF
// The vector helpers below are always inlined, so the ABI of 8-float vectors without AVX never comes into play.
#pragma clang diagnostic ignored "-Wpsabi"
#include "cwinograd.h"
#include <cblas.h>
#include <libxsmm.h>
#include <stdio.h>
#include <string.h>
#include "vectors.h"

static inline __attribute__((always_inline)) v8 evens(v8 a, v8 b) { return __builtin_shufflevector(a, b, 0, 2, 4, 6, 8, 10, 12, 14); }
static inline __attribute__((always_inline)) v8 odds(v8 a, v8 b) { return __builtin_shufflevector(a, b, 1, 3, 5, 7, 9, 11, 13, 15); }

/// n floats from src to dst (short rows: no call into libc).
static inline __attribute__((always_inline)) void copy(float *dst, const float *src, int n) {
    int x = 0;
    for (; x + 8 <= n; x += 8) store8(dst + x, load8(src + x));
    for (; x < n; x++) dst[x] = src[x];
}

// Tiles per image up to which the weight gradient's products run on LIBXSMM (64 × 64 channels, one thread, the
// AMD EPYC of 2026-12-02, products alone: 1.4–1.7× OpenBLAS's speed at 16 to 100 tiles, within 6% of it at 196 and
// 441, where that would not pay for the transposition). Conv4's 3 × 3 layers on 28 × 28 images (49 and 16 tiles), 32 × 32 (64,
// 16) and 84 × 84 images' 21 × 21 and 10 × 10 layers (121, 25) use it; their 42 × 42 layer (441) OpenBLAS.
#define XSMM_WEIGHT_GRADIENT_TILES 128

typedef struct {
    int c, h, w, o, th, tw, tiles, m, ld, ph, pw;
    long sv, sm;
    float *V, *M, *plane, *rows, *T;
} layout_t;

static layout_t layout(int c, int h, int w, int o, float *workspace) {
    layout_t l;
    l.c = c; l.h = h; l.w = w; l.o = o;
    l.th = (h + 1) / 2; l.tw = (w + 1) / 2;
    l.tiles = l.th * l.tw;
    l.m = (l.tiles + 7) / 8 * 8;
    l.ld = l.m + 8;
    l.sv = (long)c * l.ld + 48; l.sm = (long)o * l.ld + 48;
    l.ph = 2 * l.th + 2; l.pw = (2 * l.tw + 2 + 7) / 8 * 8 + 24;   // the last vectors read up to 2·tw + 21
    l.V = workspace; l.M = l.V + 16 * l.sv; l.plane = l.M + 16 * l.sm; l.rows = l.plane + (long)l.ph * l.pw;
    l.T = l.rows + 4L * l.pw;
    return l;
}

long cwino_workspace_floats(int c, int h, int w, int o) {
    layout_t l = layout(c, h, w, o, NULL);
    return 16 * l.sv + 16 * l.sm + (long)l.ph * l.pw + 4L * l.pw + (l.tiles <= XSMM_WEIGHT_GRADIENT_TILES ? 16L * l.m * c : 0);
}

// One input plane (zero-padded by one on every side) into V[·][ci][…]: Bᵀ d B for every 4×4 patch.
static inline __attribute__((always_inline)) void transform_input(const layout_t *l, const float *src, int ci) {
    const int h = l->h, w = l->w, th = l->th, tw = l->tw, pw = l->pw;
    const long stride = l->sv;
    float *plane = l->plane;
    memset(plane, 0, sizeof(float) * pw);
    for (int y = 0; y < h; y++) {
        float *row = plane + (long)(y + 1) * pw;
        row[0] = 0;
        copy(row + 1, src + (long)y * w, w);
        for (int x = w + 1; x < pw; x++) row[x] = 0;
    }
    for (int y = h + 1; y < l->ph; y++) memset(plane + (long)y * pw, 0, sizeof(float) * pw);
    float *V = l->V + (long)ci * l->ld;
    for (int ty = 0; ty < th; ty++) {
        const float *r0 = plane + (long)(2 * ty) * pw, *r1 = r0 + pw, *r2 = r1 + pw, *r3 = r2 + pw;
        for (int x0 = 0; x0 < tw; x0 += 8) {
            // Columns 2·x0 … 2·x0 + 23 of the four rows, combined down the rows (Bᵀ d), kept in registers: a tile
            // x reads columns 2x … 2x + 3, so eight tiles read the first 18.
            const int x = 2 * x0;
            v8 t[4][3];
            for (int k = 0; k < 3; k++) {
                const v8 a = load8(r0 + x + 8 * k), b = load8(r1 + x + 8 * k), c = load8(r2 + x + 8 * k), d = load8(r3 + x + 8 * k);
                t[0][k] = a - c; t[1][k] = b + c; t[2][k] = c - b; t[3][k] = b - d;
            }
            for (int i = 0; i < 4; i++) {
                // Columns 2x, 2x + 1, 2x + 2, 2x + 3 of each tile, then combined along the row (· B).
                const v8 e = evens(t[i][0], t[i][1]), od = odds(t[i][0], t[i][1]);
                const v8 e1 = __builtin_shufflevector(e, t[i][2], 1, 2, 3, 4, 5, 6, 7, 8);
                const v8 o1 = __builtin_shufflevector(od, t[i][2], 1, 2, 3, 4, 5, 6, 7, 9);
                float *v = V + (long)(4 * i) * stride + ty * tw + x0;
                store8(v, e - e1);
                store8(v + stride, od + e1);
                store8(v + 2 * stride, e1 - od);
                store8(v + 3 * stride, od - o1);
            }
        }
    }
}

// One output plane from M[·][oc][…]: Aᵀ m A for every tile, plus the bias.
static inline __attribute__((always_inline)) void transform_output(const layout_t *l, float *dst, int oc, float bias) {
    const int h = l->h, w = l->w, th = l->th, tw = l->tw, pw = l->pw;
    const long stride = l->sm;
    const float *M = l->M + (long)oc * l->ld;
    float *row0 = l->rows, *row1 = l->rows + pw;
    const v8 b = bias;
    for (int ty = 0; ty < th; ty++) {
        for (int x0 = 0; x0 < tw; x0 += 8) {
            const float *m = M + ty * tw + x0;
            v8 r0[4], r1[4];
            for (int j = 0; j < 4; j++) {
                v8 m0 = load8(m + j * stride), m1 = load8(m + (4 + j) * stride), m2 = load8(m + (8 + j) * stride),
                   m3 = load8(m + (12 + j) * stride);
                r0[j] = m0 + m1 + m2; r1[j] = m1 - m2 - m3;
            }
            v8 y00 = r0[0] + r0[1] + r0[2] + b, y01 = r0[1] - r0[2] - r0[3] + b;
            v8 y10 = r1[0] + r1[1] + r1[2] + b, y11 = r1[1] - r1[2] - r1[3] + b;
            store8(row0 + 2 * x0, __builtin_shufflevector(y00, y01, 0, 8, 1, 9, 2, 10, 3, 11));
            store8(row0 + 2 * x0 + 8, __builtin_shufflevector(y00, y01, 4, 12, 5, 13, 6, 14, 7, 15));
            store8(row1 + 2 * x0, __builtin_shufflevector(y10, y11, 0, 8, 1, 9, 2, 10, 3, 11));
            store8(row1 + 2 * x0 + 8, __builtin_shufflevector(y10, y11, 4, 12, 5, 13, 6, 14, 7, 15));
        }
        copy(dst + (long)(2 * ty) * w, row0, w);
        if (2 * ty + 1 < h) copy(dst + (long)(2 * ty + 1) * w, row1, w);
    }
}

// One output-gradient plane into M[·][oc][…]: A dy Aᵀ for every tile's 2×2 dy (zero past the plane).
static inline __attribute__((always_inline)) void transform_output_gradient(const layout_t *l, const float *src, int oc) {
    const int h = l->h, w = l->w, th = l->th, tw = l->tw, pw = l->pw;
    const long stride = l->sm;
    float *plane = l->plane;
    for (int y = 0; y < 2 * th; y++) {
        float *row = plane + (long)y * pw;
        int x = 0;
        if (y < h) { copy(row, src + (long)y * w, w); x = w; }
        for (; x < pw; x++) row[x] = 0;
    }
    float *M = l->M + (long)oc * l->ld;
    for (int ty = 0; ty < th; ty++) {
        const float *s0 = plane + (long)(2 * ty) * pw, *s1 = s0 + pw;
        for (int x0 = 0; x0 < tw; x0 += 8) {
            v8 a = load8(s0 + 2 * x0), b = load8(s0 + 2 * x0 + 8), c = load8(s1 + 2 * x0), d = load8(s1 + 2 * x0 + 8);
            v8 d00 = evens(a, b), d01 = odds(a, b), d10 = evens(c, d), d11 = odds(c, d);
            v8 q0[4] = {d00, d00 + d01, d00 - d01, -d01}, q1[4] = {d10, d10 + d11, d10 - d11, -d11};
            float *m = M + ty * tw + x0;
            for (int j = 0; j < 4; j++) {
                store8(m + j * stride, q0[j]);
                store8(m + (4 + j) * stride, q0[j] + q1[j]);
                store8(m + (8 + j) * stride, q0[j] - q1[j]);
                store8(m + (12 + j) * stride, -q1[j]);
            }
        }
    }
}

// V[e] (c × m, rows ld apart) into T[e] (m × c): eight channels by eight tiles at a time, the last channels
// (c not a multiple of 8) one by one. Copies only.
static inline __attribute__((always_inline)) void transpose_tiles(const layout_t *l) {
    const int c = l->c, m = l->m, ld = l->ld;
    for (int e = 0; e < 16; e++) {
        const float *v = l->V + e * l->sv;
        float *t = l->T + (long)e * m * c;
        int c0 = 0;
        for (; c0 + 8 <= c; c0 += 8)
            for (int t0 = 0; t0 < m; t0 += 8) {
                const float *s = v + (long)c0 * ld + t0;
                v8 r[8];
                for (int j = 0; j < 8; j++) r[j] = load8(s + j * ld);
                transpose8(r);
                float *d = t + (long)t0 * c + c0;
                for (int j = 0; j < 8; j++) store8(d + j * c, r[j]);
            }
        for (; c0 < c; c0++)
            for (int k = 0; k < m; k++) t[(long)k * c + c0] = v[(long)c0 * ld + k];
    }
}

// The transforms of a whole image, compiled twice: for AVX2 and for the baseline instruction set (additions,
// subtractions and shuffles only, so both give the same bits).
#define TRANSFORMS(suffix, attributes)                                                                         \
    static attributes void inputs_##suffix(const layout_t *l, const float *x) {                                \
        for (int ci = 0; ci < l->c; ci++) transform_input(l, x + (long)ci * l->h * l->w, ci);                   \
    }                                                                                                          \
    static attributes void outputs_##suffix(const layout_t *l, float *y, const float *bias) {                   \
        for (int oc = 0; oc < l->o; oc++) transform_output(l, y + (long)oc * l->h * l->w, oc, bias ? bias[oc] : 0); \
    }                                                                                                          \
    static attributes void gradients_##suffix(const layout_t *l, const float *dy) {                             \
        for (int oc = 0; oc < l->o; oc++) transform_output_gradient(l, dy + (long)oc * l->h * l->w, oc);        \
    }                                                                                                          \
    static attributes void transposed_##suffix(const layout_t *l) { transpose_tiles(l); }
TRANSFORMS(avx2, __attribute__((target("avx2"))))
TRANSFORMS(base, )

static int baseline_only = 0;

void cwino_use_baseline_transforms(int on) { baseline_only = on != 0; }

static inline int has_avx2(void) { return !baseline_only && __builtin_cpu_supports("avx2"); }

int cwino_transforms_use_avx2(void) { return has_avx2(); }

static void inputs(const layout_t *l, const float *x) { if (has_avx2()) inputs_avx2(l, x); else inputs_base(l, x); }
static void outputs(const layout_t *l, float *y, const float *bias) { if (has_avx2()) outputs_avx2(l, y, bias); else outputs_base(l, y, bias); }
static void gradients(const layout_t *l, const float *dy) { if (has_avx2()) gradients_avx2(l, dy); else gradients_base(l, dy); }
static void transpose_all(const layout_t *l) { if (has_avx2()) transposed_avx2(l); else transposed_base(l); }

int cwino_configure(int avx512) {
    libxsmm_init();
    const int wanted = avx512 ? LIBXSMM_X86_AVX512_CORE : LIBXSMM_X86_AVX2;
    libxsmm_set_target_archid(wanted);
    return libxsmm_get_target_archid() == wanted ? 0 : -1;
}

const char *cwino_description(void) {
    static char text[64];
    snprintf(text, sizeof text, "LIBXSMM %d.%d %s", LIBXSMM_VERSION_MAJOR, LIBXSMM_VERSION_MINOR, libxsmm_get_target_arch());
    return text;
}

void cwino_transform_weights(int c, int o, const float *g, int transposed, float *U) {
    // One output channel at a time, its kernels' nine taps gathered into rows over the input channels, so that the
    // arithmetic runs along contiguous rows (vectorised) and U's rows are written in order.
    float k[9][256], a[4][3][256];
    for (int oc = 0; oc < o; oc++)
        for (int c0 = 0; c0 < c; c0 += 256) {
            const int n = c - c0 < 256 ? c - c0 : 256;
            for (int i = 0; i < 9; i++)
                for (int ci = 0; ci < n; ci++)
                    k[i][ci] = transposed ? g[((long)(c0 + ci) * o + oc) * 9 + 8 - i] : g[((long)oc * c + c0 + ci) * 9 + i];
            for (int j = 0; j < 3; j++)
                for (int ci = 0; ci < n; ci++) {
                    a[0][j][ci] = k[j][ci];
                    a[1][j][ci] = 0.5f * (k[j][ci] + k[3 + j][ci] + k[6 + j][ci]);
                    a[2][j][ci] = 0.5f * (k[j][ci] - k[3 + j][ci] + k[6 + j][ci]);
                    a[3][j][ci] = k[6 + j][ci];
                }
            for (int i = 0; i < 4; i++) {
                float *u0 = U + ((long)(4 * i) * o + oc) * c + c0, *u1 = u0 + (long)o * c, *u2 = u1 + (long)o * c,
                      *u3 = u2 + (long)o * c;
                for (int ci = 0; ci < n; ci++) {
                    u0[ci] = a[i][0][ci];
                    u1[ci] = 0.5f * (a[i][0][ci] + a[i][1][ci] + a[i][2][ci]);
                    u2[ci] = 0.5f * (a[i][0][ci] - a[i][1][ci] + a[i][2][ci]);
                    u3[ci] = a[i][2][ci];
                }
            }
        }
}

void cwino_forward(int c, int h, int w, int o, const float *x, const float *U, const float *bias, float *y,
                   float *workspace) {
    const layout_t l = layout(c, h, w, o, workspace);
    // Column-major C (m × o) = A (m × c: V[e], tiles down) · B (c × o: U[e]): LIBXSMM's kernel for the shape, or
    // OpenBLAS where LIBXSMM makes none (products beyond its size limit) — a function of the shape either way.
    const float alpha = 1, beta = 0;
    const libxsmm_blasint m = l.m, n = o, k = c, lda = l.ld, ldb = c, ldc = l.ld;
    const libxsmm_smmfunction kernel = libxsmm_smmdispatch(m, n, k, &lda, &ldb, &ldc, &alpha, &beta, NULL, NULL);
    inputs(&l, x);
    for (int e = 0; e < 16; e++) {
        const float *A = l.V + e * l.sv, *B = U + (long)e * o * c;
        float *C = l.M + e * l.sm;
        if (kernel) kernel(A, B, C);
        else cblas_sgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, l.m, o, c, 1, A, l.ld, B, c, 0, C, l.ld);
    }
    outputs(&l, y, bias);
}

void cwino_weight_gradient(int c, int h, int w, int o, const float *x, const float *dy, float *dU, int accumulate,
                           float *workspace) {
    const layout_t l = layout(c, h, w, o, workspace);
    // dU[e] (o × c) = dM[e] (o × tiles) · V[e]ᵀ (tiles × c) (+ dU[e]). Up to XSMM_WEIGHT_GRADIENT_TILES tiles, as
    // the column-major product (c × o) = T[e] (c × tiles: V[e] transposed, so that the product needs no transposed
    // operand) · M[e] (tiles × o, as it lies) with LIBXSMM's kernel for the shape: each value one chain of
    // multiply-adds over the tiles in order, starting from dU's value (accumulate) or from zero. Beyond (or where
    // LIBXSMM makes no kernel), OpenBLAS on V as it lies. A function of the shape either way.
    const float alpha = 1, beta = accumulate ? 1 : 0;
    const libxsmm_blasint m = c, n = o, k = l.tiles, lda = c, ldb = l.ld, ldc = c;
    const libxsmm_smmfunction kernel = l.tiles <= XSMM_WEIGHT_GRADIENT_TILES
        ? libxsmm_smmdispatch(m, n, k, &lda, &ldb, &ldc, &alpha, &beta, NULL, NULL) : NULL;
    inputs(&l, x);
    gradients(&l, dy);
    if (kernel) {
        transpose_all(&l);
        for (int e = 0; e < 16; e++) kernel(l.T + (long)e * l.m * c, l.M + e * l.sm, dU + (long)e * o * c);
        return;
    }
    for (int e = 0; e < 16; e++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, o, c, l.tiles, 1, l.M + e * l.sm, l.ld, l.V + e * l.sv,
                    l.ld, beta, dU + (long)e * o * c, c);
}

void cwino_weight_gradient_finish(int c, int o, const float *dU, float *dw) {
    // One output channel at a time, along contiguous rows of input channels (vectorised), as the weights'
    // transform: each value the same arithmetic, in the same order, as a kernel at a time.
    float a[3][4][256], k[9][256];
    for (int oc = 0; oc < o; oc++)
        for (int c0 = 0; c0 < c; c0 += 256) {
            const int n = c - c0 < 256 ? c - c0 : 256;
            const float *u = dU + (long)oc * c + c0;
            const long plane = (long)o * c;   // from one of the 16 planes of dU to the next
            for (int j = 0; j < 4; j++)
                for (int ci = 0; ci < n; ci++) {
                    const float u0 = u[j * plane + ci], u1 = u[(4 + j) * plane + ci], u2 = u[(8 + j) * plane + ci],
                                u3 = u[(12 + j) * plane + ci];
                    a[0][j][ci] = u0 + 0.5f * (u1 + u2);
                    a[1][j][ci] = 0.5f * (u1 - u2);
                    a[2][j][ci] = 0.5f * (u1 + u2) + u3;
                }
            for (int i = 0; i < 3; i++)
                for (int ci = 0; ci < n; ci++) {
                    k[3 * i][ci] = a[i][0][ci] + 0.5f * (a[i][1][ci] + a[i][2][ci]);
                    k[3 * i + 1][ci] = 0.5f * (a[i][1][ci] - a[i][2][ci]);
                    k[3 * i + 2][ci] = 0.5f * (a[i][1][ci] + a[i][2][ci]) + a[i][3][ci];
                }
            float *out = dw + ((long)oc * c + c0) * 9;
            for (int ci = 0; ci < n; ci++)
                for (int t = 0; t < 9; t++) out[(long)ci * 9 + t] = k[t][ci];
        }
}

void cwino_prepare_workspace(int c, int h, int w, int o, float *workspace) {
    const layout_t l = layout(c, h, w, o, workspace);
    // Lanes tiles ..< ld of every row: 8 to 15 floats, so two 8-float stores (the second may overlap the first).
    const v8 zero = 0;
    for (int e = 0; e < 16; e++) {
        for (int ci = 0; ci < c; ci++) {
            float *row = l.V + e * l.sv + (long)ci * l.ld;
            store8(row + l.tiles, zero); store8(row + l.ld - 8, zero);
        }
        for (int oc = 0; oc < o; oc++) {
            float *row = l.M + e * l.sm + (long)oc * l.ld;
            store8(row + l.tiles, zero); store8(row + l.ld - 8, zero);
        }
    }
}
