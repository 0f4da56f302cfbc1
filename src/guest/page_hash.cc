#include "guest/page_hash.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace haywire::guest::detail {

std::uint64_t hash_sse2(const void* data, std::size_t len) { return XXH3_64bits(data, len); }

HashFn fast_hash() {
#if defined(__x86_64__)
  static const HashFn chosen = __builtin_cpu_supports("avx2") ? &hash_avx2 : &hash_sse2;
  return chosen;
#else
  return &hash_sse2;
#endif
}

}  // namespace haywire::guest::detail
