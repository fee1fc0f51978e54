#include "cdnnl.h"

#include <dlfcn.h>
#include <dnnl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ---------------------------------------------------------------------------------------------------------------
// Threads. Debian's oneDNN runs on OpenMP; the engine calls it from its own threads, each call single-threaded,
// so that a result never depends on how many threads oneDNN would otherwise split a reduction over. OpenMP's
// setting is per calling thread: it is set before every primitive is made and run. The entry point is looked up
// in the libgomp that libdnnl loads (no OpenMP headers or flags needed here).

static void (*omp_set_threads)(int) = NULL;
static pthread_once_t omp_once = PTHREAD_ONCE_INIT;
static void find_omp(void) { omp_set_threads = (void (*)(int))dlsym(RTLD_DEFAULT, "omp_set_num_threads"); }
static void single_thread(void) {
    pthread_once(&omp_once, find_omp);
    if (omp_set_threads) omp_set_threads(1);
}

// ---------------------------------------------------------------------------------------------------------------
// Per-thread state: an engine, a stream and the primitives made so far (most recently used first).

enum { FORWARD = 0, BACKWARD_DATA = 1, BACKWARD_WEIGHTS = 2 };
enum { MAX_SLOTS = 4, CACHE_LIMIT = 48 };

/// One argument of a primitive: the user's buffer (plain layout) and, when the kernel wants another layout, a
/// buffer in that layout with the reorder between the two.
typedef struct {
    int arg;
    int inward;                      // 1: read by the primitive (reordered in), 0: written (reordered out)
    dnnl_memory_t user;              // plain layout, data handle set per call
    dnnl_memory_t inner;             // the kernel's layout (NULL: it reads or writes `user` directly)
    size_t inner_size;
    dnnl_primitive_t reorder;
    dnnl_memory_t reorder_scratch;   // NULL when the reorder needs none
    size_t reorder_scratch_size;
} slot_t;

typedef struct entry {
    struct entry *next;
    int operation, bias;
    cdnnl_geometry g;
    dnnl_primitive_desc_t pd;
    dnnl_primitive_t primitive;
    dnnl_memory_t scratch;           // the primitive's scratchpad (NULL when it needs none)
    size_t scratch_size;
    slot_t slots[MAX_SLOTS];
    int slot_count;
    char implementation[64];
} entry_t;

static __thread dnnl_engine_t thread_engine = NULL;
static __thread dnnl_stream_t thread_stream = NULL;
static __thread entry_t *thread_cache = NULL;
static __thread int thread_cache_count = 0;
// The blocked buffers and scratchpads of this thread's calls: one arena, sized by the largest call, that every
// primitive's buffers point into while it runs (a call uses them only until it returns).
static __thread char *thread_arena = NULL;
static __thread size_t thread_arena_size = 0;

static size_t rounded(size_t bytes) { return (bytes + 63) & ~(size_t)63; }

static int same_geometry(cdnnl_geometry a, cdnnl_geometry b) {
    return a.n == b.n && a.c == b.c && a.h == b.h && a.w == b.w && a.o == b.o && a.kh == b.kh && a.kw == b.kw
        && a.stride == b.stride && a.pad == b.pad;
}

static void destroy_entry(entry_t *e) {
    if (!e) return;
    for (int i = 0; i < e->slot_count; i++) {
        slot_t *s = &e->slots[i];
        if (s->reorder) dnnl_primitive_destroy(s->reorder);
        if (s->reorder_scratch) dnnl_memory_destroy(s->reorder_scratch);
        if (s->inner) dnnl_memory_destroy(s->inner);
        if (s->user) dnnl_memory_destroy(s->user);
    }
    if (e->scratch) dnnl_memory_destroy(e->scratch);
    if (e->primitive) dnnl_primitive_destroy(e->primitive);
    if (e->pd) dnnl_primitive_desc_destroy(e->pd);
    free(e);
}

/// Frees this thread's state when it exits (the engine's threads come and go with the dispatch pool's).
static void release_thread_state(void *unused) {
    (void)unused;
    while (thread_cache) {
        entry_t *next = thread_cache->next;
        destroy_entry(thread_cache);
        thread_cache = next;
    }
    thread_cache_count = 0;
    free(thread_arena);
    thread_arena = NULL;
    thread_arena_size = 0;
    if (thread_stream) dnnl_stream_destroy(thread_stream);
    if (thread_engine) dnnl_engine_destroy(thread_engine);
    thread_stream = NULL;
    thread_engine = NULL;
}

