// Direct convolutions of few input channels: see include/cdirect.h.
//
// Scratch: the image's input planes zero-padded ([c][ph][pw], pw wide enough for the last vector of a padded
// output row to read), then, for the weight gradient, one output-gradient plane with rows padded to wo8 (a
// multiple of 8) with zeros. Forward rows run eight values at a time; a row's last vector may overlap the one
// before it (it writes the same values again); rows narrower than eight run value by value, with the same
// fused multiply-adds.
#pragma STDC FP_CONTRACT OFF
#pragma clang diagnostic ignored "-Wpsabi"
#include "cdirect.h"
#include <math.h>
#include <string.h>
#include "vectors.h"

typedef struct {
    int c, h, w, o, kh, kw, pad, ph, pw, ho, wo, wo8, k;
} shape_t;

static shape_t shape(int c, int h, int w, int o, int kh, int kw, int pad) {
    shape_t s;
    s.c = c; s.h = h; s.w = w; s.o = o; s.kh = kh; s.kw = kw; s.pad = pad;
    s.ho = h + 2 * pad - kh + 1; s.wo = w + 2 * pad - kw + 1;
    s.wo8 = (s.wo + 7) / 8 * 8;
    s.ph = h + 2 * pad;
    s.pw = w + 2 * pad > s.wo8 + kw - 1 ? w + 2 * pad : s.wo8 + kw - 1;
    s.k = c * kh * kw;
    return s;
}

long cdirect_scratch_floats(int c, int h, int w, int o, int kh, int kw, int pad) {
    (void)o;
    const shape_t s = shape(c, h, w, 1, kh, kw, pad);
    return (long)c * s.ph * s.pw + (long)s.ho * s.wo8;
}


// The zero-padded input planes.
static inline __attribute__((always_inline)) void pad_input(const shape_t *s, const float *x, float *planes) {
    memset(planes, 0, sizeof(float) * (size_t)s->c * s->ph * s->pw);
    for (int ci = 0; ci < s->c; ci++)
        for (int r = 0; r < s->h; r++)
            memcpy(planes + ((long)ci * s->ph + r + s->pad) * s->pw + s->pad, x + ((long)ci * s->h + r) * s->w,
                   sizeof(float) * s->w);
}

// One output channel of one image: its weights broadcast once (in registers when C·KH·KW is a small constant),
// then each row's vectors, each one chain over the products (channel, kernel row, kernel column). C, KH and KW
// are constants where inlined with constants.
static inline __attribute__((always_inline)) void forward_channel(const shape_t *s, const float *planes,
                                                                  const float *wt, const float *bias, float *y,
                                                                  const int C, const int KH, const int KW) {
    v8 wv[CDIRECT_MAX_PRODUCTS];
    for (int t = 0; t < C * KH * KW; t++) wv[t] = (v8)wt[t];
    const float b = bias ? *bias : 0;
    const long plane = (long)s->ph * s->pw;
    for (int r = 0; r < s->ho; r++) {
        const float *row = planes + (long)r * s->pw;
        float *dst = y + (long)r * s->wo;
        if (s->wo >= 8) {
            for (int x0 = 0;; x0 = x0 + 16 <= s->wo ? x0 + 8 : s->wo - 8) {
                v8 acc = 0;
                for (int ci = 0; ci < C; ci++)
                    for (int i = 0; i < KH; i++) {
                        const float *p = row + ci * plane + (long)i * s->pw + x0;
                        for (int j = 0; j < KW; j++) acc = __builtin_elementwise_fma(wv[(ci * KH + i) * KW + j], load8(p + j), acc);
                    }
                if (bias) acc = acc + b;
                store8(dst + x0, acc);
                if (x0 + 8 >= s->wo) break;
            }
        } else {
            for (int x0 = 0; x0 < s->wo; x0++) {
                float acc = 0;
                for (int ci = 0; ci < C; ci++)
                    for (int i = 0; i < KH; i++)
                        for (int j = 0; j < KW; j++)
                            acc = fmaf(wt[(ci * KH + i) * KW + j], row[ci * plane + (long)i * s->pw + x0 + j], acc);
                if (bias) acc = acc + b;
                dst[x0] = acc;
            }
        }
    }
}

static inline __attribute__((always_inline)) void forward_all(const shape_t *s, const float *planes,
                                                              const float *weight, const float *bias, float *y,
                                                              const int C, const int KH, const int KW) {
    for (int oc = 0; oc < s->o; oc++)
        forward_channel(s, planes, weight + (long)oc * C * KH * KW, bias ? bias + oc : NULL,
                        y + (long)oc * s->ho * s->wo, C, KH, KW);
}

