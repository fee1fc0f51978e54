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
// Gives the free pages of every malloc arena back to the kernel (what the trim threshold above keeps).
static inline void cengine_return_freed_memory(void) {
    (void)malloc_trim(0);
}

#include <stdint.h>
#include <sys/mman.h>
// Buffers above the 32 MiB mmap threshold are mapped afresh by every allocation and faulted in 4 KiB page by
// page on first write. Asks the kernel for transparent huge pages on the whole 2 MiB blocks of such a buffer
// before it is written: one fault per 2 MiB where the kernel grants them (with defrag=madvise it compacts
// memory for advised regions only). Advice only: where THP is off or unavailable nothing changes, and no
// value changes either way (README, Benchmarks, "Page faults").
static inline void cengine_advise_huge_pages(void *pointer, size_t bytes) {
#ifdef MADV_HUGEPAGE
    const uintptr_t block = (uintptr_t)2 << 20;
    if (bytes < ((size_t)32 << 20)) return;
    uintptr_t start = ((uintptr_t)pointer + block - 1) & ~(block - 1);
    uintptr_t end = ((uintptr_t)pointer + bytes) & ~(block - 1);
    if (end > start) (void)madvise((void *)start, end - start, MADV_HUGEPAGE);
#else
    (void)pointer; (void)bytes;
#endif
}
