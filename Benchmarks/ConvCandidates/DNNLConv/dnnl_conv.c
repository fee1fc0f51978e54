#include "dnnl_conv.h"
#include <dnnl.h>
#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <dlfcn.h>

// OpenMP's entry points, looked up in the libgomp that libdnnl loads (no OpenMP headers or link flags).
int dnnlconv_set_threads(int threads) {
    void (*set)(int) = (void (*)(int))dlsym(RTLD_DEFAULT, "omp_set_num_threads");
    int (*get)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "omp_get_max_threads");
    if (!set || !get) return -1;
    set(threads);
    return get();
}

typedef struct {
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    dnnl_primitive_desc_t pd[3];
    dnnl_primitive_t prim[3];
    // The primitive's memories: src, weights, dst, diff_src, diff_weights, diff_dst.
    dnnl_memory_t src, weights, dst, diff_src, diff_weights, diff_dst;
    dnnl_memory_desc_t user_src, user_weights, user_dst;
    // Layout 2 (blocked primitives behind NCHW buffers, reorders counted): the NCHW buffers and the reorders
    // each run makes, in the order of the six memories above.
    int counted;
    dnnl_memory_t plain[6];
    dnnl_primitive_t reorders[6];
} conv_t;

// Layout 2: which of the six memories are reordered in (src, weights, diff_dst), the others out.
static const int counted_inward[6] = {1, 1, 0, 0, 0, 1};

static int check(dnnl_status_t s, const char *what, const char **error) {
    if (s != dnnl_success) { if (error) *error = what; return 0; }
    return 1;
}

/// Copies `from` into `to` (any two layouts of the same tensor) with a oneDNN reorder.
static void reorder(conv_t *cv, dnnl_memory_t from, dnnl_memory_t to) {
    const dnnl_memory_desc_t *from_md, *to_md;
    dnnl_memory_get_memory_desc(from, &from_md);
    dnnl_memory_get_memory_desc(to, &to_md);
    dnnl_primitive_desc_t rpd;
    dnnl_primitive_t r;
    dnnl_reorder_primitive_desc_create(&rpd, from_md, cv->engine, to_md, cv->engine, NULL);
    dnnl_primitive_create(&r, rpd);
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
    dnnl_primitive_execute(r, cv->stream, 2, args);
    dnnl_stream_wait(cv->stream);
    dnnl_primitive_destroy(r);
    dnnl_primitive_desc_destroy(rpd);
}

/// Copies between a plain user buffer (layout `user_md`) and a primitive's memory, in either direction.
static void user_copy(conv_t *cv, const dnnl_memory_desc_t *user_md, void *user_ptr, dnnl_memory_t mem, int to_user) {
    dnnl_memory_t user;
    dnnl_memory_create(&user, user_md, cv->engine, user_ptr);
    if (to_user) reorder(cv, mem, user); else reorder(cv, user, mem);
    dnnl_memory_destroy(user);
}

void dnnlconv_destroy(void *conv);

