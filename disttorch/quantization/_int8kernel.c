/* int8 x int8 -> int32 matrix product for dynamically quantized Linear layers.
 *
 * numpy has no integer GEMM, so without this the int8 layers must widen their weights to float32
 * before multiplying, which costs as much as reading float32 weights in the first place. This loop
 * reads the int8 weights once per input row; the compiler vectorises the inner product (widening
 * multiply-adds). It is an optional extension: when it cannot be built, disttorch falls back to the
 * numpy path. Python loads it through ctypes; the module object itself is empty.
 */
#include <Python.h>
#include <stdint.h>

void disttorch_int8_gemm(const int8_t *x, const int8_t *w, int32_t *out, long rows, long cols, long depth)
{
    for (long i = 0; i < rows; i++) {
        const int8_t *xi = x + i * depth;
        for (long j = 0; j < cols; j++) {
            const int8_t *wj = w + j * depth;
            int32_t acc = 0;
            for (long t = 0; t < depth; t++)
                acc += (int32_t)xi[t] * (int32_t)wj[t];
            out[i * cols + j] = acc;
        }
    }
}

static struct PyModuleDef int8kernel_module = {PyModuleDef_HEAD_INIT, "_int8kernel", NULL, -1, NULL};

PyMODINIT_FUNC PyInit__int8kernel(void)
{
    return PyModule_Create(&int8kernel_module);
}
