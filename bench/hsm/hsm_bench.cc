// Our token layer (TokenSealer, TokenKeyedHash: session pool, IV, format
// byte, status conversion) against raw C_Encrypt / C_Decrypt / C_Sign of the
// same module, same key, same payload, interleaved in the same run; the
// `overhead` column is raw ops/s over ours (target <= 1.2). Creates its own
// SoftHSM token in a temporary directory.
#include <benchmark/benchmark.h>
#include <dlfcn.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <iostream>

#include "hsm/key_ceremony.h"
#include "hsm/key_labels.h"
#include "hsm/pin.h"
#include "hsm/softhsm_dev.h"

namespace bkv::hsm {
namespace {

constexpr size_t kPayload = 256;

struct Env {
  std::string dir;
  std::shared_ptr<Pkcs11Hsm> hsm;
  std::optional<TokenSealer> sealer;
  std::optional<TokenKeyedHash> seed;
  CK_OBJECT_HANDLE seal_key = CK_INVALID_HANDLE;
  CK_OBJECT_HANDLE seed_key = CK_INVALID_HANDLE;
  CK_FUNCTION_LIST* fn = nullptr;
};
Env* g_env = nullptr;

void Die(const absl::Status& s) {
  std::cerr << "hsm_bench: " << s << "\n";
  std::exit(1);
}

void SetUpEnv() {
  auto* env = new Env;
  char tmpl[] = "/tmp/bkv-hsm-bench-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) Die(absl::InternalError("mkdtemp"));
  env->dir = tmpl;
  auto dev = PrepareSoftHsmDir(env->dir, "bench");
  if (!dev.ok()) Die(dev.status());
  auto pin = ReadPinFile(dev->user_pin_path);
  if (!pin.ok()) Die(pin.status());
  TokenOptions options;
  options.token_label = "bench";
  auto hsm = Pkcs11Hsm::Open(options, *pin);
  if (!hsm.ok()) Die(hsm.status());
  env->hsm = *hsm;
  if (auto r = RunKeyCeremony(*env->hsm, {}); !r.ok()) Die(r.status());
  auto sealer = TokenSealer::Create(env->hsm);
  auto seed = TokenKeyedHash::Create(env->hsm);
  if (!sealer.ok()) Die(sealer.status());
  if (!seed.ok()) Die(seed.status());
  env->sealer.emplace(*std::move(sealer));
  env->seed.emplace(*std::move(seed));
  auto session = env->hsm->AcquireSession();
  if (!session.ok()) Die(session.status());
  env->seal_key = *session->FindObject(CKO_SECRET_KEY, kRecordSealKeyLabel);
  env->seed_key = *session->FindObject(CKO_SECRET_KEY, kOprfSeedLabel);
  // The module is already loaded and initialised; fetch its function list.
  void* dl = dlopen(env->hsm->module_path().c_str(), RTLD_NOW | RTLD_NOLOAD);
  auto get = reinterpret_cast<CK_C_GetFunctionList>(
      dl != nullptr ? dlsym(dl, "C_GetFunctionList") : nullptr);
  if (get == nullptr || get(&env->fn) != CKR_OK) {
    Die(absl::InternalError("C_GetFunctionList"));
  }
  g_env = env;
}

// Runs our operation and the raw PKCS#11 call in alternating batches on the
// same thread, so load from the rest of the machine hits both alike, and
// reports both rates and their ratio as counters:
//   bkv/s, raw/s  operations per second, summed over threads
//   overhead      raw ops/s / bkv ops/s (target <= 1.2)
template <typename Ours, typename Raw>
void Paired(benchmark::State& state, Ours&& ours, Raw&& raw) {
  using Clock = std::chrono::steady_clock;
  constexpr int kBatch = 50;
  Clock::duration t_ours{}, t_raw{};
  int64_t ops = 0;
  bool ours_first = state.thread_index() % 2 == 0;
  for (auto _ : state) {
    for (int pass = 0; pass < 2; ++pass) {
      const bool run_ours = (pass == 0) == ours_first;
      const auto t0 = Clock::now();
      for (int i = 0; i < kBatch; ++i) {
        if (!(run_ours ? ours() : raw())) {
          state.SkipWithError(run_ours ? "bkv operation failed"
                                       : "raw PKCS#11 call failed");
          return;
        }
      }
      (run_ours ? t_ours : t_raw) += Clock::now() - t0;
    }
    ours_first = !ours_first;  // cancel any order bias
    ops += kBatch;
  }
  const double s_ours = std::chrono::duration<double>(t_ours).count();
  const double s_raw = std::chrono::duration<double>(t_raw).count();
  state.counters["bkv/s"] = benchmark::Counter(ops / s_ours);
  state.counters["raw/s"] = benchmark::Counter(ops / s_raw);
  state.counters["overhead"] =
      benchmark::Counter(s_ours / s_raw, benchmark::Counter::kAvgThreads);
}

CK_GCM_PARAMS GcmParams(std::vector<uint8_t>& iv, std::vector<uint8_t>& ad) {
  CK_GCM_PARAMS p{};
  p.pIv = iv.data();
  p.ulIvLen = iv.size();
  p.ulIvBits = iv.size() * 8;
  p.pAAD = ad.data();
  p.ulAADLen = ad.size();
  p.ulTagBits = 128;
  return p;
}

// The raw side holds one session for the whole run: no pool, no IV
// generation, no allocation, no status conversion. Same key, same payload,
// same AAD length (format byte + 40).
void BM_Seal(benchmark::State& state) {
  auto session = g_env->hsm->AcquireSession();
  std::vector<uint8_t> pt(kPayload, 0x5a), ad(40, 1), iv(12, 7), raw_ad(41, 1),
      out(kPayload + 16);
  CK_GCM_PARAMS params = GcmParams(iv, raw_ad);
  CK_MECHANISM mech{CKM_AES_GCM, &params, sizeof(params)};
  Paired(
      state,
      [&] {
        auto sealed = g_env->sealer->Seal(pt, ad);
        benchmark::DoNotOptimize(sealed);
        return sealed.ok();
      },
      [&] {
        CK_ULONG len = out.size();
        return g_env->fn->C_EncryptInit(session->handle(), &mech,
                                        g_env->seal_key) == CKR_OK &&
               g_env->fn->C_Encrypt(session->handle(), pt.data(), pt.size(),
                                    out.data(), &len) == CKR_OK;
      });
}

void BM_Open(benchmark::State& state) {
  auto session = g_env->hsm->AcquireSession();
  std::vector<uint8_t> pt(kPayload, 0x5a), ad(40, 1), iv(12, 7), raw_ad(41, 1),
      ct(kPayload + 16), out(kPayload + 16);
  auto sealed = g_env->sealer->Seal(pt, ad);
  CK_GCM_PARAMS params = GcmParams(iv, raw_ad);
  CK_MECHANISM mech{CKM_AES_GCM, &params, sizeof(params)};
  CK_ULONG len = ct.size();
  if (!sealed.ok() ||
      g_env->fn->C_EncryptInit(session->handle(), &mech, g_env->seal_key) !=
          CKR_OK ||
      g_env->fn->C_Encrypt(session->handle(), pt.data(), pt.size(), ct.data(),
                           &len) != CKR_OK) {
    state.SkipWithError("setup failed");
    return;
  }
  Paired(
      state,
      [&] {
        auto opened = g_env->sealer->Open(*sealed, ad);
        benchmark::DoNotOptimize(opened);
        return opened.ok();
      },
      [&] {
        CK_ULONG n = out.size();
        return g_env->fn->C_DecryptInit(session->handle(), &mech,
                                        g_env->seal_key) == CKR_OK &&
               g_env->fn->C_Decrypt(session->handle(), ct.data(), ct.size(),
                                    out.data(), &n) == CKR_OK;
      });
}

void BM_Hmac(benchmark::State& state) {
  auto session = g_env->hsm->AcquireSession();
  std::vector<uint8_t> msg(64, 0x33), mac(64);
  CK_MECHANISM mech{CKM_SHA512_HMAC, nullptr, 0};
  Paired(
      state,
      [&] {
        auto h = g_env->seed->HmacSha512(msg);
        benchmark::DoNotOptimize(h);
        return h.ok();
      },
      [&] {
        CK_ULONG len = mac.size();
        return g_env->fn->C_SignInit(session->handle(), &mech,
                                     g_env->seed_key) == CKR_OK &&
               g_env->fn->C_Sign(session->handle(), msg.data(), msg.size(),
                                 mac.data(), &len) == CKR_OK;
      });
}

BENCHMARK(BM_Seal)->Threads(1)->Threads(2)->UseRealTime()->MinTime(1.0);
BENCHMARK(BM_Open)->Threads(1)->Threads(2)->UseRealTime()->MinTime(1.0);
BENCHMARK(BM_Hmac)->Threads(1)->Threads(2)->UseRealTime()->MinTime(1.0);

}  // namespace
}  // namespace bkv::hsm

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  bkv::hsm::SetUpEnv();
  benchmark::RunSpecifiedBenchmarks();
  std::string dir = bkv::hsm::g_env->dir;
  delete bkv::hsm::g_env;
  std::filesystem::remove_all(dir);
  return 0;
}
