// bridge.c holds the C trampolines that connect llama.cpp's callbacks to Go.
// They live in a .c file because a Go file that uses //export may not define
// C functions in its preamble.

#ifndef _WIN32
#include <dlfcn.h>
#endif

#include <string.h>

#include "llama_api.h"
#include "_cgo_export.h"

static void llm_log_cb(enum ggml_log_level level, const char * text, void * user_data) {
    (void) user_data;
    llmGoLog((int) level, (char *) text);
}

// llm_install_log routes llama.cpp's and ggml's log into Go (log/slog).
void llm_install_log(void) {
    llama_log_set(llm_log_cb, NULL);
}

// llm_route_library_log routes into Go the log of a ggml-base shared library:
// the copy that backend libraries (libggml-cuda.so) link against, which has
// its own log state, so their messages (why CUDA found no device, why an
// allocation failed) would otherwise go straight to stderr. The copy is the
// one the dynamic linker will bind the backends to: the one already loaded
// under soname, else the file at path. It returns 0 when neither can be
// opened or the library has no ggml_log_set.
int llm_route_library_log(const char * soname, const char * path) {
#ifdef _WIN32
    (void) soname;
    (void) path;
    return 0;
#else
    void * lib = dlopen(soname, RTLD_NOW | RTLD_NOLOAD);
    if (lib == NULL) {
        lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    }
    if (lib == NULL) {
        return 0;
    }
    // The handle stays open: the backends keep this library loaded anyway.
    void (*log_set)(ggml_log_callback, void *) = (void (*)(ggml_log_callback, void *)) dlsym(lib, "ggml_log_set");
    if (log_set == NULL) {
        return 0;
    }
    log_set(llm_log_cb, NULL);
    return 1;
#endif
}

// llm_free_context frees a context with llama_free, but frees its ggml
// backends only after llama_free returns. llama_context's members are
// destroyed in an order that frees the backends before the scheduler, and
// the scheduler of the ggml vendored with Ollama calls each backend's reset
// as it is freed: it reads the freed backends, and CUDA's reset writes
// through its freed context, a crash once that memory is reused. On Linux,
// the engine links with --wrap=ggml_backend_free so that calls from
// llama.cpp come to __wrap_ggml_backend_free, which holds back the backends
// freed on this thread during llama_free. Elsewhere (macOS's linker has no
// --wrap) llama_free runs as it is; Metal has no reset to call.
#ifdef __linux__
void __real_ggml_backend_free(ggml_backend_t backend);

enum { LLM_MAX_DEFERRED = 16 }; // GGML_SCHED_MAX_BACKENDS

static _Thread_local int deferring;
static _Thread_local int n_deferred;
static _Thread_local ggml_backend_t deferred[LLM_MAX_DEFERRED];
static int64_t deferred_total; // for tests: backends whose free was held back

void __wrap_ggml_backend_free(ggml_backend_t backend) {
    if (deferring && backend != NULL && n_deferred < LLM_MAX_DEFERRED) {
        deferred[n_deferred++] = backend;
        __atomic_add_fetch(&deferred_total, 1, __ATOMIC_RELAXED);
        return;
    }
    __real_ggml_backend_free(backend);
}

void llm_free_context(struct llama_context * ctx) {
    deferring = 1;
    llama_free(ctx);
    deferring = 0;
    for (int i = 0; i < n_deferred; i++) {
        __real_ggml_backend_free(deferred[i]);
        deferred[i] = NULL;
    }
    n_deferred = 0;
}

int64_t llm_deferred_backend_frees(void) {
    return __atomic_load_n(&deferred_total, __ATOMIC_RELAXED);
}
#else
void llm_free_context(struct llama_context * ctx) {
    llama_free(ctx);
}

int64_t llm_deferred_backend_frees(void) {
    return -1;
}
#endif

// llm_abort_cb is polled by ggml between graph nodes and by llama_decode
// between micro-batches. It reads a flag that Go sets when the caller's
// context is cancelled, so no Go code runs on ggml's worker threads.
static bool llm_abort_cb(void * data) {
    return __atomic_load_n((int32_t *) data, __ATOMIC_RELAXED) != 0;
}

void llm_set_abort(struct llama_context * ctx, int32_t * flag) {
    llama_set_abort_callback(ctx, llm_abort_cb, flag);
}

static bool llm_progress_cb(float progress, void * user_data) {
    return llmGoProgress(progress, (uintptr_t) user_data) != 0;
}

void llm_set_progress(struct llama_model_params * params, uintptr_t handle) {
    params->progress_callback = llm_progress_cb;
    params->progress_callback_user_data = (void *) handle;
}

// llm_set_int_override makes o override the metadata key (cut to 127
// bytes) with the integer v.
void llm_set_int_override(struct llama_model_kv_override * o, const char * key, int64_t v) {
    o->tag = LLAMA_KV_OVERRIDE_TYPE_INT;
    strncpy(o->key, key, sizeof(o->key) - 1);
    o->key[sizeof(o->key) - 1] = 0;
    o->val_i64 = v;
}
