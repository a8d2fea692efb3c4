/* WKV-6 and WKV-7 forward on a CPU, token by token: the compiled side of models/wkv_cpu.py
 * (read its docstring for why and how it is built). Plain C99 + OpenMP, no Python or torch
 * headers, so it compiles in a fraction of a second.
 *
 * Inputs are flat tokens, (n, H, K) float32 contiguous: r, k, v, the decay exp(w) (not the
 * log-decay), and WKV-6's u (H, K) or WKV-7's a, b (n, H, K). Segment s is tokens
 * [bounds[s], bounds[s+1]); each starts from an empty state. For every (segment, head), with
 * S (K x K; S[i][j]: key index i, value index j) in the thread's cache:
 *   WKV-6 (models/wkv6.py `wkv6_naive`):
 *     y_t = r_t^T S + (r_t . (u * k_t)) v_t,   then   S = diag(decay_t) S + k_t v_t^T
 *   WKV-7 (models/wkv7.py `wkv7_naive`):
 *     S = diag(decay_t) S + b_t (a_t^T S) + k_t v_t^T,   then   y_t = r_t^T S
 * Both return 0, or 1 when a thread could not allocate its state.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* One (segment, head). KK is a constant for the common head sizes, so the j loops unroll
 * into vector registers and acc stays in registers across the i loop. */
#define WKV6_SEGMENT(KK)                                                                         \
    {                                                                                            \
        memset(S, 0, sizeof(float) * (KK) * (KK));                                               \
        const float *uh = u + h * (KK);                                                          \
        for (int64_t t = t0; t < t1; t++) {                                                      \
            const int64_t o = (t * H + h) * (KK);                                                \
            const float *rt = r + o, *kt = k + o, *vt = v + o, *dt = decay + o;                  \
            float acc[KK], vv[KK], bonus = 0.f;                                                  \
            for (int64_t i = 0; i < (KK); i++) bonus += rt[i] * uh[i] * kt[i];                   \
            for (int64_t j = 0; j < (KK); j++) { vv[j] = vt[j]; acc[j] = bonus * vv[j]; }        \
            for (int64_t i = 0; i < (KK); i++) {                                                 \
                const float ri = rt[i], ki = kt[i], di = dt[i];                                  \
                float *Si = S + i * (KK);                                                        \
                for (int64_t j = 0; j < (KK); j++) {                                             \
                    const float s = Si[j];                                                       \
                    acc[j] += ri * s;                                                            \
                    Si[j] = di * s + ki * vv[j];                                                 \
                }                                                                                \
            }                                                                                    \
            float *yt = y + o;                                                                   \
            for (int64_t j = 0; j < (KK); j++) yt[j] = acc[j];                                   \
        }                                                                                        \
    }

/* One WKV-7 (segment, head), as WKV6_SEGMENT: the removal a^T S is read before the update. */
#define WKV7_SEGMENT(KK)                                                                         \
    {                                                                                            \
        memset(S, 0, sizeof(float) * (KK) * (KK));                                               \
        for (int64_t t = t0; t < t1; t++) {                                                      \
            const int64_t o = (t * H + h) * (KK);                                                \
            const float *rt = r + o, *kt = k + o, *vt = v + o, *dt = decay + o, *at = a + o,     \
                        *bt = b + o;                                                             \
            float sa[KK], acc[KK], vv[KK];                                                       \
            for (int64_t j = 0; j < (KK); j++) { sa[j] = 0.f; acc[j] = 0.f; vv[j] = vt[j]; }     \
            for (int64_t i = 0; i < (KK); i++) {                                                 \
                const float ai = at[i];                                                          \
                const float *Si = S + i * (KK);                                                  \
                for (int64_t j = 0; j < (KK); j++) sa[j] += ai * Si[j];                          \
            }                                                                                    \
            for (int64_t i = 0; i < (KK); i++) {                                                 \
                const float ri = rt[i], ki = kt[i], di = dt[i], bi = bt[i];                      \
                float *Si = S + i * (KK);                                                        \
                for (int64_t j = 0; j < (KK); j++) {                                             \
                    const float s = di * Si[j] + bi * sa[j] + ki * vv[j];                        \
                    Si[j] = s;                                                                   \
                    acc[j] += ri * s;                                                            \
                }                                                                                \
            }                                                                                    \
            float *yt = y + o;                                                                   \
            for (int64_t j = 0; j < (KK); j++) yt[j] = acc[j];                                   \
        }                                                                                        \
    }

/* The (segment, head) items shared out over n_threads of the OpenMP pool, each thread with
 * its own state; SEGMENT is unrolled for the common head sizes. */
#define WKV_DRIVER(SEGMENT)                                                                      \
    int failed = 0;                                                                              \
    _Pragma("omp parallel num_threads(n_threads) reduction(| : failed)")                         \
    {                                                                                            \
        float *S = malloc(sizeof(float) * K * K);                                                \
        if (S == NULL) failed = 1;                                                               \
        _Pragma("omp for schedule(dynamic, 4)")                                                  \
        for (int64_t item = 0; item < n_segments * H; item++) {                                  \
            if (S == NULL) continue;                                                             \
            const int64_t seg = item / H, h = item % H, t0 = bounds[seg], t1 = bounds[seg + 1];  \
            switch (K) {                                                                         \
                case 64: SEGMENT(64) break;                                                      \
                case 32: SEGMENT(32) break;                                                      \
                case 16: SEGMENT(16) break;                                                      \
                case 8: SEGMENT(8) break;                                                        \
                default: SEGMENT(K) break;                                                       \
            }                                                                                    \
        }                                                                                        \
        free(S);                                                                                 \
    }                                                                                            \
    return failed;

int wkv6_cpu_forward(int64_t n_segments, const int64_t *bounds, int64_t H, int64_t K, const float *r,
                     const float *k, const float *v, const float *decay, const float *u, float *y,
                     int n_threads) {
    WKV_DRIVER(WKV6_SEGMENT)
}

int wkv7_cpu_forward(int64_t n_segments, const int64_t *bounds, int64_t H, int64_t K, const float *r,
                     const float *k, const float *v, const float *decay, const float *a, const float *b,
                     float *y, int n_threads) {
    WKV_DRIVER(WKV7_SEGMENT)
}
