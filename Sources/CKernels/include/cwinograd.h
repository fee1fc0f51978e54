#ifndef METABENCH_CWINOGRAD_H
#define METABENCH_CWINOGRAD_H

// Winograd F(2×2, 3×3) convolutions (3×3 kernel, stride 1, padding 1, NCHW data, OIHW weights), one image per
// call on the calling thread: the input's 4×4 tiles are transformed (Bᵀ d B), multiplied by the transformed
// weights (G g Gᵀ) in 16 products — LIBXSMM's JIT kernels (OpenBLAS for products beyond LIBXSMM's size
// limit) — and transformed back (Aᵀ m A). 2.25× fewer multiplications than a direct convolution.
// An image's values depend only on that image, the weights and the kernels in use (never on other images or
// threads). The transforms are additions only, the same on every instruction set.

/// Restricts LIBXSMM's kernels to an instruction set (1: AVX-512 ("skx"), 0: AVX2 ("hsw")) so that one OpenBLAS
/// kernel family gets one kind of kernel on every machine. Call once, before the first convolution. Returns 0,
/// or -1 when the CPU lacks that instruction set (LIBXSMM then picks the CPU's own).
int cwino_configure(int avx512);

/// With `on` non-zero, the transforms run their baseline-instruction-set copy even on a CPU with AVX2 (they run
/// the AVX2 copy there otherwise); both are the same additions, so the same bits. For tests, which check that:
/// set it while no convolution runs.
void cwino_use_baseline_transforms(int on);

/// Whether the transforms run their AVX2 copy (1) or the baseline one (0).
int cwino_transforms_use_avx2(void);

/// LIBXSMM's version and the instruction set of its kernels, e.g. "LIBXSMM 1.17 hsw". Never NULL.
const char *cwino_description(void);

/// Floats of workspace one call of cwino_forward or cwino_weight_gradient needs for this shape (c input and o
/// output channels, h×w planes); the input gradient is a forward with c and o swapped.
long cwino_workspace_floats(int c, int h, int w, int o);

/// Zeroes the only parts of a workspace for this shape that the calls read without writing first (the lanes of
/// transformed tiles and products past a plane's last tile, whose products are computed and thrown away), so
/// that no call reads memory nothing wrote. Once per workspace, before its first call; the calls leave those
/// lanes finite. What the calls keep does not depend on those lanes.
void cwino_prepare_workspace(int c, int h, int w, int o, float *workspace);

/// U [16, o, c] = G g Gᵀ for each 3×3 kernel of w: [o, c, 3, 3], or with `transposed` w [c, o, 3, 3] rotated by
/// 180° (the input gradient's convolution: a forward from the output gradient, c and o swapped).
void cwino_transform_weights(int c, int o, const float *w, int transposed, float *U);

/// One image: y [o, h, w] = x [c, h, w] ⋆ g (+ bias [o] when not NULL), U from cwino_transform_weights.
/// The products are LIBXSMM's kernel for the shape, or OpenBLAS's sgemm where LIBXSMM makes none.
void cwino_forward(int c, int h, int w, int o, const float *x, const float *U, const float *bias, float *y,
                   float *workspace);

/// One image's share of the weight gradient before its transform back: dU [16, o, c] = (dU when `accumulate`,
/// else 0) + Σ over the tiles of (A dy Aᵀ) ⊙ (Bᵀ x B), for x [c, h, w] and its output gradient dy [o, h, w]:
/// each value one chain of multiply-adds over the tiles in order, from dU's value or from zero (LIBXSMM's kernel;
/// OpenBLAS's sgemm, whose sums pair terms in some tiles, where LIBXSMM makes none).
void cwino_weight_gradient(int c, int h, int w, int o, const float *x, const float *dy, float *dU, int accumulate,
                           float *workspace);

/// The weight gradient dw [o, c, 3, 3] = Gᵀ dU G from the sums of cwino_weight_gradient.
void cwino_weight_gradient_finish(int c, int o, const float *dU, float *dw);

#endif
