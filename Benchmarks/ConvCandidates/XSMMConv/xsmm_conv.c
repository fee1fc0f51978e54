#include "xsmm_conv.h"
#include <libxsmm.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    libxsmm_dnn_layer *layer;
    libxsmm_dnn_tensor *input, *dinput, *output, *doutput, *filter, *dfilter, *filter_tr;
    float *buffers[7];
    void *scratch;
    int n, c, h, w, o, k, pad, threads;
} conv_t;

const char *xsmmconv_arch(void) { libxsmm_init(); return libxsmm_get_target_arch(); }

void xsmmconv_destroy(void *p) {
    conv_t *cv = p;
    if (!cv) return;
    if (cv->layer) {
        libxsmm_dnn_release_scratch(cv->layer, LIBXSMM_DNN_COMPUTE_KIND_ALL);
        const libxsmm_dnn_tensor_type types[] = {LIBXSMM_DNN_REGULAR_INPUT, LIBXSMM_DNN_GRADIENT_INPUT,
            LIBXSMM_DNN_REGULAR_OUTPUT, LIBXSMM_DNN_GRADIENT_OUTPUT, LIBXSMM_DNN_REGULAR_FILTER,
            LIBXSMM_DNN_GRADIENT_FILTER, LIBXSMM_DNN_REGULAR_FILTER_TRANS};
        for (int i = 0; i < 7; i++) libxsmm_dnn_release_tensor(cv->layer, types[i]);
    }
    libxsmm_dnn_tensor *tensors[] = {cv->input, cv->dinput, cv->output, cv->doutput, cv->filter, cv->dfilter, cv->filter_tr};
    for (int i = 0; i < 7; i++) if (tensors[i]) libxsmm_dnn_destroy_tensor(tensors[i]);
    if (cv->layer) libxsmm_dnn_destroy_conv_layer(cv->layer);
    for (int i = 0; i < 7; i++) libxsmm_free(cv->buffers[i]);
    libxsmm_free(cv->scratch);
    free(cv);
}

static int ok(libxsmm_dnn_err_t status, const char *what, const char **error) {
    if (status == LIBXSMM_DNN_SUCCESS || status == LIBXSMM_DNN_WARN_FALLBACK) return 1;
    static char message[256];
    snprintf(message, sizeof message, "%s: %s", what, libxsmm_dnn_get_error(status));
    if (error) *error = message;
    return 0;
}