void *dnnlconv_create(int n, int c, int h, int w, int o, int k, int pad, int layout, const char **error) {
    conv_t *cv = calloc(1, sizeof(conv_t));
    if (!cv) { if (error) *error = "out of memory"; return NULL; }
    if (!check(dnnl_engine_create(&cv->engine, dnnl_cpu, 0), "engine", error)) goto fail;
    if (!check(dnnl_stream_create(&cv->stream, cv->engine, dnnl_stream_default_flags), "stream", error)) goto fail;
    int ho = h + 2 * pad - k + 1, wo = w + 2 * pad - k + 1;
    dnnl_dims_t sd = {n, c, h, w}, wd = {o, c, k, k}, dd = {n, o, ho, wo};
    dnnl_dims_t strides = {1, 1}, padding = {pad, pad};
    dnnl_memory_desc_init_by_tag(&cv->user_src, 4, sd, dnnl_f32, dnnl_nchw);
    dnnl_memory_desc_init_by_tag(&cv->user_weights, 4, wd, dnnl_f32, dnnl_oihw);
    dnnl_memory_desc_init_by_tag(&cv->user_dst, 4, dd, dnnl_f32, dnnl_nchw);
    dnnl_format_tag_t dataTag = layout ? dnnl_format_tag_any : dnnl_nchw;
    dnnl_format_tag_t weightTag = layout ? dnnl_format_tag_any : dnnl_oihw;
    cv->counted = layout == 2;
    dnnl_memory_desc_t s, wt, d;
    dnnl_memory_desc_init_by_tag(&s, 4, sd, dnnl_f32, dataTag);
    dnnl_memory_desc_init_by_tag(&wt, 4, wd, dnnl_f32, weightTag);
    dnnl_memory_desc_init_by_tag(&d, 4, dd, dnnl_f32, dataTag);
    dnnl_convolution_desc_t fd, bd, wdsc;
    if (!check(dnnl_convolution_forward_desc_init(&fd, dnnl_forward_training, dnnl_convolution_direct, &s, &wt, NULL, &d,
                                                  strides, padding, padding), "forward desc", error)) goto fail;
    if (!check(dnnl_primitive_desc_create(&cv->pd[0], &fd, NULL, cv->engine, NULL), "forward pd", error)) goto fail;
    if (!check(dnnl_convolution_backward_data_desc_init(&bd, dnnl_convolution_direct, &s, &wt, &d, strides, padding, padding),
               "backward data desc", error)) goto fail;
    if (!check(dnnl_primitive_desc_create(&cv->pd[1], &bd, NULL, cv->engine, cv->pd[0]), "backward data pd", error)) goto fail;
    if (!check(dnnl_convolution_backward_weights_desc_init(&wdsc, dnnl_convolution_direct, &s, &wt, NULL, &d, strides,
                                                          padding, padding), "backward weights desc", error)) goto fail;
    if (!check(dnnl_primitive_desc_create(&cv->pd[2], &wdsc, NULL, cv->engine, cv->pd[0]), "backward weights pd", error)) goto fail;
    for (int i = 0; i < 3; i++)
        if (!check(dnnl_primitive_create(&cv->prim[i], cv->pd[i]), "primitive", error)) goto fail;
    // The six buffers, each in the layout its primitive chose: (buffer, primitive, what it holds there).
    struct { dnnl_memory_t *memory; int primitive; dnnl_query_t query; } buffers[] = {
        {&cv->src, 0, dnnl_query_src_md}, {&cv->weights, 0, dnnl_query_weights_md}, {&cv->dst, 0, dnnl_query_dst_md},
        {&cv->diff_src, 1, dnnl_query_diff_src_md}, {&cv->diff_dst, 1, dnnl_query_diff_dst_md},
        {&cv->diff_weights, 2, dnnl_query_diff_weights_md},
    };
    for (int i = 0; i < 6; i++) {
        const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(cv->pd[buffers[i].primitive], buffers[i].query, 0);
        if (!check(dnnl_memory_create(buffers[i].memory, md, cv->engine, DNNL_MEMORY_ALLOCATE), "memory", error)) goto fail;
    }
    if (cv->counted) {
        // Inputs (src, weights, diff_dst) are reordered in from NCHW/OIHW, outputs (dst, diff_src, diff_weights) out.
        dnnl_memory_t *blocked[6] = {&cv->src, &cv->weights, &cv->dst, &cv->diff_src, &cv->diff_weights, &cv->diff_dst};
        const dnnl_memory_desc_t *user[6] = {&cv->user_src, &cv->user_weights, &cv->user_dst, &cv->user_src,
                                             &cv->user_weights, &cv->user_dst};
        for (int i = 0; i < 6; i++) {
            if (!check(dnnl_memory_create(&cv->plain[i], user[i], cv->engine, DNNL_MEMORY_ALLOCATE), "memory", error)) goto fail;
            const dnnl_memory_desc_t *blocked_md;
            dnnl_memory_get_memory_desc(*blocked[i], &blocked_md);
            dnnl_primitive_desc_t rpd;
            const dnnl_memory_desc_t *from = counted_inward[i] ? user[i] : blocked_md, *to = counted_inward[i] ? blocked_md : user[i];
            if (!check(dnnl_reorder_primitive_desc_create(&rpd, from, cv->engine, to, cv->engine, NULL), "reorder pd", error)) goto fail;
            dnnl_status_t made = dnnl_primitive_create(&cv->reorders[i], rpd);
            dnnl_primitive_desc_destroy(rpd);
            if (!check(made, "reorder", error)) goto fail;
        }
    }
    return cv;
fail:
    dnnlconv_destroy(cv);
    return NULL;
}

