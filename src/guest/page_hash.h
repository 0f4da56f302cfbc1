// xxh3-64 of a page, with the fastest vector unit this CPU has. The value is the same on
// every path (xxh3 is defined independently of the implementation).
#pragma once

#include <cstddef>
#include <cstdint>

namespace haywire::guest::detail {

using HashFn = std::uint64_t (*)(const void* data, std::size_t len);

// Chosen once per process: AVX2 where the CPU has it, else SSE2 (baseline x86-64).
HashFn fast_hash();

std::uint64_t hash_sse2(const void* data, std::size_t len);
std::uint64_t hash_avx2(const void* data, std::size_t len);  // only call if the CPU has AVX2

}  // namespace haywire::guest::detail
