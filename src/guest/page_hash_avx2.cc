// Compiled with -mavx2 (see CMakeLists.txt) so that xxh3 inlines its AVX2 kernel here. Only
// reached through fast_hash() when the CPU supports AVX2. The compiler emits vzeroupper on
// return, so SSE code after it does not pay the AVX/SSE transition penalty.
#include "guest/page_hash.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace haywire::guest::detail {

std::uint64_t hash_avx2(const void* data, std::size_t len) { return XXH3_64bits(data, len); }

}  // namespace haywire::guest::detail
