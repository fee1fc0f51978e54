// Eight-float vectors shared by the C kernels (not part of the module's interface): clang's vector extension,
// which compiles to AVX in functions built for AVX2 and to pairs of SSE registers in the baseline copies.
// Every helper is always inlined, so the ABI of 8-float vectors without AVX never comes into play.
#ifndef METABENCH_CKERNELS_VECTORS_H
#define METABENCH_CKERNELS_VECTORS_H

#include <string.h>

typedef float v8 __attribute__((ext_vector_type(8)));

static inline __attribute__((always_inline)) v8 load8(const float *p) { v8 v; memcpy(&v, p, sizeof v); return v; }
static inline __attribute__((always_inline)) void store8(float *p, v8 v) { memcpy(p, &v, sizeof v); }

// Rows r[0 … 7] become the columns of the 8 × 8 block (copies only).
static inline __attribute__((always_inline)) void transpose8(v8 r[8]) {
    const v8 a0 = __builtin_shufflevector(r[0], r[1], 0, 8, 1, 9, 4, 12, 5, 13),
             a1 = __builtin_shufflevector(r[0], r[1], 2, 10, 3, 11, 6, 14, 7, 15),
             a2 = __builtin_shufflevector(r[2], r[3], 0, 8, 1, 9, 4, 12, 5, 13),
             a3 = __builtin_shufflevector(r[2], r[3], 2, 10, 3, 11, 6, 14, 7, 15),
             a4 = __builtin_shufflevector(r[4], r[5], 0, 8, 1, 9, 4, 12, 5, 13),
             a5 = __builtin_shufflevector(r[4], r[5], 2, 10, 3, 11, 6, 14, 7, 15),
             a6 = __builtin_shufflevector(r[6], r[7], 0, 8, 1, 9, 4, 12, 5, 13),
             a7 = __builtin_shufflevector(r[6], r[7], 2, 10, 3, 11, 6, 14, 7, 15);
    const v8 b0 = __builtin_shufflevector(a0, a2, 0, 1, 8, 9, 4, 5, 12, 13),
             b1 = __builtin_shufflevector(a0, a2, 2, 3, 10, 11, 6, 7, 14, 15),
             b2 = __builtin_shufflevector(a1, a3, 0, 1, 8, 9, 4, 5, 12, 13),
             b3 = __builtin_shufflevector(a1, a3, 2, 3, 10, 11, 6, 7, 14, 15),
             b4 = __builtin_shufflevector(a4, a6, 0, 1, 8, 9, 4, 5, 12, 13),
             b5 = __builtin_shufflevector(a4, a6, 2, 3, 10, 11, 6, 7, 14, 15),
             b6 = __builtin_shufflevector(a5, a7, 0, 1, 8, 9, 4, 5, 12, 13),
             b7 = __builtin_shufflevector(a5, a7, 2, 3, 10, 11, 6, 7, 14, 15);
    r[0] = __builtin_shufflevector(b0, b4, 0, 1, 2, 3, 8, 9, 10, 11);
    r[1] = __builtin_shufflevector(b1, b5, 0, 1, 2, 3, 8, 9, 10, 11);
    r[2] = __builtin_shufflevector(b2, b6, 0, 1, 2, 3, 8, 9, 10, 11);
    r[3] = __builtin_shufflevector(b3, b7, 0, 1, 2, 3, 8, 9, 10, 11);
    r[4] = __builtin_shufflevector(b0, b4, 4, 5, 6, 7, 12, 13, 14, 15);
    r[5] = __builtin_shufflevector(b1, b5, 4, 5, 6, 7, 12, 13, 14, 15);
    r[6] = __builtin_shufflevector(b2, b6, 4, 5, 6, 7, 12, 13, 14, 15);
    r[7] = __builtin_shufflevector(b3, b7, 4, 5, 6, 7, 12, 13, 14, 15);
}

#endif
