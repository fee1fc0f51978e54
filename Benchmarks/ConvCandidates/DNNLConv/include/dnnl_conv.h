// oneDNN (Debian libdnnl-dev 2.6) convolutions of one shape, for the ConvCandidates benchmark, and a
// Winograd F(2x2, 3x3) forward on OpenBLAS. Plain C so oneDNN's macros need no bridging.
#pragma once

/// Sets oneDNN's (OpenMP) thread count; returns the count OpenMP then reports.
int dnnlconv_set_threads(int threads);

/// One convolution shape: n×c×h×w input, o×c×k×k weights, stride 1, padding `pad` on every side, no bias.
/// `layout` 0: NCHW data and OIHW weights, the engine's layout (a drop-in behind its operations);
/// 1: the layouts oneDNN prefers (blocked), i.e. the best case of a network kept in oneDNN's layout;
/// 2: the blocked primitives of 1 behind NCHW/OIHW buffers, each run counting the reorders a drop-in behind
/// the engine's NCHW operations would make (see dnnlconv_run).
/// Returns NULL when oneDNN cannot make the primitives; `error` then names the step.
void *dnnlconv_create(int n, int c, int h, int w, int o, int k, int pad, int layout, const char **error);
/// Fills the primitive's source, weights and output gradient with the given NCHW/OIHW values (reordered
/// into the primitive's layout when it is blocked).
void dnnlconv_fill(void *conv, const float *x, const float *weights, const float *gradient);
/// Runs `which` (0 forward, 1 backward data, 2 backward weights) once.
void dnnlconv_run(void *conv, int which);
/// The implementation oneDNN chose for `which` (e.g. "jit:avx2").
const char *dnnlconv_impl(void *conv, int which);
/// Copies the result of `which` (output, input gradient, weight gradient) into `out` in NCHW/OIHW order.
void dnnlconv_result(void *conv, int which, float *out);
void dnnlconv_destroy(void *conv);

/// Winograd F(2x2, 3x3) forward of a 3×3, padding-1, stride-1 convolution on NCHW data with OIHW weights:
/// tiles transformed, 16 OpenBLAS products of [o, c] × [c, tiles], outputs transformed back.
/// `workspace` must hold winograd_workspace_floats(n, c, h, w, o) floats.
long winograd_workspace_floats(int n, int c, int h, int w, int o);
void winograd_forward(const float *x, const float *weights, float *y, int n, int c, int h, int w, int o,
                      float *workspace);
