// Software sealing vs the raw OpenSSL primitive it wraps, same sizes, same
// run: the ratio is the cost of our layer (nonce generation, allocation).
#include <benchmark/benchmark.h>
#include <openssl/evp.h>

#include <vector>

#include "crypto/aes_gcm_sealer.h"

namespace bkv {
namespace {

void BM_AesGcmSealerSeal(benchmark::State& state) {
  auto sealer = AesGcmSealer::Create(SecretBytes::Random(32));
  std::vector<uint8_t> pt(state.range(0), 0x5a), ad(40, 1);
  for (auto _ : state) {
    auto sealed = sealer->Seal(pt, ad);
    benchmark::DoNotOptimize(sealed);
  }
  state.SetBytesProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_AesGcmSealerSeal)->Arg(256)->Arg(16 << 10);

void BM_RawEvpAesGcm(benchmark::State& state) {
  std::vector<uint8_t> key(32, 7), iv(12, 1), pt(state.range(0), 0x5a),
      out(state.range(0) + 16), ad(40, 1);
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  int len = 0;
  for (auto _ : state) {
    EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), nullptr, key.data(), iv.data());
    EVP_EncryptUpdate(ctx, nullptr, &len, ad.data(), ad.size());
    EVP_EncryptUpdate(ctx, out.data(), &len, pt.data(), pt.size());
    EVP_EncryptFinal_ex(ctx, out.data() + len, &len);
    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, out.data() + pt.size());
    benchmark::DoNotOptimize(out.data());
  }
  EVP_CIPHER_CTX_free(ctx);
  state.SetBytesProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_RawEvpAesGcm)->Arg(256)->Arg(16 << 10);

}  // namespace
}  // namespace bkv

BENCHMARK_MAIN();
