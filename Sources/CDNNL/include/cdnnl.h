#ifndef METABENCH_CDNNL_H
#define METABENCH_CDNNL_H

// oneDNN's direct convolutions behind the engine's NCHW/OIHW buffers: each call reorders its inputs into the
// layout oneDNN's kernel chose (blocked channels), runs it single-threaded on the calling thread and reorders
// its output back. Primitives, reorders and their buffers are made once per shape and kept per thread, so
// calls from several threads at once never share state.

/// The sizes of one convolution (NCHW input, OIHW weights, square stride and padding).
typedef struct {
    int n, c, h, w, o, kh, kw, stride, pad;
} cdnnl_geometry;

/// Restricts oneDNN to an instruction set: 2 = AVX2, 3 = AVX-512 (core), anything else = AVX2 where the CPU has
/// it. Call before the first convolution. Returns 0, or -1 when oneDNN refused (it already made a kernel).
int cdnnl_set_max_isa(int isa);

/// oneDNN's version and the instruction set its kernels use, e.g. "2.6.3 avx2". Never NULL.
const char *cdnnl_description(void);

/// The forward values y [n, o, ho, wo] = x ⋆ w (+ bias when not NULL). Returns NULL, or a message naming
/// what oneDNN refused.
const char *cdnnl_forward(cdnnl_geometry g, const float *x, const float *w, const float *bias, float *y);

/// The input gradient dx [n, c, h, w] for the output gradient dy.
const char *cdnnl_backward_data(cdnnl_geometry g, const float *dy, const float *w, float *dx);

/// The weight gradient dw [o, c, kh, kw] (and the bias gradient [o] when `dbias` is not NULL), summed over the
/// n images of x and dy.
const char *cdnnl_backward_weights(cdnnl_geometry g, const float *x, const float *dy, float *dw, float *dbias);

/// The name of the kernel oneDNN chose for an operation (0 forward, 1 input gradient, 2 weight gradient) on
/// this geometry, e.g. "jit:avx2"; "unknown" when it cannot make one.
const char *cdnnl_implementation(cdnnl_geometry g, int operation);

#endif
