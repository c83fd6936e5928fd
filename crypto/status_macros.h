#ifndef BKV_CRYPTO_STATUS_MACROS_H_
#define BKV_CRYPTO_STATUS_MACROS_H_

// The one error convention of bkv: fallible functions return absl::Status or
// absl::StatusOr<T>; these macros propagate failures without exceptions.

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define BKV_STATUS_CONCAT_INNER_(a, b) a##b
#define BKV_STATUS_CONCAT_(a, b) BKV_STATUS_CONCAT_INNER_(a, b)

// Returns the status from the enclosing function if `expr` is not OK.
#define BKV_RETURN_IF_ERROR(expr)              \
  do {                                         \
    ::absl::Status bkv_status_ = (expr);       \
    if (!bkv_status_.ok()) return bkv_status_; \
  } while (false)

// BKV_ASSIGN_OR_RETURN(auto x, F()); declares or assigns `lhs` from an OK
// StatusOr, or returns its status from the enclosing function.
#define BKV_ASSIGN_OR_RETURN(lhs, rexpr)                                       \
  BKV_ASSIGN_OR_RETURN_IMPL_(BKV_STATUS_CONCAT_(bkv_statusor_, __LINE__), lhs, \
                             rexpr)

#define BKV_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr)   \
  auto statusor = (rexpr);                                 \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = std::move(statusor).value()

#endif  // BKV_CRYPTO_STATUS_MACROS_H_
