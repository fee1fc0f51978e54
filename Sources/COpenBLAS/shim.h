#pragma once
#include <cblas.h>

// OpenBLAS's dynamic-architecture entry points: re-selecting the kernels after setting
// OPENBLAS_CORETYPE at run time (the library reads it once, when loaded).
extern void gotoblas_dynamic_init(void);
extern void gotoblas_dynamic_quit(void);
