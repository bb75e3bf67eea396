// Byte counts as people read them.
#ifndef TIERSERVE_RUNTIME_BASE_BYTE_SIZE_H_
#define TIERSERVE_RUNTIME_BASE_BYTE_SIZE_H_

#include <cstdint>
#include <string>

namespace tierserve {

// "0 B", "512 B", "12.0 MiB", "1.0 GiB": binary units, one decimal.
std::string FormatBytes(int64_t bytes);

}  // namespace tierserve

#endif  // TIERSERVE_RUNTIME_BASE_BYTE_SIZE_H_
