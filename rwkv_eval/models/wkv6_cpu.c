/* WKV-6 forward on a CPU, token by token: the compiled side of models/wkv6_cpu.py (read
 * its docstring for why and how it is built). Plain C99 + OpenMP, no Python or torch
 * headers, so it compiles in a fraction of a second.
 *
 * Inputs are flat tokens, (n, H, K) float32 contiguous: r, k, v, the decay exp(w) (not the
 * log-decay), and u (H, K). Segment s is tokens [bounds[s], bounds[s+1]); each starts from
 * an empty state. For every (segment, head), with S (K x K) in the thread's cache:
 *     y_t = r_t^T S + (r_t . (u * k_t)) v_t        then        S = diag(decay_t) S + k_t v_t^T
 * (S[i][j]: key index i, value index j), the recurrence of models/wkv6.py `wkv6_naive`.
 * Returns 0, or 1 when a thread could not allocate its state.
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

int wkv6_cpu_forward(int64_t n_segments, const int64_t *bounds, int64_t H, int64_t K, const float *r,
                     const float *k, const float *v, const float *decay, const float *u, float *y,
                     int n_threads) {
    int failed = 0;
#pragma omp parallel num_threads(n_threads) reduction(| : failed)
    {
        float *S = malloc(sizeof(float) * K * K);
        if (S == NULL) failed = 1;
#pragma omp for schedule(dynamic, 4)
        for (int64_t item = 0; item < n_segments * H; item++) {
            if (S == NULL) continue;
            const int64_t seg = item / H, h = item % H, t0 = bounds[seg], t1 = bounds[seg + 1];
            switch (K) {
                case 64: WKV6_SEGMENT(64) break;
                case 32: WKV6_SEGMENT(32) break;
                case 16: WKV6_SEGMENT(16) break;
                case 8: WKV6_SEGMENT(8) break;
                default: WKV6_SEGMENT(K) break;
            }
        }
        free(S);
    }
    return failed;
}
