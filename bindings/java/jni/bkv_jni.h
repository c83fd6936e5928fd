#ifndef BKV_BINDINGS_JAVA_JNI_BKV_JNI_H_
#define BKV_BINDINGS_JAVA_JNI_BKV_JNI_H_

// What the JNI files share: class and method ids cached by JNI_OnLoad, the
// wiped buffers secrets pass through, the one status -> exception mapping
// and thread attachment for callbacks on SDK threads.
//
// Secrets arrive as char[] and are copied with Get*ArrayRegion into buffers
// wiped here (never Get*ArrayElements, whose copies the JVM frees unwiped).

#include <jni.h>

#include <cstdint>
#include <vector>

#include "bkv/bkv.h"

namespace bkv_jni {

extern JavaVM* g_vm;
extern jclass g_exception;       // dev.bkv.BkvException
extern jmethodID g_from_native;  // BkvException.fromNative
extern jclass g_put_stream;      // dev.bkv.Store$PutStream
extern jmethodID g_put_stream_init;
extern jclass g_sdk_read_exception;  // dev.bkv.Store$SdkReadException

void Wipe(void* p, size_t n);

// A byte buffer wiped when it goes away.
class SecretBuffer {
 public:
  SecretBuffer() = default;
  SecretBuffer(const SecretBuffer&) = delete;
  SecretBuffer& operator=(const SecretBuffer&) = delete;
  ~SecretBuffer() { Wipe(bytes_.data(), bytes_.capacity()); }
  std::vector<char>& bytes() { return bytes_; }
  const char* data() const { return bytes_.data(); }
  size_t size() const { return bytes_.size(); }

 private:
  std::vector<char> bytes_;
};

// UTF-16 char[] to UTF-8, through wiped memory only.
void Utf8FromChars(JNIEnv* env, jcharArray chars, SecretBuffer& out);

// A Java String as UTF-8 (not for secrets: Java Strings can't be wiped).
class Utf {
 public:
  Utf(JNIEnv* env, jstring s) : env_(env), s_(s) {
    if (s != nullptr) chars_ = env->GetStringUTFChars(s, nullptr);
  }
  ~Utf() {
    if (chars_ != nullptr) env_->ReleaseStringUTFChars(s_, chars_);
  }
  Utf(const Utf&) = delete;
  Utf& operator=(const Utf&) = delete;
  const char* get() const { return chars_; }

 private:
  JNIEnv* env_;
  jstring s_;
  const char* chars_ = nullptr;
};

// Throws the BkvException for `status` (the mapping to subclasses is in
// BkvException.fromNative) and frees *err (err may be NULL).
void Throw(JNIEnv* env, bkv_status status, char** err,
           const bkv_vault_error* detail = nullptr);
// True (with the exception pending) unless status is BKV_OK. `err` is a
// pointer so that `Failed(env, bkv_call(..., &err), &err)` reads the message
// after the call whatever the argument evaluation order.
bool Failed(JNIEnv* env, bkv_status status, char** err,
            const bkv_vault_error* detail = nullptr);

template <typename T>
inline T* Ptr(jlong p) {
  return reinterpret_cast<T*>(static_cast<intptr_t>(p));
}
inline jlong Handle(const void* p) {
  return static_cast<jlong>(reinterpret_cast<intptr_t>(p));
}

// The JNIEnv of an SDK thread, attached to the JVM for one callback.
class ThreadEnv {
 public:
  ThreadEnv();
  ~ThreadEnv();
  ThreadEnv(const ThreadEnv&) = delete;
  ThreadEnv& operator=(const ThreadEnv&) = delete;
  JNIEnv* get() const { return env_; }

 private:
  JNIEnv* env_ = nullptr;
  bool attached_ = false;
};

// A global reference for the length of one call: callbacks use it from SDK
// threads, where the caller's local references are invalid.
class GlobalRef {
 public:
  GlobalRef(JNIEnv* env, jobject obj)
      : env_(env), ref_(obj != nullptr ? env->NewGlobalRef(obj) : nullptr) {}
  ~GlobalRef() {
    if (ref_ != nullptr) env_->DeleteGlobalRef(ref_);
  }
  GlobalRef(const GlobalRef&) = delete;
  GlobalRef& operator=(const GlobalRef&) = delete;
  jobject get() const { return ref_; }

 private:
  JNIEnv* env_;
  jobject ref_;
};

// A bkv_progress_fn calling the ProgressListener `ctx` (a global ref).
void JavaProgress(uint64_t done, uint64_t total, void* ctx);

// What a Java exception thrown by an app callback means as a bkv_status
// (BkvException: its status; IOException: UNAVAILABLE; else INTERNAL); its
// message goes to `message`. Clears the exception.
bkv_status StatusOfPending(JNIEnv* env, char* message, size_t cap);

}  // namespace bkv_jni

#endif  // BKV_BINDINGS_JAVA_JNI_BKV_JNI_H_
