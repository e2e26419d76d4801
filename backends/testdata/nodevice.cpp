// A ggml backend library with no device, for tests: what the CUDA backend is
// on a machine whose driver is missing or too old. Like ggml_cuda_init, it
// logs why through ggml's log (the copy in libggml-base it links against)
// while it registers, then offers no device.
#include "ggml-backend-impl.h"
#include "ggml-impl.h"

static const char * nodevice_name(ggml_backend_reg_t) {
    return "NoDevice";
}

static size_t nodevice_count(ggml_backend_reg_t) {
    return 0;
}

static ggml_backend_dev_t nodevice_get(ggml_backend_reg_t, size_t) {
    return nullptr;
}

static ggml_backend_reg_t nodevice_reg(void) {
    static ggml_backend_reg reg = {
        /* .api_version = */ GGML_BACKEND_API_VERSION,
        /* .iface       = */ { nodevice_name, nodevice_count, nodevice_get, nullptr },
        /* .context     = */ nullptr,
    };
    GGML_LOG_ERROR("%s: failed to initialize NoDevice: no NoDevice-capable device is detected\n", __func__);
    return &reg;
}

GGML_BACKEND_DL_IMPL(nodevice_reg)