void *xsmmconv_create(int n, int c, int h, int w, int o, int k, int pad, int threads, const char **error) {
    libxsmm_init();
    conv_t *cv = calloc(1, sizeof(conv_t));
    if (!cv) { if (error) *error = "out of memory"; return NULL; }
    *cv = (conv_t){.n = n, .c = c, .h = h, .w = w, .o = o, .k = k, .pad = pad, .threads = threads};
    libxsmm_dnn_conv_desc d;
    memset(&d, 0, sizeof d);
    d.N = n; d.C = c; d.H = h; d.W = w; d.K = o; d.R = k; d.S = k; d.u = 1; d.v = 1;
    d.pad_h = pad; d.pad_w = pad; d.pad_h_in = pad; d.pad_w_in = pad; d.pad_h_out = 0; d.pad_w_out = 0;
    d.threads = threads;
    d.algo = LIBXSMM_DNN_CONV_ALGO_DIRECT;
    d.buffer_format = LIBXSMM_DNN_TENSOR_FORMAT_LIBXSMM;
    d.filter_format = LIBXSMM_DNN_TENSOR_FORMAT_LIBXSMM;
    d.fuse_ops = LIBXSMM_DNN_CONV_FUSE_NONE;
    d.options = LIBXSMM_DNN_CONV_OPTION_OVERWRITE;
    d.datatype_in = LIBXSMM_DNN_DATATYPE_F32;
    d.datatype_out = LIBXSMM_DNN_DATATYPE_F32;
    libxsmm_dnn_err_t status;
    cv->layer = libxsmm_dnn_create_conv_layer(d, &status);
    if (!cv->layer || !ok(status, "create layer", error)) goto fail;
    // (tensor, its gradient or NULL, layout type, binding types)
    struct { libxsmm_dnn_tensor **value, **gradient; libxsmm_dnn_tensor_type layout, bind, bindGradient; } sets[] = {
        {&cv->input, &cv->dinput, LIBXSMM_DNN_INPUT, LIBXSMM_DNN_REGULAR_INPUT, LIBXSMM_DNN_GRADIENT_INPUT},
        {&cv->output, &cv->doutput, LIBXSMM_DNN_OUTPUT, LIBXSMM_DNN_REGULAR_OUTPUT, LIBXSMM_DNN_GRADIENT_OUTPUT},
        {&cv->filter, &cv->dfilter, LIBXSMM_DNN_FILTER, LIBXSMM_DNN_REGULAR_FILTER, LIBXSMM_DNN_GRADIENT_FILTER},
        {&cv->filter_tr, NULL, LIBXSMM_DNN_REGULAR_FILTER_TRANS, LIBXSMM_DNN_REGULAR_FILTER_TRANS, 0},
    };
    int b = 0;
    for (int i = 0; i < 4; i++) {
        libxsmm_dnn_tensor_datalayout *layout = libxsmm_dnn_create_tensor_datalayout(cv->layer, sets[i].layout, &status);
        if (!layout || !ok(status, "layout", error)) goto fail;
        size_t bytes = libxsmm_dnn_get_tensor_size(layout, &status);
        for (int g = 0; g < (sets[i].gradient ? 2 : 1); g++) {
            cv->buffers[b] = libxsmm_aligned_malloc(bytes, 2097152);
            if (!cv->buffers[b]) { libxsmm_dnn_destroy_tensor_datalayout(layout); if (error) *error = "out of memory"; goto fail; }
            memset(cv->buffers[b], 0, bytes);
            libxsmm_dnn_tensor **t = g ? sets[i].gradient : sets[i].value;
            *t = libxsmm_dnn_link_tensor(layout, cv->buffers[b], &status);
            b++;
            if (!*t || !ok(status, "link tensor", error)) { libxsmm_dnn_destroy_tensor_datalayout(layout); goto fail; }
            if (!ok(libxsmm_dnn_bind_tensor(cv->layer, *t, g ? sets[i].bindGradient : sets[i].bind), "bind", error)) {
                libxsmm_dnn_destroy_tensor_datalayout(layout);
                goto fail;
            }
        }
        libxsmm_dnn_destroy_tensor_datalayout(layout);
    }
    size_t scratch = libxsmm_dnn_get_scratch_size(cv->layer, LIBXSMM_DNN_COMPUTE_KIND_ALL, &status);
    if (!ok(status, "scratch size", error)) goto fail;
    if (scratch > 0) {
        cv->scratch = libxsmm_aligned_scratch(scratch, 2097152);
        if (!cv->scratch) { if (error) *error = "out of memory"; goto fail; }
        if (!ok(libxsmm_dnn_bind_scratch(cv->layer, LIBXSMM_DNN_COMPUTE_KIND_ALL, cv->scratch), "bind scratch", error)) goto fail;
    }
    return cv;
fail:
    xsmmconv_destroy(cv);
    return NULL;
}

/// NCHW with `pad` zeros around each plane (the layer's physically padded input) from unpadded NCHW.
static float *padded(const conv_t *cv, const float *x) {
    int hp = cv->h + 2 * cv->pad, wp = cv->w + 2 * cv->pad;
    float *p = calloc((size_t)cv->n * cv->c * hp * wp, sizeof(float));
    if (!p) return NULL;
    for (long plane = 0; plane < (long)cv->n * cv->c; plane++)
        for (int y = 0; y < cv->h; y++)
            memcpy(p + (plane * hp + y + cv->pad) * wp + cv->pad, x + (plane * cv->h + y) * cv->w, cv->w * sizeof(float));
    return p;
}