static pthread_key_t exit_key;
static pthread_once_t exit_key_once = PTHREAD_ONCE_INIT;
static void make_exit_key(void) { pthread_key_create(&exit_key, release_thread_state); }

static const char *ensure_engine(void) {
    if (!thread_engine) {
        pthread_once(&exit_key_once, make_exit_key);
        pthread_setspecific(exit_key, (void *)1);  // non-NULL, so the release runs at the thread's exit
    }
    if (!thread_engine && dnnl_engine_create(&thread_engine, dnnl_cpu, 0) != dnnl_success) {
        thread_engine = NULL;
        return "oneDNN could not create a CPU engine";
    }
    if (!thread_stream && dnnl_stream_create(&thread_stream, thread_engine, dnnl_stream_default_flags) != dnnl_success) {
        thread_stream = NULL;
        return "oneDNN could not create a stream";
    }
    return NULL;
}

// ---------------------------------------------------------------------------------------------------------------
// Making primitives.

/// Attributes asking for the scratchpad to be passed in (user mode), so no buffer is shared between threads.
static dnnl_primitive_attr_t user_scratchpad_attr(void) {
    dnnl_primitive_attr_t attr = NULL;
    if (dnnl_primitive_attr_create(&attr) != dnnl_success) return NULL;
    if (dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user) != dnnl_success) {
        dnnl_primitive_attr_destroy(attr);
        return NULL;
    }
    return attr;
}

/// The primitive of `pd` and the scratchpad memory it needs (NULL when none).
static const char *make_primitive(const_dnnl_primitive_desc_t pd, dnnl_primitive_t *primitive, dnnl_memory_t *scratch,
                                  size_t *scratch_size) {
    if (dnnl_primitive_create(primitive, pd) != dnnl_success) { *primitive = NULL; return "oneDNN could not make a primitive"; }
    const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    *scratch = NULL;
    *scratch_size = md ? dnnl_memory_desc_get_size(md) : 0;
    if (*scratch_size > 0 && dnnl_memory_create(scratch, md, thread_engine, DNNL_MEMORY_NONE) != dnnl_success) {
        *scratch = NULL;
        return "oneDNN could not describe a scratchpad";
    }
    return NULL;
}

/// Plain descriptors of the four tensors, and the blocked-any ones the kernel may choose from.
typedef struct {
    dnnl_memory_desc_t src, weights, bias, dst;            // NCHW, OIHW, x, NCHW
    dnnl_memory_desc_t any_src, any_weights, any_dst;      // format "any"
    dnnl_dims_t strides, padding;
} descs_t;

static void make_descs(cdnnl_geometry g, descs_t *d) {
    int ho = (g.h + 2 * g.pad - g.kh) / g.stride + 1, wo = (g.w + 2 * g.pad - g.kw) / g.stride + 1;
    dnnl_dims_t sd = {g.n, g.c, g.h, g.w}, wd = {g.o, g.c, g.kh, g.kw}, dd = {g.n, g.o, ho, wo}, bd = {g.o};
    dnnl_memory_desc_init_by_tag(&d->src, 4, sd, dnnl_f32, dnnl_nchw);
    dnnl_memory_desc_init_by_tag(&d->weights, 4, wd, dnnl_f32, dnnl_oihw);
    dnnl_memory_desc_init_by_tag(&d->dst, 4, dd, dnnl_f32, dnnl_nchw);
    dnnl_memory_desc_init_by_tag(&d->bias, 1, bd, dnnl_f32, dnnl_x);
    dnnl_memory_desc_init_by_tag(&d->any_src, 4, sd, dnnl_f32, dnnl_format_tag_any);
    dnnl_memory_desc_init_by_tag(&d->any_weights, 4, wd, dnnl_f32, dnnl_format_tag_any);
    dnnl_memory_desc_init_by_tag(&d->any_dst, 4, dd, dnnl_f32, dnnl_format_tag_any);
    d->strides[0] = d->strides[1] = g.stride;
    d->padding[0] = d->padding[1] = g.pad;
}

