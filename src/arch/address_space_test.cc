// Reads and cached translations through an AddressSpace over synthetic tables.
#include "haywire/arch/address_space.h"

#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <vector>

#include "arch/testing/fake_guest.h"
#include "haywire/arch/walker.h"

namespace haywire::arch {
namespace {

using testing::FakeGuest;
constexpr std::uint64_t kMiB = 1 << 20;
constexpr std::uint64_t kBase = 0xffff'c900'0000'0000ull;  // a vmalloc-like area

// Fills guest-physical [pa, pa + len) with a pattern derived from the address.
void fill(FakeGuest& g, std::uint64_t pa, std::uint64_t len) {
  for (std::uint64_t i = 0; i < len; ++i) g.bytes()[pa + i] = static_cast<std::byte>((pa + i) * 7 + 3);
}
std::byte expected_at(std::uint64_t pa) { return static_cast<std::byte>(pa * 7 + 3); }

TEST(AddressSpace, ReadsAcrossPagesThatAreScatteredInPhysicalMemory) {
  FakeGuest g(16 * kMiB, 4);
  // Three virtually contiguous 4 KiB pages at physically unrelated places, then a 2 MiB page.
  const std::uint64_t pas[] = {0x80'0000, 0x40'3000, 0x90'1000};
  for (int i = 0; i < 3; ++i) {
    g.pt().map(VirtAddr(kBase + static_cast<std::uint64_t>(i) * kPage4K), PhysAddr(pas[i]), kPage4K);
    fill(g, pas[i], kPage4K);
  }
  g.pt().map(VirtAddr(kBase + kPage2M), PhysAddr(0xa0'0000), kPage2M);
  fill(g, 0xa0'0000, kPage2M);
  AddressSpace as(g.ram(), PagingMode::four_level(), g.cr3());

  std::vector<std::byte> buf(3 * kPage4K - 100);
  ReadResult r = as.read(VirtAddr(kBase + 50), buf);
  ASSERT_TRUE(r.complete()) << r.fault->fault.describe();
  ASSERT_EQ(r.bytes_read, buf.size());
  for (std::uint64_t i = 0; i < buf.size(); ++i) {
    const std::uint64_t va_off = 50 + i;
    ASSERT_EQ(buf[i], expected_at(pas[va_off / kPage4K] + va_off % kPage4K)) << i;
  }
  // A whole 2 MiB page in one read.
  std::vector<std::byte> big(kPage2M);
  r = as.read(VirtAddr(kBase + kPage2M), big);
  ASSERT_TRUE(r.complete());
  EXPECT_EQ(big[kPage2M - 1], expected_at(0xa0'0000 + kPage2M - 1));
}

TEST(AddressSpace, ReadsStopAtTheFirstUnmappedByteAndSayWhy) {
  FakeGuest g(16 * kMiB, 4);
  g.pt().map(VirtAddr(kBase), PhysAddr(0x80'0000), kPage4K);
  fill(g, 0x80'0000, kPage4K);
  AddressSpace as(g.ram(), PagingMode::four_level(), g.cr3());
  std::vector<std::byte> buf(256, std::byte{0xee});
  const ReadResult r = as.read(VirtAddr(kBase + kPage4K - 100), buf);
  EXPECT_FALSE(r.complete());
  EXPECT_EQ(r.bytes_read, 100u);
  ASSERT_TRUE(r.fault.has_value());
  EXPECT_EQ(r.fault->va.value(), kBase + kPage4K);
  EXPECT_EQ(r.fault->fault.kind, FaultKind::kNotPresent);
  EXPECT_EQ(r.fault->fault.level, 1);
  EXPECT_EQ(buf[99], expected_at(0x80'0000 + kPage4K - 1));
  EXPECT_EQ(buf[100], std::byte{0xee});  // untouched past the fault: nothing pretended

  const ReadResult none = as.read(VirtAddr(kBase - 8), std::span(buf).first(16));
  EXPECT_EQ(none.bytes_read, 0u);
  EXPECT_EQ(none.fault->va.value(), kBase - 8);
}

TEST(AddressSpace, PagesMappedOutsideRamAreReadFaultsNotCrashes) {
  FakeGuest g(15 * kMiB, 4);
  g.pt().map(VirtAddr(kBase), PhysAddr(15 * kMiB - kPage4K), kPage4K);  // the last RAM page
  g.pt().map(VirtAddr(kBase + kPage4K), PhysAddr(0xfee0'0000), kPage4K);  // the local APIC
  g.pt().map(VirtAddr(kBase + kPage2M), PhysAddr(14 * kMiB), kPage2M);  // half in, half past RAM
  AddressSpace as(g.ram(), PagingMode::four_level(), g.cr3());
  std::vector<std::byte> buf(2 * kPage4K);
  ReadResult r = as.read(VirtAddr(kBase), buf);
  EXPECT_EQ(r.bytes_read, kPage4K);
  ASSERT_TRUE(r.fault.has_value());
  EXPECT_EQ(r.fault->fault.kind, FaultKind::kPageOutsideRam);
  EXPECT_EQ(r.fault->fault.page.value(), 0xfee0'0000u);
  EXPECT_EQ(r.fault->va.value(), kBase + kPage4K);
  EXPECT_TRUE(as.translate(VirtAddr(kBase + kPage4K)).mapped());  // mapped, just not RAM

  std::vector<std::byte> large(kPage2M);
  r = as.read(VirtAddr(kBase + kPage2M), large);
  EXPECT_EQ(r.bytes_read, kMiB);  // the RAM half, exactly
  ASSERT_TRUE(r.fault.has_value());
  EXPECT_EQ(r.fault->va.value(), kBase + kPage2M + kMiB);
  EXPECT_EQ(r.fault->fault.page.value(), 15 * kMiB);
}

TEST(AddressSpace, ReadsDoNotWrapAroundTheTopOfTheAddressSpace) {
  FakeGuest g(16 * kMiB, 4);
  g.pt().map(VirtAddr(0xffff'ffff'ffff'f000ull), PhysAddr(0x80'0000), kPage4K);
  g.pt().map(VirtAddr(0), PhysAddr(0x81'0000), kPage4K);
  AddressSpace as(g.ram(), PagingMode::four_level(), g.cr3());
  std::array<std::byte, 32> buf{};
  const ReadResult r = as.read(VirtAddr(0xffff'ffff'ffff'fff0ull), buf);
  EXPECT_EQ(r.bytes_read, 16u);
  EXPECT_EQ(r.fault->fault.kind, FaultKind::kNonCanonical);
}

TEST(AddressSpace, CachedTranslationsAreStaleUntilInvalidatedAndFreshOnesAreNot) {
  FakeGuest g(16 * kMiB, 5);
  const VirtAddr va(kBase);
  g.pt().map(va, PhysAddr(0x80'0000), kPage4K);
  TranslationCache cache(256);
  AddressSpace as(g.ram(), PagingMode::five_level(), g.cr3(), &cache);
  EXPECT_EQ(as.translate(va).pa.value(), 0x80'0000u);
  EXPECT_EQ(cache.misses(), 1u);
  EXPECT_EQ(as.translate(va + 8).pa.value(), 0x80'0008u);
  EXPECT_EQ(cache.hits(), 1u);

  g.pt().map(va, PhysAddr(0x90'0000), kPage4K);  // the guest remaps the page
  EXPECT_EQ(as.translate(va).pa.value(), 0x80'0000u);                  // cached: stale
  EXPECT_EQ(as.translate(va, Lookup::kFresh).pa.value(), 0x90'0000u);  // bypass
  EXPECT_EQ(as.translate(va).pa.value(), 0x80'0000u);                  // bypass did not refill
  cache.invalidate(as.cr3());
  EXPECT_EQ(as.translate(va).pa.value(), 0x90'0000u);

  // Unmapped pages are never cached: mapping one shows at once.
  EXPECT_FALSE(as.translate(va + kPage4K).mapped());
  g.pt().map(va + kPage4K, PhysAddr(0xa0'0000), kPage4K);
  EXPECT_TRUE(as.translate(va + kPage4K).mapped());
}

TEST(AddressSpace, BatchTranslationMatchesOneByOneWithAndWithoutCache) {
  FakeGuest g(16 * kMiB, 4);
  g.pt().map_range(VirtAddr(kBase), PhysAddr(0x80'0000), 32 * kPage4K, kPage4K, pte::kWritable | pte::kNoExecute);
  g.pt().map(VirtAddr(kBase + kPage2M), PhysAddr(0xa0'0000), kPage2M);
  std::vector<VirtAddr> vas;
  for (std::uint64_t off = 0; off < 2 * kPage2M + 2 * kPage4K; off += 0x777) vas.emplace_back(kBase + off);
  TranslationCache cache;
  const AddressSpace cached(g.ram(), PagingMode::four_level(), g.cr3(), &cache);
  const AddressSpace plain(g.ram(), PagingMode::four_level(), g.cr3());
  for (int round = 0; round < 2; ++round) {  // the second round is served from the cache
    for (const auto& as : {cached, plain}) {
      const std::vector<Translation> out = as.translate_batch(vas);
      ASSERT_EQ(out.size(), vas.size());
      for (std::size_t i = 0; i < vas.size(); ++i) {
        const Translation one = walk(g.ram(), PagingMode::four_level(), g.cr3(), vas[i]);
        ASSERT_EQ(out[i].mapped(), one.mapped()) << std::hex << vas[i].value();
        if (one.mapped()) {
          EXPECT_EQ(out[i].pa, one.pa);
          EXPECT_EQ(out[i].page_size, one.page_size);
          EXPECT_EQ(out[i].flags, one.flags);
        }
      }
    }
  }
  EXPECT_GT(cache.hits(), vas.size() / 2);
}

}  // namespace
}  // namespace haywire::arch
