// Callbacks from SDK threads into Java: progress listeners, and the
// bkv_store_callbacks of a Store whose operations are a Java StoreCallbacks.
#include <cstring>
#include <string>

#include "bindings/java/jni/bkv_jni.h"

namespace bkv_jni {

void JavaProgress(uint64_t done, uint64_t total, void* ctx) {
  ThreadEnv te;
  JNIEnv* env = te.get();
  if (env == nullptr) return;
  jobject listener = static_cast<jobject>(ctx);
  jmethodID m =
      env->GetMethodID(env->GetObjectClass(listener), "onProgress", "(JJ)V");
  env->CallVoidMethod(listener, m, static_cast<jlong>(done),
                      static_cast<jlong>(total));
  if (env->ExceptionCheck()) env->ExceptionClear();  // listeners must not throw
}

// What PutStream's handle points to: the SDK's reader for one put.
struct PutReader {
  bkv_read_fn read;
  void* reader;
};

namespace {

// The ctx of a Java-backed store: the StoreCallbacks, as a global ref for
// the store's lifetime (released by destroy).
struct JavaStore {
  jobject callbacks;
};

// One callback's JNI frame: the attached env, the StoreCallbacks and a local
// frame so references made here don't pile up on a long-lived SDK thread.
class Call {
 public:
  explicit Call(void* ctx) : cb_(static_cast<JavaStore*>(ctx)->callbacks) {
    if (te_.get() != nullptr) te_.get()->PushLocalFrame(16);
  }
  ~Call() {
    if (te_.get() != nullptr) te_.get()->PopLocalFrame(nullptr);
  }
  JNIEnv* env() const { return te_.get(); }
  jmethodID Method(const char* name, const char* sig) const {
    return env()->GetMethodID(env()->GetObjectClass(cb_), name, sig);
  }
  jobject cb() const { return cb_; }
  // The status of what the Java method just did.
  bkv_status Result(bkv_store_error* e) const {
    return StatusOfPending(env(), e->message, sizeof(e->message));
  }

