// JNI over libbkv's C ABI (bkv/bkv.h) for the dev.bkv Java classes: the
// shared helpers (bkv_jni.h) and JNI_OnLoad. The entry points are in
// bkv_jni_calls.cc, the app-store and progress callbacks in
// bkv_jni_callbacks.cc. Only the C ABI is used: the binding links libbkv.so
// like any app.
#include "bindings/java/jni/bkv_jni.h"

#include <cstring>

namespace bkv_jni {

JavaVM* g_vm = nullptr;
jclass g_exception = nullptr;
jmethodID g_from_native = nullptr;
jclass g_put_stream = nullptr;
jmethodID g_put_stream_init = nullptr;
jclass g_sdk_read_exception = nullptr;

void Wipe(void* p, size_t n) {
  volatile unsigned char* b = static_cast<volatile unsigned char*>(p);
  while (n-- > 0) *b++ = 0;
}

// UTF-16 char[] to UTF-8, through wiped memory only.
void Utf8FromChars(JNIEnv* env, jcharArray chars, SecretBuffer& out) {
  const jsize n = env->GetArrayLength(chars);
  std::vector<jchar> units(static_cast<size_t>(n));
  env->GetCharArrayRegion(chars, 0, n, units.data());
  out.bytes().reserve(static_cast<size_t>(n) * 3 + 1);
  for (jsize i = 0; i < n; ++i) {
    uint32_t c = units[i];
    if (c >= 0xD800 && c < 0xDC00 && i + 1 < n && units[i + 1] >= 0xDC00 &&
        units[i + 1] < 0xE000) {
      c = 0x10000 + ((c - 0xD800) << 10) + (units[++i] - 0xDC00);
    }
    auto& b = out.bytes();
    if (c < 0x80) {
      b.push_back(static_cast<char>(c));
    } else if (c < 0x800) {
      b.push_back(static_cast<char>(0xC0 | (c >> 6)));
      b.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    } else if (c < 0x10000) {
      b.push_back(static_cast<char>(0xE0 | (c >> 12)));
      b.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
      b.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    } else {
      b.push_back(static_cast<char>(0xF0 | (c >> 18)));
      b.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
      b.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
      b.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    }
  }
  Wipe(units.data(), units.size() * sizeof(jchar));
}

void Throw(JNIEnv* env, bkv_status status, char** err,
           const bkv_vault_error* detail) {
  char* text = err != nullptr ? *err : nullptr;
  jstring msg = env->NewStringUTF(text != nullptr ? text : "");
  bkv_error_free(text);
  if (err != nullptr) *err = nullptr;
  const bkv_vault_error d = detail != nullptr ? *detail : bkv_vault_error{};
  auto ex = static_cast<jthrowable>(env->CallStaticObjectMethod(
      g_exception, g_from_native, static_cast<jint>(status), msg,
      static_cast<jint>(d.attempts_remaining),
      static_cast<jlong>(d.retry_after_ms), static_cast<jint>(d.attempt),
      static_cast<jboolean>(d.retry_safe != 0)));
  if (ex != nullptr) env->Throw(ex);
}

bool Failed(JNIEnv* env, bkv_status status, char** err,
            const bkv_vault_error* detail) {
  if (status == BKV_OK) return false;
  Throw(env, status, err, detail);
  return true;
}

ThreadEnv::ThreadEnv() {
  if (g_vm->GetEnv(reinterpret_cast<void**>(&env_), JNI_VERSION_10) ==
      JNI_EDETACHED) {
    attached_ = g_vm->AttachCurrentThreadAsDaemon(
                    reinterpret_cast<void**>(&env_), nullptr) == JNI_OK;
    if (!attached_) env_ = nullptr;
  }
}

ThreadEnv::~ThreadEnv() {
  if (attached_) g_vm->DetachCurrentThread();
}

bkv_status StatusOfPending(JNIEnv* env, char* message, size_t cap) {
  jthrowable ex = env->ExceptionOccurred();
  if (ex == nullptr) return BKV_OK;
  env->ExceptionClear();
  bkv_status status = BKV_INTERNAL;
  jclass io = env->FindClass("java/io/IOException");
  if (env->IsInstanceOf(ex, g_sdk_read_exception)) {
    // The SDK's own failure (e.g. cancelled) surfacing through the app's put.
    ex = static_cast<jthrowable>(env->CallObjectMethod(
        ex, env->GetMethodID(env->GetObjectClass(ex), "getCause",
                             "()Ljava/lang/Throwable;")));
  }
  if (env->IsInstanceOf(ex, g_exception)) {
    jobject st = env->CallObjectMethod(
        ex, env->GetMethodID(g_exception, "status", "()Ldev/bkv/Status;"));
    status = static_cast<bkv_status>(env->GetIntField(
        st, env->GetFieldID(env->GetObjectClass(st), "code", "I")));
  } else if (io != nullptr && env->IsInstanceOf(ex, io)) {
    status = BKV_UNAVAILABLE;
  }
  auto text = static_cast<jstring>(env->CallObjectMethod(
      ex, env->GetMethodID(env->GetObjectClass(ex), "toString",
                           "()Ljava/lang/String;")));
  if (env->ExceptionCheck()) env->ExceptionClear();
  if (text != nullptr && cap > 0) {
    Utf utf(env, text);
    std::strncpy(message, utf.get() ? utf.get() : "", cap - 1);
    message[cap - 1] = '\0';
  }
  return status == BKV_OK ? BKV_INTERNAL : status;
}

}  // namespace bkv_jni

extern "C" JNIEXPORT jint JNI_OnLoad(JavaVM* vm, void*) {
  using namespace bkv_jni;  // NOLINT: this sets the file's globals
  g_vm = vm;
  JNIEnv* env = nullptr;
  if (vm->GetEnv(reinterpret_cast<void**>(&env), JNI_VERSION_10) != JNI_OK) {
    return JNI_ERR;
  }
  auto global = [env](const char* name) {
    jclass c = env->FindClass(name);
    return c == nullptr ? nullptr : static_cast<jclass>(env->NewGlobalRef(c));
  };
  g_exception = global("dev/bkv/BkvException");
  g_put_stream = global("dev/bkv/Store$PutStream");
  g_sdk_read_exception = global("dev/bkv/Store$SdkReadException");
  if (g_exception == nullptr || g_put_stream == nullptr ||
      g_sdk_read_exception == nullptr) {
    return JNI_ERR;
  }
  g_from_native =
      env->GetStaticMethodID(g_exception, "fromNative",
                             "(ILjava/lang/String;IJIZ)Ldev/bkv/BkvException;");
  g_put_stream_init = env->GetMethodID(g_put_stream, "<init>", "(J)V");
  if (g_from_native == nullptr || g_put_stream_init == nullptr) return JNI_ERR;
  return JNI_VERSION_10;
}
