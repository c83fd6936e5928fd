/* bkv_store_callbacks over a local directory, written the way an app writes
 * its cloud store's callbacks (temporary name, then an atomic rename). The
 * tests use it to run the store, tamper and interruption suites through the
 * C callback path. */
#ifndef BKV_TESTS_CLIENT_DIR_STORE_CALLBACKS_H_
#define BKV_TESTS_CLIENT_DIR_STORE_CALLBACKS_H_

#include "bkv/bkv.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Callbacks whose ctx is a malloc'ed directory path (destroy frees it). */
bkv_store_callbacks bkv_test_dir_callbacks(void);
/* The ctx for `dir` (created if missing); NULL on failure. */
void* bkv_test_dir_ctx(const char* dir);

#ifdef __cplusplus
}
#endif

#endif /* BKV_TESTS_CLIENT_DIR_STORE_CALLBACKS_H_ */
