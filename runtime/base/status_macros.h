// Status propagation helpers for absl::Status / absl::StatusOr.
#ifndef TIERSERVE_RUNTIME_BASE_STATUS_MACROS_H_
#define TIERSERVE_RUNTIME_BASE_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define TS_CONCAT_INNER_(a, b) a##b
#define TS_CONCAT_(a, b) TS_CONCAT_INNER_(a, b)

// Returns from the current function if `expr` (an absl::Status) is not OK.
#define TS_RETURN_IF_ERROR(expr)                  \
  do {                                            \
    ::absl::Status ts_status_ = (expr);           \
    if (!ts_status_.ok()) return ts_status_;      \
  } while (0)

// `lhs = value of expr` (an absl::StatusOr<T>), or returns its error.
#define TS_ASSIGN_OR_RETURN(lhs, expr) \
  TS_ASSIGN_OR_RETURN_IMPL_(TS_CONCAT_(ts_statusor_, __LINE__), lhs, expr)
#define TS_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                              \
  if (!tmp.ok()) return std::move(tmp).status();  \
  lhs = std::move(tmp).value()

#endif  // TIERSERVE_RUNTIME_BASE_STATUS_MACROS_H_
