#ifndef METABENCH_CBLOCK_H
#define METABENCH_CBLOCK_H

#include <stdint.h>

// The passes over one plane of the fused block relu(maxPool(batchNorm(x))) in training (the engine's
// `blockForward` and `BlockGradient`): the forward pooling of the normalised plane and the first-order gradient
// of the plane before pooling, with its two sums per plane. Each value's multiplications and additions in a fixed
// order, never fused into one rounding, and each plane's sums one chain in order, so every instruction set and
// every grouping of values or planes into vectors gives the same bits; on a CPU with AVX2 they run eight windows
// (or planes) at a time.

/// With `on` non-zero, the passes run their baseline-instruction-set copy even on a CPU with AVX2 (the same bits).
/// For tests, which check that: set it while no pass runs.
void cblock_use_baseline_kernels(int on);

/// Whether the passes run their AVX2 copy (1) or the baseline one (0).
int cblock_kernels_use_avx2(void);

/// relu(maxPool(a·x + shift)) of one h × w plane `p` with size × size windows (ho = h / size, wo = w / size
/// windows, the rows and columns past them unused): for each window, in row-major order, the first maximum of
/// x·a + shift by `>` (a later NaN never wins; a NaN in the first position stays) after the ReLU (≤ 0 or NaN: 0) into `po`, its flat index (`first_index` + its
/// offset in the plane, wrapping in 32 bits) into `pi`, and its value in `p` into `pm`.
void cblock_pool(const float *p, int h, int w, int size, float a, float shift, int32_t first_index, float *po,
                 int32_t *pi, float *pm);

/// The first-order gradient of one h × w plane before pooling, into `o` (h·w values): each value
/// (−a)·(sum_g + (x − mean)·scale_x), then, for each of the plane's ho·wo windows (size × size) whose output is
/// positive (`py` > 0), am·g (`pg`) added at the window's maximum — the flat index `pi` minus `plane_start` —
/// and where the output is not positive am·0. `pg`, `py` and `pi` are the plane's window values (the pooled
/// gradient, the output and the indices of `cblock_pool`). With 2 × 2 windows each maximum's sum is made in the
/// same pass as the values.
void cblock_plane_gradient(const float *p, int h, int w, int size, float mean, float a, float sum_g, float scale_x,
                           float am, const float *pg, const float *py, const int32_t *pi, long plane_start, float *o);

/// The first-order gradient's two sums of planes first ..< first + count (of `pooled` windows each; pg, py, pm and
/// sums are the whole arrays): for plane i, sums[2i] = Σ gv and sums[2i + 1] = Σ gv·(pm − mean[i mod channels])
/// over its windows in order, gv = pg where py > 0, else 0, each one chain of float additions from 0 (eight planes
/// at a time, one per vector lane, so that eight planes' chains advance together).
void cblock_gradient_sums(const float *pg, const float *py, const float *pm, long pooled, long first, long count,
                          long channels, const float *mean, float *sums);

#endif
