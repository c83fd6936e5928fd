// A PKCS#11 module for tests: the real SoftHSMv2 module named by
// $BKV_TEST_REAL_MODULE, except that C_CopyObject fails (CKR_FUNCTION_FAILED)
// without touching the token, as on a token that cannot copy objects; with
// $BKV_TEST_REFUSE_SET set, C_SetAttributeValue fails too
// (CKR_ATTRIBUTE_READ_ONLY), as on a token that changes no attribute of an
// existing object. Every other call is SoftHSM's own. bkv_test_copy_calls()
// and bkv_test_set_calls() count the refused calls, so a test can tell the
// fallback it covers actually ran.
#include <dlfcn.h>
#include <p11-kit/pkcs11.h>
#include <stdlib.h>

static CK_FUNCTION_LIST shim;
static int copy_calls;
static int set_calls;

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
  shim = *inner;
  shim.C_CopyObject = RefuseCopy;
  if (getenv("BKV_TEST_REFUSE_SET") != NULL) {
    shim.C_SetAttributeValue = RefuseSet;
  }
  *list = &shim;
  return CKR_OK;
}
