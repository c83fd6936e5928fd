/* A test-only LD_PRELOAD shim (never linked into bkv): EVP_MAC_init with no
 * key succeeds without resetting the context, as OpenSSL 3.0.0-3.0.2's
 * HMAC did (openssl/openssl#17811), so a test on a fixed libcrypto shows
 * what bkv computes on such a device's. Every keyed init is the real one. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <openssl/evp.h>
#include <stddef.h>

int EVP_MAC_init(EVP_MAC_CTX* ctx, const unsigned char* key, size_t keylen,
                 const OSSL_PARAM params[]) {
  int (*real)(EVP_MAC_CTX*, const unsigned char*, size_t, const OSSL_PARAM*) =
      (int (*)(EVP_MAC_CTX*, const unsigned char*, size_t,
               const OSSL_PARAM*))dlsym(RTLD_NEXT, "EVP_MAC_init");
  if (key == NULL && params == NULL) return 1;
  return real(ctx, key, keylen, params);
}
