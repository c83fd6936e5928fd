// A PKCS#11 module for tests: the real SoftHSMv2 module named by
// $BKV_TEST_REAL_MODULE, except that C_CopyObject fails (CKR_FUNCTION_FAILED)
// without touching the token, as on a token that cannot copy objects. Every
// other call is SoftHSM's own. bkv_test_copy_calls() counts the refused
// copies, so a test can tell the fallback it covers actually ran.
// bkv_test_fail_token_creates(n) makes the next n C_CreateObject calls of a
// token object fail with CKR_DEVICE_ERROR without creating it: a transient
// device fault (budget review, finding 6's transient path).
// bkv_test_fail_value_reads(skip, n): of the next reads of a CKA_VALUE (the
// call that fetches the bytes, not the size query), `skip` pass and the
// following `n` fail with CKR_DEVICE_ERROR.
#include <dlfcn.h>
#include <p11-kit/pkcs11.h>
#include <stdlib.h>

static CK_FUNCTION_LIST shim;
static int copy_calls;
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

__attribute__((visibility("default"))) void bkv_test_fail_token_creates(
    int n) {
  __atomic_store_n(&failing_creates, n, __ATOMIC_SEQ_CST);
}

static CK_RV RefuseCopy(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE object,
                        CK_ATTRIBUTE_PTR changes, CK_ULONG count,
                        CK_OBJECT_HANDLE_PTR copy) {
  (void)session, (void)object, (void)changes, (void)count, (void)copy;
  __atomic_add_fetch(&copy_calls, 1, __ATOMIC_SEQ_CST);
  return CKR_FUNCTION_FAILED;
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
  shim = *inner;
  shim.C_CopyObject = RefuseCopy;
  real_create = inner->C_CreateObject;
  shim.C_CreateObject = FailingCreate;
  real_get = inner->C_GetAttributeValue;
  shim.C_GetAttributeValue = FailingGet;
  *list = &shim;
  return CKR_OK;
}