/// The forward primitive descriptor (training: the backward ones take it as their hint).
static const char *forward_pd(descs_t *d, int bias, const_dnnl_primitive_attr_t attr, dnnl_primitive_desc_t *pd) {
    dnnl_convolution_desc_t desc;
    if (dnnl_convolution_forward_desc_init(&desc, dnnl_forward_training, dnnl_convolution_direct, &d->any_src,
                                           &d->any_weights, bias ? &d->bias : NULL, &d->any_dst, d->strides,
                                           d->padding, d->padding) != dnnl_success)
        return "oneDNN refused the convolution's shape";
    if (dnnl_primitive_desc_create(pd, &desc, attr, thread_engine, NULL) != dnnl_success) {
        *pd = NULL;
        return "oneDNN has no forward convolution for this shape";
    }
    return NULL;
}

/// Adds an argument; when the kernel's layout `inner_md` differs from the plain `user_md`, with a buffer in the
/// kernel's layout and the reorder between the two.
static const char *add_slot(entry_t *e, int arg, int inward, const dnnl_memory_desc_t *user_md,
                            const dnnl_memory_desc_t *inner_md) {
    slot_t *s = &e->slots[e->slot_count++];
    memset(s, 0, sizeof(*s));
    s->arg = arg;
    s->inward = inward;
    if (dnnl_memory_create(&s->user, user_md, thread_engine, DNNL_MEMORY_NONE) != dnnl_success) {
        s->user = NULL;
        return "oneDNN could not describe a buffer";
    }
    if (!inner_md || dnnl_memory_desc_equal(user_md, inner_md)) return NULL;
    s->inner_size = dnnl_memory_desc_get_size(inner_md);
    if (dnnl_memory_create(&s->inner, inner_md, thread_engine, DNNL_MEMORY_NONE) != dnnl_success) {
        s->inner = NULL;
        return "oneDNN could not describe a blocked buffer";
    }
    dnnl_primitive_attr_t attr = user_scratchpad_attr();
    if (!attr) return "oneDNN could not make primitive attributes";
    dnnl_primitive_desc_t rpd = NULL;
    dnnl_status_t status = inward
        ? dnnl_reorder_primitive_desc_create(&rpd, user_md, thread_engine, inner_md, thread_engine, attr)
        : dnnl_reorder_primitive_desc_create(&rpd, inner_md, thread_engine, user_md, thread_engine, attr);
    dnnl_primitive_attr_destroy(attr);
    if (status != dnnl_success) return "oneDNN has no reorder between the plain and blocked layouts";
    const char *error = make_primitive(rpd, &s->reorder, &s->reorder_scratch, &s->reorder_scratch_size);
    dnnl_primitive_desc_destroy(rpd);
    return error;
}