void dnnlconv_fill(void *p, const float *x, const float *weights, const float *gradient) {
    conv_t *cv = p;
    user_copy(cv, &cv->user_src, (void *)x, cv->src, 0);
    user_copy(cv, &cv->user_weights, (void *)weights, cv->weights, 0);
    user_copy(cv, &cv->user_dst, (void *)gradient, cv->diff_dst, 0);
    if (cv->counted) {
        // The NCHW buffers the counted reorders read from: the same values.
        const float *values[6] = {x, weights, NULL, NULL, NULL, gradient};
        for (int i = 0; i < 6; i++) {
            if (!values[i]) continue;
            const dnnl_memory_desc_t *md;
            void *data;
            dnnl_memory_get_memory_desc(cv->plain[i], &md);
            dnnl_memory_get_data_handle(cv->plain[i], &data);
            memcpy(data, values[i], dnnl_memory_desc_get_size(md));
        }
    }
}

/// Runs reorder `i` of a layout-2 convolution (between plain[i] and its blocked memory).
static void counted_reorder(conv_t *cv, int i) {
    dnnl_memory_t blocked[6] = {cv->src, cv->weights, cv->dst, cv->diff_src, cv->diff_weights, cv->diff_dst};
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, counted_inward[i] ? cv->plain[i] : blocked[i]},
                               {DNNL_ARG_TO, counted_inward[i] ? blocked[i] : cv->plain[i]}};
    dnnl_primitive_execute(cv->reorders[i], cv->stream, 2, args);
}

void dnnlconv_run(void *p, int which) {
    conv_t *cv = p;
    // Layout 2 counts the reorders a drop-in behind NCHW operations would make at the least: the forward its
    // input and weights in and its output out; the data gradient the output gradient in and the input gradient
    // out; the weight gradient only its result out (it reuses the forward's input and the data gradient's
    // output gradient).
    const int before[3][2] = {{0, 1}, {5, -1}, {-1, -1}}, after[3] = {2, 3, 4};
    if (cv->counted)
        for (int i = 0; i < 2; i++) if (before[which][i] >= 0) counted_reorder(cv, before[which][i]);
    dnnl_exec_arg_t args[3];
    if (which == 0) {
        args[0] = (dnnl_exec_arg_t){DNNL_ARG_SRC, cv->src};
        args[1] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS, cv->weights};
        args[2] = (dnnl_exec_arg_t){DNNL_ARG_DST, cv->dst};
    } else if (which == 1) {
        args[0] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_DST, cv->diff_dst};
        args[1] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS, cv->weights};
        args[2] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_SRC, cv->diff_src};
    } else {
        args[0] = (dnnl_exec_arg_t){DNNL_ARG_SRC, cv->src};
        args[1] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_DST, cv->diff_dst};
        args[2] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_WEIGHTS, cv->diff_weights};
    }
    dnnl_primitive_execute(cv->prim[which], cv->stream, 3, args);
    if (cv->counted) counted_reorder(cv, after[which]);
    dnnl_stream_wait(cv->stream);
}

const char *dnnlconv_impl(void *p, int which) {
    conv_t *cv = p;
    const char *name = "?";
    dnnl_primitive_desc_query(cv->pd[which], dnnl_query_impl_info_str, 0, &name);
    return name;
}

void dnnlconv_result(void *p, int which, float *out) {
    conv_t *cv = p;
    if (which == 0) user_copy(cv, &cv->user_dst, out, cv->dst, 1);
    else if (which == 1) user_copy(cv, &cv->user_src, out, cv->diff_src, 1);
    else user_copy(cv, &cv->user_weights, out, cv->diff_weights, 1);
}

void dnnlconv_destroy(void *p) {
    conv_t *cv = p;
    if (!cv) return;
    for (int i = 0; i < 3; i++) { dnnl_primitive_destroy(cv->prim[i]); dnnl_primitive_desc_destroy(cv->pd[i]); }
    for (int i = 0; i < 6; i++) { dnnl_primitive_destroy(cv->reorders[i]); dnnl_memory_destroy(cv->plain[i]); }
    dnnl_memory_destroy(cv->src); dnnl_memory_destroy(cv->weights); dnnl_memory_destroy(cv->dst);
    dnnl_memory_destroy(cv->diff_src); dnnl_memory_destroy(cv->diff_weights); dnnl_memory_destroy(cv->diff_dst);
    dnnl_stream_destroy(cv->stream); dnnl_engine_destroy(cv->engine);
    free(cv);
}

