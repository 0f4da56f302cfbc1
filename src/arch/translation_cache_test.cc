#include "haywire/arch/translation_cache.h"

#include <gtest/gtest.h>

namespace haywire::arch {
namespace {

Translation mapped(std::uint64_t va, std::uint64_t pa, std::uint64_t page_size, std::uint8_t flags = PageFlags::kPresent) {
  Translation t;
  t.va = VirtAddr(va);
  t.pa = PhysAddr(pa);
  t.page_size = page_size;
  t.flags = PageFlags(flags);
  return t;
}

TEST(TranslationCache, HitsGiveThePageOffsetOfTheAskedAddress) {
  TranslationCache cache(64);
  cache.insert(Cr3(0x1000), mapped(0xffff'ffff'8100'0123ull, 0x20'0123, kPage4K, PageFlags::kPresent | PageFlags::kGlobal));
  Translation t;
  ASSERT_TRUE(cache.lookup(Cr3(0x1000), VirtAddr(0xffff'ffff'8100'0ff8ull), t));
  EXPECT_EQ(t.pa.value(), 0x20'0ff8u);
  EXPECT_EQ(t.va.value(), 0xffff'ffff'8100'0ff8ull);
  EXPECT_EQ(t.page_size, kPage4K);
  EXPECT_TRUE(t.flags.has(PageFlags::kGlobal));
  EXPECT_TRUE(t.mapped());
  EXPECT_FALSE(cache.lookup(Cr3(0x1000), VirtAddr(0xffff'ffff'8100'1000ull), t));  // next page
  EXPECT_FALSE(cache.lookup(Cr3(0x2000), VirtAddr(0xffff'ffff'8100'0000ull), t));  // other CR3
  EXPECT_EQ(cache.hits(), 1u);
  EXPECT_EQ(cache.misses(), 2u);
}

TEST(TranslationCache, LargePagesAreCachedPerFourKilobytePieceWithTheirSize) {
  TranslationCache cache(64);
  // The walk of 0x...345678 in a 2 MiB page at PA 0x4000000.
  cache.insert(Cr3(0x1000), mapped(0xffff'8880'0034'5678ull, 0x400'0000 + 0x14'5678, kPage2M));
  Translation t;
  ASSERT_TRUE(cache.lookup(Cr3(0x1000), VirtAddr(0xffff'8880'0034'5000ull), t));
  EXPECT_EQ(t.pa.value(), 0x414'5000u);
  EXPECT_EQ(t.page_size, kPage2M);
}

TEST(TranslationCache, PcidBitsOfCr3AreIgnored) {
  TranslationCache cache(64);
  cache.insert(Cr3(0x5000 | 0x7), mapped(0x40'0000, 0x9000, kPage4K));
  Translation t;
  EXPECT_TRUE(cache.lookup(Cr3(0x5000 | 0x123 | (1ull << 63)), VirtAddr(0x40'0010), t));
  cache.invalidate(Cr3(0x5000));
  EXPECT_FALSE(cache.lookup(Cr3(0x5000 | 0x7), VirtAddr(0x40'0010), t));
}

TEST(TranslationCache, InvalidatingOneCr3KeepsTheOthers) {
  TranslationCache cache(1024);
  for (std::uint64_t i = 0; i < 16; ++i) {
    cache.insert(Cr3(0x1000), mapped(0x40'0000 + i * kPage4K, 0x10'0000 + i * kPage4K, kPage4K));
    cache.insert(Cr3(0x2000), mapped(0x40'0000 + i * kPage4K, 0x20'0000 + i * kPage4K, kPage4K));
  }
  cache.invalidate(Cr3(0x1000));
  Translation t;
  int kept = 0;
  for (std::uint64_t i = 0; i < 16; ++i) {
    EXPECT_FALSE(cache.lookup(Cr3(0x1000), VirtAddr(0x40'0000 + i * kPage4K), t));
    if (cache.lookup(Cr3(0x2000), VirtAddr(0x40'0000 + i * kPage4K), t)) {
      ++kept;
      EXPECT_EQ(t.pa.value(), 0x20'0000 + i * kPage4K);
    }
  }
  EXPECT_GE(kept, 14);  // two ways per set: a collision of three is possible, not likely
  cache.invalidate_all();
  for (std::uint64_t i = 0; i < 16; ++i) EXPECT_FALSE(cache.lookup(Cr3(0x2000), VirtAddr(0x40'0000 + i * kPage4K), t));
}

TEST(TranslationCache, FaultsAreNotCachedAndMemoryIsBounded) {
  TranslationCache cache(100);
  EXPECT_EQ(cache.capacity(), 128u);
  Translation fault;
  fault.va = VirtAddr(0x1000);
  fault.fault = Fault{.kind = FaultKind::kNotPresent, .level = 4};
  cache.insert(Cr3(0), fault);
  Translation t;
  EXPECT_FALSE(cache.lookup(Cr3(0), VirtAddr(0x1000), t));
  for (std::uint64_t i = 0; i < 100000; ++i) cache.insert(Cr3(0), mapped(i * kPage4K, i * kPage4K, kPage4K));
  EXPECT_EQ(cache.capacity(), 128u);
  // The most recent insert is always there (it evicted whatever shared its slot).
  ASSERT_TRUE(cache.lookup(Cr3(0), VirtAddr(99999 * kPage4K), t));
  EXPECT_EQ(t.pa.value(), 99999 * kPage4K);
}

TEST(TranslationCache, AWorkingSetOfAQuarterOfTheCapacityStaysCached) {
  TranslationCache cache(4096);
  for (std::uint64_t i = 0; i < 1024; ++i)
    cache.insert(Cr3(0x1000), mapped(0xffff'c900'0000'0000ull + i * 7 * kPage4K, i * kPage4K, kPage4K));
  Translation t;
  int hits = 0;
  for (std::uint64_t i = 0; i < 1024; ++i)
    if (cache.lookup(Cr3(0x1000), VirtAddr(0xffff'c900'0000'0000ull + i * 7 * kPage4K), t)) ++hits;
  EXPECT_GE(hits, 960);  // 2-way: ~97% expected; a direct-mapped table keeps ~88%
}

}  // namespace
}  // namespace haywire::arch