static const char *make_entry(int operation, int bias, cdnnl_geometry g, entry_t **out) {
    *out = NULL;
    const char *error = ensure_engine();
    if (error) return error;
    entry_t *e = calloc(1, sizeof(entry_t));
    if (!e) return "out of memory for a oneDNN primitive";
    e->operation = operation;
    e->bias = bias;
    e->g = g;
    descs_t d;
    make_descs(g, &d);
    dnnl_primitive_attr_t attr = user_scratchpad_attr();
    if (!attr) { destroy_entry(e); return "oneDNN could not make primitive attributes"; }
    dnnl_primitive_desc_t hint = NULL;
    if (operation == FORWARD) {
        error = forward_pd(&d, bias, attr, &e->pd);
    } else {
        error = forward_pd(&d, operation == BACKWARD_WEIGHTS && bias, NULL, &hint);
        dnnl_convolution_desc_t desc;
        if (!error && operation == BACKWARD_DATA) {
            if (dnnl_convolution_backward_data_desc_init(&desc, dnnl_convolution_direct, &d.any_src, &d.any_weights,
                                                         &d.any_dst, d.strides, d.padding, d.padding) != dnnl_success)
                error = "oneDNN refused the input gradient's shape";
        } else if (!error) {
            if (dnnl_convolution_backward_weights_desc_init(&desc, dnnl_convolution_direct, &d.any_src, &d.any_weights,
                                                            bias ? &d.bias : NULL, &d.any_dst, d.strides, d.padding,
                                                            d.padding) != dnnl_success)
                error = "oneDNN refused the weight gradient's shape";
        }
        if (!error && dnnl_primitive_desc_create(&e->pd, &desc, attr, thread_engine, hint) != dnnl_success) {
            e->pd = NULL;
            error = "oneDNN has no gradient convolution for this shape";
        }
    }
    if (hint) dnnl_primitive_desc_destroy(hint);
    dnnl_primitive_attr_destroy(attr);
    if (!error) error = make_primitive(e->pd, &e->primitive, &e->scratch, &e->scratch_size);
#define MD(which) dnnl_primitive_desc_query_md(e->pd, which, 0)
    if (!error) {
        switch (operation) {
        case FORWARD:
            error = add_slot(e, DNNL_ARG_SRC, 1, &d.src, MD(dnnl_query_src_md));
            if (!error) error = add_slot(e, DNNL_ARG_WEIGHTS, 1, &d.weights, MD(dnnl_query_weights_md));
            if (!error && bias) error = add_slot(e, DNNL_ARG_BIAS, 1, &d.bias, dnnl_primitive_desc_query_md(e->pd, dnnl_query_weights_md, 1));
            if (!error) error = add_slot(e, DNNL_ARG_DST, 0, &d.dst, MD(dnnl_query_dst_md));
            break;
        case BACKWARD_DATA:
            error = add_slot(e, DNNL_ARG_DIFF_DST, 1, &d.dst, MD(dnnl_query_diff_dst_md));
            if (!error) error = add_slot(e, DNNL_ARG_WEIGHTS, 1, &d.weights, MD(dnnl_query_weights_md));
            if (!error) error = add_slot(e, DNNL_ARG_DIFF_SRC, 0, &d.src, MD(dnnl_query_diff_src_md));
            break;
        default:
            error = add_slot(e, DNNL_ARG_SRC, 1, &d.src, MD(dnnl_query_src_md));
            if (!error) error = add_slot(e, DNNL_ARG_DIFF_DST, 1, &d.dst, MD(dnnl_query_diff_dst_md));
            if (!error) error = add_slot(e, DNNL_ARG_DIFF_WEIGHTS, 0, &d.weights, MD(dnnl_query_diff_weights_md));
            if (!error && bias) error = add_slot(e, DNNL_ARG_DIFF_BIAS, 0, &d.bias, dnnl_primitive_desc_query_md(e->pd, dnnl_query_diff_weights_md, 1));
            break;
        }
    }
#undef MD
    if (error) { destroy_entry(e); return error; }
    const char *name = NULL;
    if (dnnl_primitive_desc_query(e->pd, dnnl_query_impl_info_str, 0, &name) == dnnl_success && name)
        snprintf(e->implementation, sizeof(e->implementation), "%s", name);
    else
        snprintf(e->implementation, sizeof(e->implementation), "unknown");
    *out = e;
    return NULL;
}

/// The cached entry for (operation, bias, g), made on first use; moved to the front of this thread's cache.
static const char *find_entry(int operation, int bias, cdnnl_geometry g, entry_t **out) {
    entry_t *previous = NULL;
    for (entry_t *e = thread_cache; e; previous = e, e = e->next) {
        if (e->operation == operation && e->bias == bias && same_geometry(e->g, g)) {
            if (previous) { previous->next = e->next; e->next = thread_cache; thread_cache = e; }
            *out = e;
            return NULL;
        }
    }
    const char *error = make_entry(operation, bias, g, out);
    if (error) return error;
    (*out)->next = thread_cache;
    thread_cache = *out;
    if (++thread_cache_count > CACHE_LIMIT) {
        // Drop the least recently used entry.
        entry_t *e = thread_cache;
        while (e->next && e->next->next) e = e->next;
        destroy_entry(e->next);
        e->next = NULL;
        thread_cache_count--;
    }
    return NULL;
}

// ---------------------------------------------------------------------------------------------------------------
// Running.

static const char *execute(dnnl_primitive_t p, dnnl_memory_t scratch, dnnl_exec_arg_t *args, int count) {
    if (scratch) args[count++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, scratch};
    return dnnl_primitive_execute(p, thread_stream, count, args) == dnnl_success ? NULL : "oneDNN failed to run a primitive";
}

static const char *reorder(slot_t *s) {
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_FROM, s->inward ? s->user : s->inner}, {DNNL_ARG_TO, s->inward ? s->inner : s->user}};
    return execute(s->reorder, s->reorder_scratch, args, 2);
}

