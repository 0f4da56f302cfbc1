#include "haywire/arch/translation_cache.h"

#include <algorithm>
#include <bit>

namespace haywire::arch {

TranslationCache::TranslationCache(std::size_t capacity) {
  const std::size_t sets = std::bit_ceil(std::max<std::size_t>(capacity, 4)) / 2;
  sets_.resize(sets);
  shift_ = 64u - static_cast<unsigned>(std::countr_zero(sets));
}

void TranslationCache::insert(Cr3 cr3, const Translation& t) {
  if (!t.mapped() || t.page_size < kPageSize) return;
  const std::uint64_t vpn = t.va.value() >> kPageShift;
  const std::uint64_t tag = tag_of(cr3);
  Set& set = sets_[set_of(tag, vpn)];
  const Entry fresh{.tag = tag,
                    .vpn = vpn,
                    .page = t.pa.value() & ~(kPageSize - 1),
                    .generation = generation_,
                    .size_shift = static_cast<std::uint8_t>(std::countr_zero(t.page_size)),
                    .flags = t.flags.bits()};
  // Refresh in place if the page is already there; otherwise the older way makes room.
  for (Entry& e : set.ways) {
    if (e.tag == tag && e.vpn == vpn) {
      e = fresh;
      return;
    }
  }
  set.ways[1] = set.ways[0];
  set.ways[0] = fresh;
}

void TranslationCache::invalidate_all() {
  // A new generation makes every entry stale at once; on the (theoretical) wrap, clear for
  // real so that a 4-billion-generations-old entry cannot come back.
  if (++generation_ == 0) {
    std::fill(sets_.begin(), sets_.end(), Set{});
    generation_ = 1;
  }
}

void TranslationCache::invalidate(Cr3 cr3) {
  const std::uint64_t tag = tag_of(cr3);
  for (Set& set : sets_)
    for (Entry& e : set.ways)
      if (e.tag == tag) e.tag = 0;
}

}  // namespace haywire::arch
