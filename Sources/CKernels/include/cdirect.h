#ifndef METABENCH_CDIRECT_H
#define METABENCH_CDIRECT_H

// Direct convolutions of few input channels (a first layer on grey or colour images: K = c·kh·kw products per
// output value, at most CDIRECT_MAX_PRODUCTS), stride 1, NCHW data, OIHW weights, one image per call on the
// calling thread. The Winograd backend runs them where im2col + OpenBLAS spends more on the column matrix, the
// packing and the zeroing of a large output than on its few multiply-adds.
//
// Each forward value is one chain of fused multiply-adds from 0 over its K products in the order (input
// channel, kernel row, kernel column), then + bias. Each weight-gradient value is the sum over the image's
// output positions, in eight partial sums (positions x ≡ 0 … 7 mod 8 of each row of a plane whose rows are
// padded to a multiple of 8 with zeros, each a chain of fused multiply-adds in row order), added lane by lane
// in order. The fused multiply-adds are exact (one rounding) with or without FMA instructions, so every CPU
// computes the same bits; AVX2 + FMA runs them eight at a time.

/// The most products per output value (K) the direct convolution takes.
#define CDIRECT_MAX_PRODUCTS 32

/// With `on` non-zero, the kernels run their baseline-instruction-set copy (fmaf) even on a CPU with AVX2 and FMA;
/// both round each multiply-add once, so the same bits. For tests, which check that: set it while no convolution
/// runs.
void cdirect_use_baseline_kernels(int on);

/// Whether the kernels run their AVX2 + FMA copy (1) or the baseline one (0).
int cdirect_kernels_use_avx2(void);

/// Floats of scratch one call (forward or weight gradient) needs for this shape.
long cdirect_scratch_floats(int c, int h, int w, int o, int kh, int kw, int pad);

/// y [o, ho, wo] = the convolution of x [c, h, w] with weights [o, c, kh, kw] and padding `pad` (zero outside the
/// image), ho = h + 2·pad − kh + 1, wo likewise (both ≥ 1); plus bias [o] when not NULL. Needs c·kh·kw ≤
/// CDIRECT_MAX_PRODUCTS.
void cdirect_forward(int c, int h, int w, int o, int kh, int kw, int pad, const float *x, const float *weight,
                     const float *bias, float *y, float *scratch);

/// dw [o, c, kh, kw] = (with `accumulate`, dw +) this image's weight gradient Σ_positions dy · x, for x [c, h, w]
/// and the output gradient dy [o, ho, wo] of the convolution above.
void cdirect_weight_gradient(int c, int h, int w, int o, int kh, int kw, int pad, const float *x, const float *dy,
                             float *dw, int accumulate, float *scratch);

#endif
