#pragma once
#include <cblas.h>

// OpenBLAS's dynamic-architecture entry points: re-selecting the kernels after setting
// OPENBLAS_CORETYPE at run time (the library reads it once, when loaded).
extern void gotoblas_dynamic_init(void);
extern void gotoblas_dynamic_quit(void);

#include <malloc.h>
// Keeps freed buffers up to 32 MiB in the heap (no unmapping and re-faulting every step).
static inline void cengine_keep_freed_buffers(void) {
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 512 << 20);
}