long winograd_workspace_floats(int n, int c, int h, int w, int o) {
    long tiles = (long)n * ((h + 1) / 2) * ((w + 1) / 2);
    return 16 * (long)c * tiles + 16 * (long)o * c + 16 * (long)o * tiles;
}

void winograd_forward(const float *x, const float *g, float *y, int n, int c, int h, int w, int o, float *ws) {
    const int th = (h + 1) / 2, tw = (w + 1) / 2;
    const long T = (long)n * th * tw;
    float *V = ws, *U = ws + 16 * (long)c * T, *M = U + 16 * (long)o * c;
    // Input tiles: V[ij][ci][t] = (Bᵀ d B)[i][j] for the 4×4 input patch d at rows 2ty−1 …, columns 2tx−1 ….
    for (int b = 0; b < n; b++)
        for (int ci = 0; ci < c; ci++) {
            const float *plane = x + ((long)b * c + ci) * h * w;
            for (int ty = 0; ty < th; ty++)
                for (int tx = 0; tx < tw; tx++) {
                    float d[4][4];
                    for (int i = 0; i < 4; i++) {
                        int yy = 2 * ty - 1 + i;
                        for (int j = 0; j < 4; j++) {
                            int xx = 2 * tx - 1 + j;
                            d[i][j] = (yy >= 0 && yy < h && xx >= 0 && xx < w) ? plane[yy * w + xx] : 0;
                        }
                    }
                    float t[4][4];
                    for (int j = 0; j < 4; j++) {
                        t[0][j] = d[0][j] - d[2][j]; t[1][j] = d[1][j] + d[2][j];
                        t[2][j] = d[2][j] - d[1][j]; t[3][j] = d[1][j] - d[3][j];
                    }
                    long tile = ((long)b * th + ty) * tw + tx;
                    for (int i = 0; i < 4; i++) {
                        float v[4] = {t[i][0] - t[i][2], t[i][1] + t[i][2], t[i][2] - t[i][1], t[i][1] - t[i][3]};
                        for (int j = 0; j < 4; j++) V[((long)(i * 4 + j) * c + ci) * T + tile] = v[j];
                    }
                }
        }
    // Weights: U[ij][oc][ci] = (G g Gᵀ)[i][j].
    for (int oc = 0; oc < o; oc++)
        for (int ci = 0; ci < c; ci++) {
            const float *k = g + ((long)oc * c + ci) * 9;
            float a[4][3];
            for (int j = 0; j < 3; j++) {
                a[0][j] = k[j]; a[1][j] = 0.5f * (k[j] + k[3 + j] + k[6 + j]);
                a[2][j] = 0.5f * (k[j] - k[3 + j] + k[6 + j]); a[3][j] = k[6 + j];
            }
            for (int i = 0; i < 4; i++) {
                float u[4] = {a[i][0], 0.5f * (a[i][0] + a[i][1] + a[i][2]), 0.5f * (a[i][0] - a[i][1] + a[i][2]), a[i][2]};
                for (int j = 0; j < 4; j++) U[((long)(i * 4 + j) * o + oc) * c + ci] = u[j];
            }
        }
    for (int e = 0; e < 16; e++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, o, (int)T, c, 1, U + (long)e * o * c, c,
                    V + (long)e * c * T, (int)T, 0, M + (long)e * o * T, (int)T);
    // Outputs: Y = Aᵀ m A for each tile's 4×4 m.
    for (int b = 0; b < n; b++)
        for (int oc = 0; oc < o; oc++) {
            float *plane = y + ((long)b * o + oc) * h * w;
            for (int ty = 0; ty < th; ty++)
                for (int tx = 0; tx < tw; tx++) {
                    long tile = ((long)b * th + ty) * tw + tx;
                    float m[4][4];
                    for (int e = 0; e < 16; e++) m[e / 4][e % 4] = M[((long)e * o + oc) * T + tile];
                    float r[2][4];
                    for (int j = 0; j < 4; j++) { r[0][j] = m[0][j] + m[1][j] + m[2][j]; r[1][j] = m[1][j] - m[2][j] - m[3][j]; }
                    for (int i = 0; i < 2; i++) {
                        int yy = 2 * ty + i;
                        if (yy >= h) continue;
                        float v0 = r[i][0] + r[i][1] + r[i][2], v1 = r[i][1] - r[i][2] - r[i][3];
                        plane[yy * w + 2 * tx] = v0;
                        if (2 * tx + 1 < w) plane[yy * w + 2 * tx + 1] = v1;
                    }
                }
        }
}
