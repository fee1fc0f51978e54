// LIBXSMM (Debian libxsmm-dev 1.17) direct convolutions of one shape in LIBXSMM's own blocked layout, for the
// ConvCandidates benchmark: the best case of a network kept in that layout (inputs physically padded, no
// reorders counted), like oneDNN's blocked column. Plain C so LIBXSMM's macros need no bridging.
#pragma once

/// One convolution shape: n×c×h×w input, o×c×k×k weights, stride 1, padding `pad` (kept in the input
/// buffer), no bias, run on `threads` threads. Returns NULL when LIBXSMM cannot make the layer; `error`
/// then names the step and LIBXSMM's message.
void *xsmmconv_create(int n, int c, int h, int w, int o, int k, int pad, int threads, const char **error);
/// Fills the layer's input, weights and output gradient with the given NCHW/OIHW values (unpadded).
/// Returns 0 on success.
int xsmmconv_fill(void *conv, const float *x, const float *weights, const float *gradient);
/// Runs `which` (0 forward, 1 backward data (with the weights' transpose it needs), 2 backward weights)
/// once. Returns 0 on success.
int xsmmconv_run(void *conv, int which);
/// Copies the result of `which` (output, input gradient, weight gradient) into `out` in NCHW/OIHW order
/// (unpadded). Returns 0 on success.
int xsmmconv_result(void *conv, int which, float *out);
/// LIBXSMM's target architecture (e.g. "hsw" for AVX2, "skx" for AVX-512).
const char *xsmmconv_arch(void);
void xsmmconv_destroy(void *conv);
