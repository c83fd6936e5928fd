// The dev.bkv.Native entry points that map one to one onto C ABI calls.
#include <cstring>

#include "bindings/java/jni/bkv_jni.h"

using bkv_jni::Failed;
using bkv_jni::GlobalRef;
using bkv_jni::Handle;
using bkv_jni::Ptr;
using bkv_jni::SecretBuffer;
using bkv_jni::Utf;
using bkv_jni::Utf8FromChars;

namespace {

// A Java String of a string the C ABI returned (not secret), freed here.
jstring Take(JNIEnv* env, char* s) {
  jstring out = env->NewStringUTF(s);
  bkv_string_free(s);
  return out;
}

}  // namespace

#define BKV_JNI(ret, name) \
  extern "C" JNIEXPORT ret JNICALL Java_dev_bkv_Native_##name

BKV_JNI(jstring, version)(JNIEnv* env, jclass) {
  return env->NewStringUTF(bkv_version());  // static: not freed
}

BKV_JNI(jlong, keyGenerate)(JNIEnv* env, jclass) {
  bkv_key* key = nullptr;
  char* err = nullptr;
  if (Failed(env, bkv_key_generate(&key, &err), &err)) return 0;
  return Handle(key);
}

BKV_JNI(jlong, keyParse)(JNIEnv* env, jclass, jcharArray text) {
  SecretBuffer utf8;
  Utf8FromChars(env, text, utf8);
  bkv_key* key = nullptr;
  char* err = nullptr;
  if (Failed(env, bkv_key_parse(utf8.data(), utf8.size(), &key, &err), &err)) {
    return 0;
  }
  return Handle(key);
}

BKV_JNI(jcharArray, keyFormat)(JNIEnv* env, jclass, jlong key) {
  char* text = nullptr;
  char* err = nullptr;
  if (Failed(env, bkv_key_format(Ptr<bkv_key>(key), &text, &err), &err)) {
    return nullptr;
  }
  const size_t n = std::strlen(text);  // ASCII: hex digits and spaces
  std::vector<jchar> chars(text, text + n);
  bkv_string_free(text);  // wipes
  jcharArray out = env->NewCharArray(static_cast<jsize>(n));
  if (out != nullptr) {
    env->SetCharArrayRegion(out, 0, static_cast<jsize>(n), chars.data());
  }
  bkv_jni::Wipe(chars.data(), chars.size() * sizeof(jchar));
  return out;
}

BKV_JNI(void, keyFree)(JNIEnv*, jclass, jlong key) {
  bkv_key_free(Ptr<bkv_key>(key));
}

BKV_JNI(jlong, storeOpen)(JNIEnv* env, jclass, jstring url) {
  Utf u(env, url);
  bkv_store* store = nullptr;
  char* err = nullptr;
  if (Failed(env, bkv_store_open(u.get(), &store, &err), &err)) return 0;
  return Handle(store);
}

BKV_JNI(void, storeFree)(JNIEnv*, jclass, jlong store) {
  bkv_store_free(Ptr<bkv_store>(store));
}

BKV_JNI(jlong, cancelNew)(JNIEnv* env, jclass) {
  bkv_cancel* cancel = nullptr;
  char* err = nullptr;
  if (Failed(env, bkv_cancel_new(&cancel, &err), &err)) return 0;
  return Handle(cancel);
}

BKV_JNI(void, cancelRequest)(JNIEnv*, jclass, jlong cancel) {
  bkv_cancel_request(Ptr<bkv_cancel>(cancel));
}

BKV_JNI(void, cancelFree)(JNIEnv*, jclass, jlong cancel) {
  bkv_cancel_free(Ptr<bkv_cancel>(cancel));
}

BKV_JNI(jstring, backup)
(JNIEnv* env, jclass, jlong store, jlong key, jstring path, jobject progress,
 jlong cancel) {
  Utf p(env, path);
  GlobalRef listener(env, progress);
  bkv_backup_options o;
  bkv_backup_options_init(&o);
  if (progress != nullptr) {
    o.progress = bkv_jni::JavaProgress;
    o.progress_ctx = listener.get();
  }
  o.cancel = Ptr<bkv_cancel>(cancel);
  char* id = nullptr;
  char* err = nullptr;
  const bkv_status s = bkv_backup(Ptr<bkv_store>(store), Ptr<bkv_key>(key),
                                  p.get(), &o, &id, &err);
  return Failed(env, s, &err) ? nullptr : Take(env, id);
}

BKV_JNI(void, restore)
(JNIEnv* env, jclass, jlong store, jlong key, jstring id, jstring target,
 jobject progress, jlong cancel) {
  Utf i(env, id), t(env, target);
  GlobalRef listener(env, progress);
  bkv_restore_options o{};
  if (progress != nullptr) {
    o.progress = bkv_jni::JavaProgress;
    o.progress_ctx = listener.get();
  }
  o.cancel = Ptr<bkv_cancel>(cancel);
  char* err = nullptr;
  Failed(env,
         bkv_restore(Ptr<bkv_store>(store), Ptr<bkv_key>(key), i.get(), t.get(),
                     &o, &err),
         &err);
}

