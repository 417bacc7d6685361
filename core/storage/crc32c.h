// CRC-32C (Castagnoli), table driven. Thread-safe (the table is built once, on first use).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace moke::storage {

// Extends `crc` (the value returned for the preceding bytes; 0 to start) with `data`.
uint32_t Crc32cExtend(uint32_t crc, const void* data, size_t n);
inline uint32_t Crc32c(std::string_view data) { return Crc32cExtend(0, data.data(), data.size()); }

}  // namespace moke::storage