// One output channel's weight gradient: K sums of eight lanes each.
static inline __attribute__((always_inline)) void weight_gradient_channel(const shape_t *s, const float *planes,
                                                                          const float *d, float *out, int accumulate,
                                                                          const int C, const int KH, const int KW) {
    v8 acc[CDIRECT_MAX_PRODUCTS];
    const int K = C * KH * KW;
    const long plane = (long)s->ph * s->pw;
    for (int t = 0; t < K; t++) acc[t] = 0;
    for (int r = 0; r < s->ho; r++) {
        const float *row = planes + (long)r * s->pw;
        for (int x0 = 0; x0 < s->wo8; x0 += 8) {
            const v8 g = load8(d + (long)r * s->wo8 + x0);
            for (int ci = 0; ci < C; ci++)
                for (int i = 0; i < KH; i++) {
                    const float *p = row + ci * plane + (long)i * s->pw + x0;
                    for (int j = 0; j < KW; j++) {
                        const int t = (ci * KH + i) * KW + j;
                        acc[t] = __builtin_elementwise_fma(g, load8(p + j), acc[t]);
                    }
                }
        }
    }
    for (int t = 0; t < K; t++) {
        float sum = acc[t][0];
        for (int lane = 1; lane < 8; lane++) sum = sum + acc[t][lane];
        out[t] = accumulate ? out[t] + sum : sum;
    }
}

// Both compiled twice: for AVX2 + FMA and for the baseline instruction set (fmaf: the same single rounding), each
// with the common K (3×3 on grey and on colour images) as constants.
#define KERNELS(suffix, attributes)                                                                           \
    static attributes void forward_##suffix(const shape_t *s, const float *planes, const float *weight,        \
                                            const float *bias, float *y) {                                    \
        if (s->kh == 3 && s->kw == 3 && s->c == 1) forward_all(s, planes, weight, bias, y, 1, 3, 3);           \
        else if (s->kh == 3 && s->kw == 3 && s->c == 3) forward_all(s, planes, weight, bias, y, 3, 3, 3);      \
        else forward_all(s, planes, weight, bias, y, s->c, s->kh, s->kw);                                     \
    }                                                                                                         \
    static attributes void weight_gradient_##suffix(const shape_t *s, const float *planes, const float *d,     \
                                                    float *out, int accumulate) {                             \
        if (s->kh == 3 && s->kw == 3 && s->c == 1) weight_gradient_channel(s, planes, d, out, accumulate, 1, 3, 3); \
        else if (s->kh == 3 && s->kw == 3 && s->c == 3) weight_gradient_channel(s, planes, d, out, accumulate, 3, 3, 3); \
        else weight_gradient_channel(s, planes, d, out, accumulate, s->c, s->kh, s->kw);                      \
    }
KERNELS(avx2, __attribute__((target("avx2,fma"))))
KERNELS(base, )

static int baseline_only = 0;

void cdirect_use_baseline_kernels(int on) { baseline_only = on != 0; }

static inline int has_avx2_fma(void) {
    return !baseline_only && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

int cdirect_kernels_use_avx2(void) { return has_avx2_fma(); }

void cdirect_forward(int c, int h, int w, int o, int kh, int kw, int pad, const float *x, const float *weight,
                     const float *bias, float *y, float *scratch) {
    const shape_t s = shape(c, h, w, o, kh, kw, pad);
    pad_input(&s, x, scratch);
    if (has_avx2_fma()) forward_avx2(&s, scratch, weight, bias, y);
    else forward_base(&s, scratch, weight, bias, y);
}

void cdirect_weight_gradient(int c, int h, int w, int o, int kh, int kw, int pad, const float *x, const float *dy,
                             float *dw, int accumulate, float *scratch) {
    const shape_t s = shape(c, h, w, o, kh, kw, pad);
    pad_input(&s, x, scratch);
    float *dyp = scratch + (long)c * s.ph * s.pw;
    // The output gradient a channel at a time, its rows padded to wo8 with zeros, then its K sums.
    for (int oc = 0; oc < o; oc++) {
        for (int r = 0; r < s.ho; r++) {
            float *dst = dyp + (long)r * s.wo8;
            const float *src = dy + ((long)oc * s.ho + r) * s.wo;
            for (int x = 0; x < s.wo; x++) dst[x] = src[x];
            for (int x = s.wo; x < s.wo8; x++) dst[x] = 0;
        }
        if (has_avx2_fma()) weight_gradient_avx2(&s, scratch, dyp, dw + (long)oc * s.k, accumulate);
        else weight_gradient_base(&s, scratch, dyp, dw + (long)oc * s.k, accumulate);
    }
}
