// The dev.bkv.Native key-slot entry points (Slots, SlotSecret), one to one
// onto the C ABI's bkv_slot_* / bkv_slots_* calls. PRF outputs pass through
// wiped buffers only.
#include <cstdio>
#include <string>

#include "bindings/java/jni/bkv_jni.h"

using bkv_jni::Failed;
using bkv_jni::Handle;
using bkv_jni::Ptr;
using bkv_jni::Utf;

namespace {

// A byte[] copied into memory wiped when this goes away.
class Bytes {
 public:
  Bytes(JNIEnv* env, jbyteArray a) {
    if (a == nullptr) return;
    bytes_.resize(static_cast<size_t>(env->GetArrayLength(a)));
    env->GetByteArrayRegion(a, 0, static_cast<jsize>(bytes_.size()),
                            reinterpret_cast<jbyte*>(bytes_.data()));
  }
  ~Bytes() { bkv_jni::Wipe(bytes_.data(), bytes_.size()); }
  Bytes(const Bytes&) = delete;
  Bytes& operator=(const Bytes&) = delete;
  // NULL unless exactly `n` bytes (0: any length but empty).
  const uint8_t* get(size_t n = 0) const {
    if (bytes_.empty() || (n != 0 && bytes_.size() != n)) return nullptr;
    return bytes_.data();
  }
  size_t size() const { return bytes_.size(); }

 private:
  std::vector<uint8_t> bytes_;
};

jbyteArray ToJava(JNIEnv* env, const uint8_t* p, size_t n) {
  jbyteArray out = env->NewByteArray(static_cast<jsize>(n));
  if (out != nullptr) {
    env->SetByteArrayRegion(out, 0, static_cast<jsize>(n),
                            reinterpret_cast<const jbyte*>(p));
  }
  return out;
}

std::string Hex(const uint8_t* p, size_t n) {
  std::string out;
  char b[3];
  for (size_t i = 0; i < n; ++i) {
    std::snprintf(b, sizeof b, "%02x", p[i]);
    out += b;
  }
  return out;
}

}  // namespace

#define BKV_JNI(ret, name) \
  extern "C" JNIEXPORT ret JNICALL Java_dev_bkv_Native_##name

BKV_JNI(jlong, slotSecretRecoveryKey)(JNIEnv* env, jclass, jlong key) {
  bkv_slot_secret* s = nullptr;
  char* err = nullptr;
  if (Failed(env, bkv_slot_secret_recovery_key(Ptr<bkv_key>(key), &s, &err),
             &err)) {
    return 0;
  }
  return Handle(s);
}

BKV_JNI(jlong, slotSecretPasskey)
(JNIEnv* env, jclass, jbyteArray credential_id, jbyteArray prf_output) {
  Bytes cred(env, credential_id), out(env, prf_output);
  bkv_slot_secret* s = nullptr;
  char* err = nullptr;
  if (Failed(env,
             bkv_slot_secret_passkey(cred.get(), cred.size(), out.get(32), &s,
                                     &err),
             &err)) {
    return 0;
  }
  return Handle(s);
}

BKV_JNI(void, slotSecretFree)(JNIEnv*, jclass, jlong secret) {
  bkv_slot_secret_free(Ptr<bkv_slot_secret>(secret));
}

BKV_JNI(jlong, slotsUnlock)(JNIEnv* env, jclass, jlong store, jlong secret) {
  bkv_key* key = nullptr;
  char* err = nullptr;
  if (Failed(env,
             bkv_slots_unlock(Ptr<bkv_store>(store),
                              Ptr<bkv_slot_secret>(secret), &key, &err),
             &err)) {
    return 0;
  }
  return Handle(key);
}

BKV_JNI(jstring, slotsPasskeys)(JNIEnv* env, jclass, jlong store) {
  bkv_passkey_slot* slots = nullptr;
  size_t n = 0;
  char* err = nullptr;
  if (Failed(env, bkv_slots_passkeys(Ptr<bkv_store>(store), &slots, &n, &err),
             &err)) {
    return nullptr;
  }
  std::string lines;
  for (size_t i = 0; i < n; ++i) {
    lines += Hex(slots[i].slot_id, 16) + " " +
             Hex(slots[i].credential_id, slots[i].credential_id_len) + " " +
             Hex(slots[i].salt, 32) + " " + slots[i].rp_id + "\n";
  }
  bkv_passkey_slots_free(slots, n);
  return env->NewStringUTF(lines.c_str());
}

BKV_JNI(jbyteArray, randomSalt)(JNIEnv* env, jclass) {
  uint8_t salt[32];
  char* err = nullptr;
  if (Failed(env, bkv_random_salt(salt, &err), &err)) return nullptr;
  return ToJava(env, salt, sizeof salt);
}

BKV_JNI(jbyteArray, slotsAddPasskey)
(JNIEnv* env, jclass, jlong store, jlong opened, jstring rp_id,
 jbyteArray credential_id, jbyteArray salt, jbyteArray prf_output) {
  Utf rp(env, rp_id);
  Bytes cred(env, credential_id), s(env, salt), out(env, prf_output);
  uint8_t id[16];
  char* err = nullptr;
  if (Failed(env,
             bkv_slots_add_passkey(
                 Ptr<bkv_store>(store), Ptr<bkv_slot_secret>(opened), rp.get(),
                 cred.get(), cred.size(), s.get(32), out.get(32), id, &err),
             &err)) {
    return nullptr;
  }
  return ToJava(env, id, sizeof id);
}

BKV_JNI(jbyteArray, slotsAddRecoveryKey)
(JNIEnv* env, jclass, jlong store, jlong opened, jlong new_key) {
  uint8_t id[16];
  char* err = nullptr;
  if (Failed(env,
             bkv_slots_add_recovery_key(Ptr<bkv_store>(store),
                                        Ptr<bkv_slot_secret>(opened),
                                        Ptr<bkv_key>(new_key), id, &err),
             &err)) {
    return nullptr;
  }
  return ToJava(env, id, sizeof id);
}

BKV_JNI(jboolean, slotsRemove)
(JNIEnv* env, jclass, jlong store, jlong opened, jbyteArray slot_id) {
  Bytes id(env, slot_id);
  int was_master = 0;
  char* err = nullptr;
  if (Failed(
          env,
          bkv_slots_remove(Ptr<bkv_store>(store), Ptr<bkv_slot_secret>(opened),
                           id.get(16), &was_master, &err),
          &err)) {
    return JNI_FALSE;
  }
  return was_master ? JNI_TRUE : JNI_FALSE;
}

BKV_JNI(void, slotsRotatePasskeySalt)
(JNIEnv* env, jclass, jlong store, jlong old_output, jbyteArray new_salt,
 jbyteArray new_output) {
  Bytes s(env, new_salt), out(env, new_output);
  char* err = nullptr;
  Failed(env,
         bkv_slots_rotate_passkey_salt(Ptr<bkv_store>(store),
                                       Ptr<bkv_slot_secret>(old_output),
                                       s.get(32), out.get(32), &err),
         &err);
}