int xsmmconv_fill(void *p, const float *x, const float *weights, const float *gradient) {
    conv_t *cv = p;
    float *xp = padded(cv, x);
    if (!xp) return 1;
    int failed = libxsmm_dnn_copyin_tensor(cv->input, xp, LIBXSMM_DNN_TENSOR_FORMAT_NCHW) != LIBXSMM_DNN_SUCCESS;
    free(xp);
    failed |= libxsmm_dnn_copyin_tensor(cv->filter, weights, LIBXSMM_DNN_TENSOR_FORMAT_KCRS) != LIBXSMM_DNN_SUCCESS;
    failed |= libxsmm_dnn_copyin_tensor(cv->doutput, gradient, LIBXSMM_DNN_TENSOR_FORMAT_NCHW) != LIBXSMM_DNN_SUCCESS;
    return failed;
}

typedef struct { conv_t *cv; libxsmm_dnn_compute_kind kind; int tid; libxsmm_dnn_err_t status; } job_t;

static void *work(void *p) {
    job_t *job = p;
    job->status = libxsmm_dnn_execute_st(job->cv->layer, job->kind, 0, job->tid);
    return NULL;
}

int xsmmconv_run(void *p, int which) {
    conv_t *cv = p;
    libxsmm_dnn_compute_kind kind = which == 0 ? LIBXSMM_DNN_COMPUTE_KIND_FWD
                                  : which == 1 ? LIBXSMM_DNN_COMPUTE_KIND_BWD : LIBXSMM_DNN_COMPUTE_KIND_UPD;
    if (which == 1 && libxsmm_dnn_trans_reg_filter(cv->layer) != LIBXSMM_DNN_SUCCESS) return 1;
    job_t jobs[64];
    pthread_t ids[64];
    int threads = cv->threads < 64 ? cv->threads : 64;
    for (int t = 0; t < threads; t++) jobs[t] = (job_t){cv, kind, t, LIBXSMM_DNN_SUCCESS};
    // Threads are started per call (oneDNN's OpenMP pool is kept): a few tens of microseconds, counted. The
    // kernels meet at barriers, so a thread that cannot start would leave the others waiting: stop instead.
    for (int t = 1; t < threads; t++) {
        if (pthread_create(&ids[t], NULL, work, &jobs[t]) != 0) {
            fprintf(stderr, "ConvCandidates: cannot start LIBXSMM thread %d of %d\n", t + 1, threads);
            exit(1);
        }
    }
    work(&jobs[0]);
    for (int t = 1; t < threads; t++) pthread_join(ids[t], NULL);
    for (int t = 0; t < threads; t++) if (jobs[t].status != LIBXSMM_DNN_SUCCESS) return 1;
    return 0;
}

int xsmmconv_result(void *p, int which, float *out) {
    conv_t *cv = p;
    if (which == 0) return libxsmm_dnn_copyout_tensor(cv->output, out, LIBXSMM_DNN_TENSOR_FORMAT_NCHW) != LIBXSMM_DNN_SUCCESS;
    if (which == 2) return libxsmm_dnn_copyout_tensor(cv->dfilter, out, LIBXSMM_DNN_TENSOR_FORMAT_KCRS) != LIBXSMM_DNN_SUCCESS;
    int hp = cv->h + 2 * cv->pad, wp = cv->w + 2 * cv->pad;
    float *xp = malloc((size_t)cv->n * cv->c * hp * wp * sizeof(float));
    if (!xp) return 1;
    int failed = libxsmm_dnn_copyout_tensor(cv->dinput, xp, LIBXSMM_DNN_TENSOR_FORMAT_NCHW) != LIBXSMM_DNN_SUCCESS;
    for (long plane = 0; plane < (long)cv->n * cv->c; plane++)
        for (int y = 0; y < cv->h; y++)
            memcpy(out + (plane * cv->h + y) * cv->w, xp + (plane * hp + y + cv->pad) * wp + cv->pad, cv->w * sizeof(float));
    free(xp);
    return failed;
}
