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
//
// Transient device faults (budget review):
// bkv_test_fail_token_creates(n) makes the next n C_CreateObject calls of a
// token object fail with CKR_DEVICE_ERROR without creating it: a transient
// device fault (budget review, finding 6's transient path).
// bkv_test_fail_value_reads(skip, n): of the next reads of a CKA_VALUE (the
// call that fetches the bytes, not the size query), `skip` pass and the
// following `n` fail with CKR_DEVICE_ERROR.
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
static int failing_creates;
static CK_C_CreateObject real_create;
static int passing_reads, failing_reads;
static CK_C_GetAttributeValue real_get;

static CK_RV FailingGet(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE object,
                        CK_ATTRIBUTE_PTR attrs, CK_ULONG count) {
  if (count == 1 && attrs[0].type == CKA_VALUE && attrs[0].pValue != NULL &&
      __atomic_load_n(&failing_reads, __ATOMIC_SEQ_CST) > 0) {
    if (__atomic_load_n(&passing_reads, __ATOMIC_SEQ_CST) > 0) {
      __atomic_sub_fetch(&passing_reads, 1, __ATOMIC_SEQ_CST);
    } else {
      __atomic_sub_fetch(&failing_reads, 1, __ATOMIC_SEQ_CST);
      return CKR_DEVICE_ERROR;
    }
  }
  return real_get(session, object, attrs, count);
}

__attribute__((visibility("default"))) void bkv_test_fail_value_reads(int skip,
                                                                      int n) {
  __atomic_store_n(&passing_reads, skip, __ATOMIC_SEQ_CST);
  __atomic_store_n(&failing_reads, n, __ATOMIC_SEQ_CST);
}

static int IsTokenObject(CK_ATTRIBUTE_PTR attrs, CK_ULONG count) {
  for (CK_ULONG i = 0; i < count; ++i) {
    if (attrs[i].type == CKA_TOKEN && attrs[i].pValue != NULL &&
        attrs[i].ulValueLen == sizeof(CK_BBOOL)) {
      return *(CK_BBOOL*)attrs[i].pValue == CK_TRUE;
    }
  }
  return 0;
}

static CK_RV FailingCreate(CK_SESSION_HANDLE session, CK_ATTRIBUTE_PTR attrs,
                           CK_ULONG count, CK_OBJECT_HANDLE_PTR object) {
  if (IsTokenObject(attrs, count)) {
    int left = __atomic_load_n(&failing_creates, __ATOMIC_SEQ_CST);
    while (left > 0) {
      if (__atomic_compare_exchange_n(&failing_creates, &left, left - 1, 0,
                                      __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
        return CKR_DEVICE_ERROR;
      }
    }
  }
  return real_create(session, attrs, count, object);
}

__attribute__((visibility("default"))) void bkv_test_fail_token_creates(int n) {
  __atomic_store_n(&failing_creates, n, __ATOMIC_SEQ_CST);
}

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
  real_create = inner->C_CreateObject;
  shim.C_CreateObject = FailingCreate;
  real_get = inner->C_GetAttributeValue;
  shim.C_GetAttributeValue = FailingGet;
  *list = &shim;
  return CKR_OK;
}
