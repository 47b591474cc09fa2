/* relu(max_pool2d(x, 2, 2)) on channels-last CPU tensors, forward and backward in one pass each.

PyTorch's max-pool writes an int64 index per output and, backward, zero-fills the whole input
gradient before scattering into it; here the window's winner is one byte (CLOSED: no gradient, the
ReLU is shut) and each input-gradient pixel is written once. The winner is PyTorch's: the first
maximum in row-major window order; a NaN wins and stays NaN.
Layout: x is (N, H, W, C) contiguous, y and the winners (N, H / 2, W / 2, C). One thread: the
caller's threads are PyTorch's OpenMP pool, which spins between its parallel regions.
The inner loops are branch-free over channels, with restrict pointers, so that the compiler
vectorizes them (gcc -O3 -fopt-info-vec shows it). */
#include <stdint.h>
#include <string.h>

#define CLOSED 4

static inline float bf16_value(uint16_t bits) {
    union { uint32_t u; float f; } v;
    v.u = (uint32_t)bits << 16;
    return v.f;
}

static inline float f32_value(float x) { return x; }

/* v != v: NaN */
#define TAKE(i, VALUE)                                                  \
    {                                                                   \
        float v = VALUE(p##i[k]);                                       \
        int t = v > m || v != v;                                        \
        m = t ? v : m;                                                  \
        best = t ? p##i[k] : best;                                      \
        at = t ? i : at;                                                \
    }

/* One window row's channels: y and the winners. */
#define POOL_ROW(NAME, T, VALUE)                                                     \
static inline void NAME(const T *restrict p0, const T *restrict p1,                  \
                        const T *restrict p2, const T *restrict p3, T *restrict out, \
                        uint8_t *restrict win, int64_t c) {                          \
    for (int64_t k = 0; k < c; k++) {                                                \
        T best = p0[k];                                                              \
        float m = VALUE(best);                                                       \
        uint8_t at = 0;                                                              \
        TAKE(1, VALUE) TAKE(2, VALUE) TAKE(3, VALUE)                                 \
        int open = m > 0 || m != m;                                                  \
        out[k] = open ? best : (T)0;                                                 \
        win[k] = open ? at : CLOSED;                                                 \
    }                                                                                \
}

/* One window's channels: each gradient to its winner, zeros to the others. */
#define SCATTER_ROW(NAME, T)                                                         \
static inline void NAME(T *restrict p0, T *restrict p1, T *restrict p2,              \
                        T *restrict p3, const T *restrict v,                         \
                        const uint8_t *restrict at, int64_t c) {                     \
    for (int64_t k = 0; k < c; k++) {                                                \
        T value = v[k];                                                              \
        uint8_t i = at[k];                                                           \
        p0[k] = i == 0 ? value : (T)0;                                               \
        p1[k] = i == 1 ? value : (T)0;                                               \
        p2[k] = i == 2 ? value : (T)0;                                               \
        p3[k] = i == 3 ? value : (T)0;                                               \
    }                                                                                \
}

#define FORWARD(NAME, T, ROW)                                                        \
static void NAME(const T *x, T *y, uint8_t *winner, int64_t n, int64_t h,            \
                 int64_t w, int64_t c) {                                             \
    int64_t h2 = h / 2, w2 = w / 2;                                                  \
    for (int64_t r = 0; r < n * h2; r++) {                                           \
        const T *top = x + ((r / h2) * h + 2 * (r % h2)) * w * c;                    \
        const T *bottom = top + w * c;                                               \
        for (int64_t ow = 0; ow < w2; ow++)                                          \
            ROW(top + 2 * ow * c, top + (2 * ow + 1) * c, bottom + 2 * ow * c,       \
                bottom + (2 * ow + 1) * c, y + (r * w2 + ow) * c,                    \
                winner + (r * w2 + ow) * c, c);                                      \
    }                                                                                \
}

#define BACKWARD(NAME, T, ROW)                                                       \
static void NAME(const T *g, T *gx, const uint8_t *winner, int64_t n, int64_t h,     \
                 int64_t w, int64_t c) {                                             \
    int64_t h2 = h / 2, w2 = w / 2;                                                  \
    for (int64_t r = 0; r < n * h2; r++) {                                           \
        T *top = gx + ((r / h2) * h + 2 * (r % h2)) * w * c;                         \
        T *bottom = top + w * c;                                                     \
        for (int64_t ow = 0; ow < w2; ow++)                                          \
            ROW(top + 2 * ow * c, top + (2 * ow + 1) * c, bottom + 2 * ow * c,       \
                bottom + (2 * ow + 1) * c, g + (r * w2 + ow) * c,                    \
                winner + (r * w2 + ow) * c, c);                                      \
        if (w % 2) { /* the column no window covers */                               \
            memset(top + 2 * w2 * c, 0, c * sizeof(T));                             \
            memset(bottom + 2 * w2 * c, 0, c * sizeof(T));                           \
        }                                                                            \
        if (h % 2 && r % h2 == h2 - 1) /* the row no window covers */                \
            memset(bottom + w * c, 0, w * c * sizeof(T));                            \
    }                                                                                \
}

POOL_ROW(pool_row_bf16, uint16_t, bf16_value)
POOL_ROW(pool_row_f32, float, f32_value)
SCATTER_ROW(scatter_row_bf16, uint16_t)
SCATTER_ROW(scatter_row_f32, float)
FORWARD(forward_bf16, uint16_t, pool_row_bf16)
FORWARD(forward_f32, float, pool_row_f32)
BACKWARD(backward_bf16, uint16_t, scatter_row_bf16)
BACKWARD(backward_f32, float, scatter_row_f32)

/* dtype: 0 bf16, 1 float32. Returns 0, or -1 for another dtype. */
int pool_relu_forward(int dtype, const void *x, void *y, uint8_t *winner,
                      int64_t n, int64_t h, int64_t w, int64_t c) {
    if (dtype == 0) forward_bf16(x, y, winner, n, h, w, c);
    else if (dtype == 1) forward_f32(x, y, winner, n, h, w, c);
    else return -1;
    return 0;
}

int pool_relu_backward(int dtype, const void *grad_y, void *grad_x, const uint8_t *winner,
                       int64_t n, int64_t h, int64_t w, int64_t c) {
    if (dtype == 0) backward_bf16(grad_y, grad_x, winner, n, h, w, c);
    else if (dtype == 1) backward_f32(grad_y, grad_x, winner, n, h, w, c);
    else return -1;
    return 0;
}