/// Runs operation `operation` on the plain buffers `buffers` (in slot order).
static const char *run(int operation, int bias, cdnnl_geometry g, void *const *buffers) {
    single_thread();
    entry_t *e = NULL;
    const char *error = find_entry(operation, bias, g, &e);
    if (error) return error;
    for (int i = 0; i < e->slot_count; i++)
        if (dnnl_memory_set_data_handle(e->slots[i].user, buffers[i]) != dnnl_success) return "oneDNN refused a buffer";
    // The blocked buffers and scratchpads, laid out in this thread's arena.
    size_t total = rounded(e->scratch_size);
    for (int i = 0; i < e->slot_count; i++)
        total += rounded(e->slots[i].inner_size) + rounded(e->slots[i].reorder_scratch_size);
    if (total > thread_arena_size) {
        free(thread_arena);
        thread_arena = aligned_alloc(64, total);
        thread_arena_size = thread_arena ? total : 0;
        if (!thread_arena) return "out of memory for oneDNN's buffers";
    }
    char *next = thread_arena;
    if (e->scratch) { dnnl_memory_set_data_handle(e->scratch, next); next += rounded(e->scratch_size); }
    for (int i = 0; i < e->slot_count; i++) {
        slot_t *s = &e->slots[i];
        if (s->inner) { dnnl_memory_set_data_handle(s->inner, next); next += rounded(s->inner_size); }
        if (s->reorder_scratch) { dnnl_memory_set_data_handle(s->reorder_scratch, next); next += rounded(s->reorder_scratch_size); }
    }
    for (int i = 0; i < e->slot_count && !error; i++)
        if (e->slots[i].inward && e->slots[i].inner) error = reorder(&e->slots[i]);
    if (error) return error;
    dnnl_exec_arg_t args[MAX_SLOTS + 1];
    for (int i = 0; i < e->slot_count; i++)
        args[i] = (dnnl_exec_arg_t){e->slots[i].arg, e->slots[i].inner ? e->slots[i].inner : e->slots[i].user};
    error = execute(e->primitive, e->scratch, args, e->slot_count);
    for (int i = 0; i < e->slot_count && !error; i++)
        if (!e->slots[i].inward && e->slots[i].inner) error = reorder(&e->slots[i]);
    if (!error && dnnl_stream_wait(thread_stream) != dnnl_success) error = "oneDNN failed to finish";
    return error;
}

const char *cdnnl_forward(cdnnl_geometry g, const float *x, const float *w, const float *bias, float *y) {
    void *buffers[4] = {(void *)x, (void *)w, bias ? (void *)bias : y, y};
    return run(FORWARD, bias != NULL, g, buffers);
}

const char *cdnnl_backward_data(cdnnl_geometry g, const float *dy, const float *w, float *dx) {
    void *buffers[3] = {(void *)dy, (void *)w, dx};
    return run(BACKWARD_DATA, 0, g, buffers);
}

const char *cdnnl_backward_weights(cdnnl_geometry g, const float *x, const float *dy, float *dw, float *dbias) {
    void *buffers[4] = {(void *)x, (void *)dy, dw, dbias};
    return run(BACKWARD_WEIGHTS, dbias != NULL, g, buffers);
}

const char *cdnnl_implementation(cdnnl_geometry g, int operation) {
    static __thread char name[64];
    single_thread();
    entry_t *e = NULL;
    if (operation < 0 || operation > 2 || find_entry(operation, 0, g, &e) != NULL) return "unknown";
    snprintf(name, sizeof(name), "%s", e->implementation);
    return name;
}

// ---------------------------------------------------------------------------------------------------------------
// Set-up and description.

int cdnnl_set_max_isa(int isa) {
    dnnl_cpu_isa_t limit = isa == 3 ? dnnl_cpu_isa_avx512_core : dnnl_cpu_isa_avx2;
    return dnnl_set_max_cpu_isa(limit) == dnnl_success ? 0 : -1;
}

static const char *isa_name(dnnl_cpu_isa_t isa) {
    switch (isa) {
    case dnnl_cpu_isa_sse41: return "sse41";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    default: return "other";
    }
}

static char description_text[96];
static pthread_once_t description_once = PTHREAD_ONCE_INIT;

static void describe(void) {
    const dnnl_version_t *v = dnnl_version();
    snprintf(description_text, sizeof(description_text), "%d.%d.%d %s", v ? v->major : 0, v ? v->minor : 0,
             v ? v->patch : 0, isa_name(dnnl_get_effective_cpu_isa()));
}

const char *cdnnl_description(void) {
    pthread_once(&description_once, describe);
    return description_text;
}