BKV_JNI(jstring, list)(JNIEnv* env, jclass, jlong store, jlong key) {
  char* ids = nullptr;
  char* err = nullptr;
  const bkv_status s =
      bkv_list(Ptr<bkv_store>(store), Ptr<bkv_key>(key), &ids, &err);
  return Failed(env, s, &err) ? nullptr : Take(env, ids);
}

BKV_JNI(jlong, vaultOpen)
(JNIEnv* env, jclass, jstring address, jstring key, jstring token,
 jintArray argon2, jint timeout_ms, jint max_retry_wait_ms) {
  Utf a(env, address), k(env, key), t(env, token);
  jint ksf[3] = {0, 0, 0};
  env->GetIntArrayRegion(argon2, 0, 3, ksf);
  bkv_vault_options o;
  bkv_vault_options_init(&o);
  o.address = a.get();
  o.server_public_key = k.get();
  o.account_token = t.get();
  o.argon2_iterations = static_cast<uint32_t>(ksf[0]);
  o.argon2_memory_kib = static_cast<uint32_t>(ksf[1]);
  o.argon2_parallelism = static_cast<uint32_t>(ksf[2]);
  o.timeout_ms = static_cast<uint32_t>(timeout_ms);
  o.max_retry_wait_ms = static_cast<uint32_t>(max_retry_wait_ms);
  bkv_vault* vault = nullptr;
  char* err = nullptr;
  if (Failed(env, bkv_vault_open(&o, &vault, &err), &err)) return 0;
  return Handle(vault);
}

BKV_JNI(void, vaultFree)(JNIEnv*, jclass, jlong vault) {
  bkv_vault_free(Ptr<bkv_vault>(vault));
}

BKV_JNI(void, vaultSetToken)(JNIEnv* env, jclass, jlong vault, jstring token) {
  Utf t(env, token);
  char* err = nullptr;
  Failed(env, bkv_vault_set_token(Ptr<bkv_vault>(vault), t.get(), &err), &err);
}

BKV_JNI(void, vaultRegister)
(JNIEnv* env, jclass, jlong vault, jstring account, jcharArray password,
 jlong key, jlong cancel) {
  Utf a(env, account);
  SecretBuffer pw;
  Utf8FromChars(env, password, pw);
  bkv_vault_error detail;
  char* err = nullptr;
  Failed(env,
         bkv_vault_register(Ptr<bkv_vault>(vault), a.get(), pw.data(),
                            pw.size(), Ptr<bkv_key>(key),
                            Ptr<bkv_cancel>(cancel), &detail, &err),
         &err, &detail);
}

BKV_JNI(jlong, vaultRecover)
(JNIEnv* env, jclass, jlong vault, jstring account, jcharArray password,
 jlong cancel) {
  Utf a(env, account);
  SecretBuffer pw;
  Utf8FromChars(env, password, pw);
  bkv_key* key = nullptr;
  bkv_vault_error detail;
  char* err = nullptr;
  if (Failed(env,
             bkv_vault_recover(Ptr<bkv_vault>(vault), a.get(), pw.data(),
                               pw.size(), &key, Ptr<bkv_cancel>(cancel),
                               &detail, &err),
             &err, &detail)) {
    return 0;
  }
  return Handle(key);
}

BKV_JNI(jlongArray, vaultStatus)
(JNIEnv* env, jclass, jlong vault, jlong cancel) {
  bkv_vault_state state;
  uint32_t remaining = 0, limit = 0;
  bkv_vault_error detail;
  char* err = nullptr;
  if (Failed(env,
             bkv_vault_status(Ptr<bkv_vault>(vault), &state, &remaining, &limit,
                              Ptr<bkv_cancel>(cancel), &detail, &err),
             &err, &detail)) {
    return nullptr;
  }
  const jlong values[3] = {state, remaining, limit};
  jlongArray out = env->NewLongArray(3);
  if (out != nullptr) env->SetLongArrayRegion(out, 0, 3, values);
  return out;
}

BKV_JNI(jint, vaultChangePassword)
(JNIEnv* env, jclass, jlong vault, jstring account, jcharArray old_password,
 jcharArray new_password, jlong cancel) {
  Utf a(env, account);
  SecretBuffer old_pw, new_pw;
  Utf8FromChars(env, old_password, old_pw);
  Utf8FromChars(env, new_password, new_pw);
  uint32_t limit = 0;
  bkv_vault_error detail;
  char* err = nullptr;
  Failed(
      env,
      bkv_vault_change_password(Ptr<bkv_vault>(vault), a.get(), old_pw.data(),
                                old_pw.size(), new_pw.data(), new_pw.size(),
                                &limit, Ptr<bkv_cancel>(cancel), &detail, &err),
      &err, &detail);
  return static_cast<jint>(limit);
}
