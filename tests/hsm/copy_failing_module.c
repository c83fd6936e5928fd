// A PKCS#11 module for tests: the real SoftHSMv2 module named by
// $BKV_TEST_REAL_MODULE, except that C_CopyObject fails (CKR_FUNCTION_FAILED)
// without touching the token, as on a token that cannot copy objects; with
// $BKV_TEST_REFUSE_SET set, C_SetAttributeValue fails too
// (CKR_ATTRIBUTE_READ_ONLY), as on a token that changes no attribute of an
// existing object. Every other call is SoftHSM's own. bkv_test_copy_calls()
// and bkv_test_set_calls() count the refused calls, so a test can tell the
// fallback it covers actually ran.
//
// Faults of our own writes (docs/rollback.md "Slots", review of `slots`):
// bkv_test_vanish_next_set() (or $BKV_TEST_VANISH_AT_SET=N: the Nth) makes
// the next C_SetAttributeValue fail as SoftHSM's failed store() does (the
// object is gone for this process: destroyed, CKR_DEVICE_ERROR);
// bkv_test_fail_next_destroy() refuses the next C_DestroyObject;
// $BKV_TEST_CRASH_AT_SET=N with $BKV_TEST_CRASH_TOKEN_DIR crashes the process
// inside the Nth C_SetAttributeValue as SoftHSM's store() would leave it: the
// object file it rewrote (found by its changed bytes) truncated, then
// _exit(75).
#define _GNU_SOURCE
#include <dlfcn.h>
#include <ftw.h>
#include <p11-kit/pkcs11.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static CK_FUNCTION_LIST shim;
static CK_FUNCTION_LIST_PTR real_fns;
static int copy_calls;
static int set_calls;
static int all_sets;
static int vanish_next_set;
static int fail_next_destroy;

static CK_RV RefuseCopy(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE object,
                        CK_ATTRIBUTE_PTR changes, CK_ULONG count,
                        CK_OBJECT_HANDLE_PTR copy) {
  (void)session, (void)object, (void)changes, (void)count, (void)copy;
  __atomic_add_fetch(&copy_calls, 1, __ATOMIC_SEQ_CST);
  return CKR_FUNCTION_FAILED;
}

static CK_RV RefuseSet(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE object,
                       CK_ATTRIBUTE_PTR attributes, CK_ULONG count) {
  (void)session, (void)object, (void)attributes, (void)count;
  __atomic_add_fetch(&set_calls, 1, __ATOMIC_SEQ_CST);
  return CKR_ATTRIBUTE_READ_ONLY;
}

__attribute__((visibility("default"))) void bkv_test_vanish_next_set(void) {
  __atomic_store_n(&vanish_next_set, 1, __ATOMIC_SEQ_CST);
}

__attribute__((visibility("default"))) void bkv_test_fail_next_destroy(void) {
  __atomic_store_n(&fail_next_destroy, 1, __ATOMIC_SEQ_CST);
}

// The token's object files and their bytes: the one a set rewrote is the
// one whose bytes changed (SoftHSM encrypts each store afresh).
enum { kMaxFiles = 64, kMaxBytes = 1 << 18 };
static struct {
  char path[512];
  char* bytes;
  ssize_t size;
} files[kMaxFiles];
static int file_count;

static ssize_t ReadFile(const char* path, char* into) {
  FILE* f = fopen(path, "rb");
  if (f == NULL) return -1;
  const size_t n = fread(into, 1, kMaxBytes, f);
  fclose(f);
  return (ssize_t)n;
}

static int Remember(const char* path, const struct stat* st, int type,
                    struct FTW* ftw) {
  (void)st, (void)ftw;
  const size_t n = strlen(path);
  if (type != FTW_F || n < 7 || strcmp(path + n - 7, ".object") != 0 ||
      file_count == kMaxFiles || n >= sizeof files[0].path) {
    return 0;
  }
  strcpy(files[file_count].path, path);
  files[file_count].bytes = malloc(kMaxBytes);
  files[file_count].size = ReadFile(path, files[file_count].bytes);
  ++file_count;
  return 0;
}

// The object file the set rewrote, cut as a crash between store()'s
// truncate and its write leaves it; then the process dies.
static void CrashInsideTheWrite(void) {
  static char now[kMaxBytes];
  for (int i = 0; i < file_count; ++i) {
    const ssize_t n = ReadFile(files[i].path, now);
    if (n != files[i].size || memcmp(now, files[i].bytes, (size_t)n) != 0) {
      (void)truncate(files[i].path, 0);
    }
  }
  _exit(75);
}

// $NAME=N (N > 0) is the Nth set of this process.
static int IsSet(const char* name, int n) {
  const char* at = getenv(name);
  return at != NULL && atoi(at) > 0 && atoi(at) == n;
}

static CK_RV Set(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE object,
                 CK_ATTRIBUTE_PTR attributes, CK_ULONG count) {
  const int n = __atomic_add_fetch(&all_sets, 1, __ATOMIC_SEQ_CST);
  if (__atomic_exchange_n(&vanish_next_set, 0, __ATOMIC_SEQ_CST) ||
      IsSet("BKV_TEST_VANISH_AT_SET", n)) {
    (void)real_fns->C_DestroyObject(session, object);
    return CKR_DEVICE_ERROR;
  }
  const char* dir = getenv("BKV_TEST_CRASH_TOKEN_DIR");
  const int crash = dir != NULL && IsSet("BKV_TEST_CRASH_AT_SET", n);
  if (crash) nftw(dir, Remember, 16, FTW_PHYS);
  const CK_RV rv =
      real_fns->C_SetAttributeValue(session, object, attributes, count);
  if (crash) CrashInsideTheWrite();
  return rv;
}

static CK_RV Destroy(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE object) {
  if (__atomic_exchange_n(&fail_next_destroy, 0, __ATOMIC_SEQ_CST)) {
    return CKR_DEVICE_ERROR;
  }
  return real_fns->C_DestroyObject(session, object);
}

__attribute__((visibility("default"))) int bkv_test_set_calls(void) {
  return __atomic_load_n(&set_calls, __ATOMIC_SEQ_CST);
}

__attribute__((visibility("default"))) int bkv_test_copy_calls(void) {
  return __atomic_load_n(&copy_calls, __ATOMIC_SEQ_CST);
}

__attribute__((visibility("default"))) CK_RV C_GetFunctionList(
    CK_FUNCTION_LIST_PTR_PTR list) {
  const char* path = getenv("BKV_TEST_REAL_MODULE");
  void* dl = path != NULL ? dlopen(path, RTLD_NOW | RTLD_LOCAL) : NULL;
  CK_C_GetFunctionList real =
      dl != NULL ? (CK_C_GetFunctionList)dlsym(dl, "C_GetFunctionList") : NULL;
  CK_FUNCTION_LIST_PTR inner = NULL;
  if (list == NULL || real == NULL || real(&inner) != CKR_OK || inner == NULL) {
    return CKR_GENERAL_ERROR;
  }
  real_fns = inner;
  shim = *inner;
  shim.C_CopyObject = RefuseCopy;
  shim.C_SetAttributeValue =
      getenv("BKV_TEST_REFUSE_SET") != NULL ? RefuseSet : Set;
  shim.C_DestroyObject = Destroy;
  *list = &shim;
  return CKR_OK;
}