 private:
  ThreadEnv te_;
  jobject cb_;
};

bkv_status Put(void* ctx, const char* name, bkv_read_fn read, void* reader,
               bkv_store_error* e) {
  Call c(ctx);
  if (c.env() == nullptr) return BKV_INTERNAL;
  PutReader r{read, reader};
  jobject stream =
      c.env()->NewObject(g_put_stream, g_put_stream_init, Handle(&r));
  c.env()->CallVoidMethod(
      c.cb(), c.Method("put", "(Ljava/lang/String;Ljava/io/InputStream;)V"),
      c.env()->NewStringUTF(name), stream);
  return c.Result(e);
}

bkv_status Get(void* ctx, const char* name, uint64_t offset, uint8_t* buf,
               size_t cap, size_t* out_len, bkv_store_error* e) {
  Call c(ctx);
  if (c.env() == nullptr) return BKV_INTERNAL;
  jbyteArray jbuf = c.env()->NewByteArray(static_cast<jsize>(cap));
  if (jbuf == nullptr) return c.Result(e);
  const jint n = c.env()->CallIntMethod(
      c.cb(), c.Method("get", "(Ljava/lang/String;J[B)I"),
      c.env()->NewStringUTF(name), static_cast<jlong>(offset), jbuf);
  if (bkv_status s = c.Result(e); s != BKV_OK) return s;
  if (n < 0 || static_cast<size_t>(n) > cap) return BKV_INTERNAL;
  c.env()->GetByteArrayRegion(jbuf, 0, n, reinterpret_cast<jbyte*>(buf));
  *out_len = static_cast<size_t>(n);
  return BKV_OK;
}

bkv_status List(void* ctx, bkv_list_fn emit, void* lister, bkv_store_error* e) {
  Call c(ctx);
  JNIEnv* env = c.env();
  if (env == nullptr) return BKV_INTERNAL;
  jobject list =
      env->CallObjectMethod(c.cb(), c.Method("list", "()Ljava/util/List;"));
  if (bkv_status s = c.Result(e); s != BKV_OK) return s;
  if (list == nullptr) return BKV_INTERNAL;
  jclass list_class = env->GetObjectClass(list);
  const jint n =
      env->CallIntMethod(list, env->GetMethodID(list_class, "size", "()I"));
  jmethodID get = env->GetMethodID(list_class, "get", "(I)Ljava/lang/Object;");
  for (jint i = 0; i < n; ++i) {
    env->PushLocalFrame(8);
    jobject item = env->CallObjectMethod(list, get, i);
    jclass ic = env->GetObjectClass(item);
    auto jname = static_cast<jstring>(env->CallObjectMethod(
        item, env->GetMethodID(ic, "name", "()Ljava/lang/String;")));
    const jlong size =
        env->CallLongMethod(item, env->GetMethodID(ic, "size", "()J"));
    if (jname != nullptr)
      emit(lister, Utf(env, jname).get(), static_cast<uint64_t>(size));
    env->PopLocalFrame(nullptr);
  }
  return c.Result(e);
}

bkv_status Remove(void* ctx, const char* name, bkv_store_error* e) {
  Call c(ctx);
  if (c.env() == nullptr) return BKV_INTERNAL;
  c.env()->CallVoidMethod(c.cb(), c.Method("remove", "(Ljava/lang/String;)V"),
                          c.env()->NewStringUTF(name));
  return c.Result(e);
}

bkv_status Stat(void* ctx, const char* name, uint64_t* out_size,
                bkv_store_error* e) {
  Call c(ctx);
  if (c.env() == nullptr) return BKV_INTERNAL;
  const jlong size =
      c.env()->CallLongMethod(c.cb(), c.Method("size", "(Ljava/lang/String;)J"),
                              c.env()->NewStringUTF(name));
  if (bkv_status s = c.Result(e); s != BKV_OK) return s;
  *out_size = static_cast<uint64_t>(size);
  return BKV_OK;
}

void Destroy(void* ctx) {
  auto* store = static_cast<JavaStore*>(ctx);
  ThreadEnv te;
  if (te.get() != nullptr) te.get()->DeleteGlobalRef(store->callbacks);
  delete store;
}

}  // namespace
}  // namespace bkv_jni

using bkv_jni::Failed;
using bkv_jni::Handle;
using bkv_jni::Ptr;
using bkv_jni::Utf;

extern "C" JNIEXPORT jlong JNICALL Java_dev_bkv_Native_storeCallbacks(
    JNIEnv* env, jclass, jstring name, jobject callbacks) {
  namespace j = bkv_jni;
  const bkv_store_callbacks cb = {j::Put,    j::Get,  j::List,
                                  j::Remove, j::Stat, j::Destroy};
  auto* ctx = new j::JavaStore{env->NewGlobalRef(callbacks)};
  Utf n(env, name);
  bkv_store* store = nullptr;
  char* err = nullptr;
  const bkv_status s = bkv_store_new_callbacks(&cb, ctx, n.get(), &store, &err);
  if (s != BKV_OK) j::Destroy(ctx);
  if (Failed(env, s, &err)) return 0;
  return Handle(store);
}

// PutStream.read: pulls the SDK's bytes for the put in progress.
extern "C" JNIEXPORT jint JNICALL Java_dev_bkv_Native_readerRead(
    JNIEnv* env, jclass, jlong reader, jbyteArray buf, jint off, jint len) {
  auto* r = Ptr<bkv_jni::PutReader>(reader);
  std::string chunk(static_cast<size_t>(len), '\0');
  size_t n = 0;
  const bkv_status s = r->read(
      r->reader, reinterpret_cast<uint8_t*>(chunk.data()), chunk.size(), &n);
  if (Failed(env, s, nullptr)) return -1;
  env->SetByteArrayRegion(buf, off, static_cast<jsize>(n),
                          reinterpret_cast<const jbyte*>(chunk.data()));
  return static_cast<jint>(n);
}
