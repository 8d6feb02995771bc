// The C++ build of the fused Gumbel-Softmax estimate measured by benchmarks/vectorised_route.py (issue 15):
// the same algorithm as that script's numba kernel (Philox-4x32-10 bits, Cephes-style logf/expf polynomials,
// constant-shift softmax, quadratic f's gradient, Jacobian product, float64 sums). Compiled there with g++ twice:
// strict (-ffp-contract=off: every operation rounded as written) and fast-math. Not part of gradbench.
#include <cstdint>
#include <cstring>
#include <cmath>
static inline uint32_t f2u(float x) { uint32_t i; std::memcpy(&i, &x, 4); return i; }
static inline float u2f(uint32_t i) { float x; std::memcpy(&x, &i, 4); return x; }
static inline float logf_(float x) {
    uint32_t i = f2u(x);
    int32_t e = (int32_t)(i >> 23) - 127;
    float m = u2f((i & 0x007FFFFFu) | 0x3F800000u);
    bool big = m > 1.41421356f;
    m = big ? m * 0.5f : m;
    float ef = big ? (float)(e + 1) : (float)e;
    float xx = m - 1.0f, z = xx * xx;
    float y = 7.0376836292e-2f * xx - 1.1514610310e-1f;
    y = y * xx + 1.1676998740e-1f; y = y * xx - 1.2420140846e-1f; y = y * xx + 1.4249322787e-1f;
    y = y * xx - 1.6668057665e-1f; y = y * xx + 2.0000714765e-1f; y = y * xx - 2.4999993993e-1f;
    y = y * xx + 3.3333331174e-1f;
    y = y * xx * z + -2.12194440e-4f * ef - 0.5f * z;
    return xx + y + 0.693359375f * ef;
}
static inline float expf_(float x) {
    x = x > -87.0f ? x : -87.0f;
    float fx = std::floor(x * 1.44269504088896341f + 0.5f);
    x = x - fx * 0.693359375f - fx * -2.12194440e-4f;
    float y = 1.9875691500e-4f * x + 1.3981999507e-3f;
    y = y * x + 8.3334519073e-3f; y = y * x + 4.1665795894e-2f; y = y * x + 1.6666665459e-1f;
    y = y * x + 5.0000001201e-1f;
    y = y * (x * x) + x + 1.0f;
    return y * u2f((uint32_t)((int32_t)fx + 127) << 23);
}
static inline void philox(uint32_t c[4], uint32_t k0, uint32_t k1) {
    for (int r = 0; r < 10; ++r) {
        uint64_t p0 = (uint64_t)c[0] * 0xD2511F53u, p1 = (uint64_t)c[2] * 0xCD9E8D57u;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c[1] ^ k0, n1 = (uint32_t)p1;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c[3] ^ k1, n3 = (uint32_t)p0;
        c[0] = n0; c[1] = n1; c[2] = n2; c[3] = n3;
        k0 += 0x9E3779B9u; k1 += 0xBB67AE85u;
    }
}
extern "C" void kat(const uint32_t* ctr, const uint32_t* key, uint32_t* out) {
    uint32_t c[4] = {ctr[0], ctr[1], ctr[2], ctr[3]};
    philox(c, key[0], key[1]);
    for (int i = 0; i < 4; ++i) out[i] = c[i];
}
// Slab b's unnormalised softmax terms into scratch (slab x P): uniforms on the midpoint grid (k + 1/2)·2⁻²⁴ from
// Philox (counter (j, b, 0, 0)), then e = exp((θ + G)/τ − c_d) with G = −log(−log U) (base holds (θ − c_d·τ)/τ).
static inline void exp_terms(float* scratch, int64_t b, const float* base, float inv_tau, int64_t P, uint32_t key0,
                             uint32_t key1, int64_t slab) {
    for (int64_t j = 0; j < slab * P / 4; ++j) {
        uint32_t c[4] = {(uint32_t)j, (uint32_t)b, 0u, 0u};
        philox(c, key0, key1);
        for (int q = 0; q < 4; ++q) scratch[4 * j + q] = (float)(c[q] >> 8) * 0x1p-24f + 0x1p-25f;
    }
    for (int64_t i = 0; i < slab; ++i) {
        float* row = scratch + i * P;
        for (int64_t p = 0; p < P; ++p) row[p] = expf_(base[p] - logf_(-logf_(row[p])) * inv_tau);
    }
}

// z̃ = softmax((θ + G)/τ) for n estimates (slab by slab) into out (n x P): the part of the estimate that does not
// depend on the task, for the split route (f's gradient, the Jacobian product and the statistics stay in torch).
extern "C" void relaxed(int64_t n, const float* base, float inv_tau, int64_t P, int64_t K, uint32_t key0,
                        uint32_t key1, float* out, int64_t slab) {
    for (int64_t b = 0; b < n / slab; ++b) {
        float* scratch = out + b * slab * P;
        exp_terms(scratch, b, base, inv_tau, P, key0, key1, slab);
        for (int64_t r = 0; r < slab * P / K; ++r) {
            float* row = scratch + r * K;
            float total = 0.0f;
            for (int64_t k = 0; k < K; ++k) total += row[k];
            for (int64_t k = 0; k < K; ++k) row[k] = row[k] / total;
        }
    }
}

// The whole estimate for the quadratic task, f(z) = Σ (z − c)²: softmax, v = 2(z − c), g = z ⊙ (v − ⟨z, v⟩)/τ,
// folded into float64 sums s1 += g, s2 += g².
extern "C" void fused(int64_t n, const float* base, float inv_tau, const float* target, int64_t P, int64_t K,
                      uint32_t key0, uint32_t key1, double* s1, double* s2, float* scratch, int64_t slab) {
    for (int64_t b = 0; b < n / slab; ++b) {
        exp_terms(scratch, b, base, inv_tau, P, key0, key1, slab);
        for (int64_t r = 0; r < slab * P / K; ++r) {
            float* row = scratch + r * K;
            const int64_t p0 = (r * K) % P;
            float total = 0.0f, dot = 0.0f;
            for (int64_t k = 0; k < K; ++k) total += row[k];
            for (int64_t k = 0; k < K; ++k) {
                float z = row[k] / total;
                row[k] = z;
                dot += z * (2.0f * (z - target[p0 + k]));
            }
            for (int64_t k = 0; k < K; ++k) {
                float z = row[k];
                double g = (double)(z * (2.0f * (z - target[p0 + k]) - dot) * inv_tau);
                s1[p0 + k] += g;
                s2[p0 + k] += g * g;
            }
        }
    }
}
