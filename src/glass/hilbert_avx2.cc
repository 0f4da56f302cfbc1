// Compiled with -mavx2 (map.cmake); reached only through the run-time check in hilbert.cc.
#include "glass/hilbert_core.h"

namespace haywire::glass {

void hilbert_d2xy_avx2(unsigned order, const std::uint64_t* d, Cell* out, std::size_t n) {
  d2xy_vectors<U32x8, U64x8>(order, d, out, n);
}

}  // namespace haywire::glass
