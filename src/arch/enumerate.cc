#include "haywire/arch/enumerate.h"

#include <algorithm>
#include <cstring>
#include <unordered_map>

#include <fmt/format.h>

namespace haywire::arch {
namespace {

// Permissions a table inherits from the entries above it.
struct Inherited {
  bool writable = true;
  bool user = true;
  bool no_execute = false;
  [[nodiscard]] unsigned key() const {
    return (writable ? 1u : 0u) | (user ? 2u : 0u) | (no_execute ? 4u : 0u);
  }
};

// The output slice a table's first expansion produced, to be copied for later links to it.
struct Memo {
  std::size_t begin = 0;     // ranges[begin, end) overlap the table's span
  std::size_t end = 0;
  std::uint64_t base = 0;    // linear address of the span's start at the first expansion
};

class Enumerator {
 public:
  Enumerator(const guest::GuestRam& ram, const PagingMode& mode, const EnumerateOptions& options)
      : ram_(ram), mode_(mode), options_(options) {}

  Enumeration run(Cr3 cr3) {
    const PhysAddr root = mode_.root(cr3);
    const int top = mode_.levels();
    unsigned first = 0, last = kEntriesPerTable;  // top-level entries to visit
    if (options_.half == Half::kUser) last = kEntriesPerTable / 2;
    if (options_.half == Half::kKernel) first = kEntriesPerTable / 2;
    expand(root, top, 0, Inherited{}, first, last);
    for (const MappedRange& r : out_.ranges) out_.mapped_bytes += r.size;
    return std::move(out_);
  }

 private:
  // Lists the entries [first, last) of the table at `table` (level `level`), whose span starts
  // at linear address `base`.
  void expand(PhysAddr table, int level, std::uint64_t base, Inherited inherited, unsigned first, unsigned last) {
    auto bytes = ram_.read_pa(table, kPage4K);
    if (!bytes) {
      skip(base, level_span(level + 1), Fault{.kind = FaultKind::kTableOutsideRam, .level = level, .entry_addr = table});
      return;
    }
    ++out_.tables_expanded;
    const std::uint64_t span = level_span(level);
    for (unsigned i = first; i < last && !out_.truncated; ++i) {
      std::uint64_t e = 0;
      // One copy per entry: the guest may rewrite the table while we read it, and every
      // decision about this entry must see the same value.
      std::memcpy(&e, bytes->data() + std::size_t{i} * 8, sizeof e);
      if ((e & pte::kPresent) == 0) continue;
      const std::uint64_t at = base + std::uint64_t{i} * span;
      const PhysAddr entry_addr = table + std::uint64_t{i} * 8;
      const bool large = (level == 2 || level == 3) && (e & pte::kPageSize) != 0;
      if ((e & mode_.reserved_mask(level, large)) != 0) {
        skip(at, span, Fault{.kind = FaultKind::kReservedBit, .level = level, .entry_addr = entry_addr, .entry = e});
        continue;
      }
      Inherited here{.writable = inherited.writable && (e & pte::kWritable) != 0,
                     .user = inherited.user && (e & pte::kUser) != 0,
                     .no_execute = inherited.no_execute || (mode_.nx_enabled() && (e & pte::kNoExecute) != 0)};
      if (large || level == 1) {
        emit(at, PhysAddr(e & mode_.address_mask() & ~(span - 1)), span, span, leaf_flags(here, e));
        continue;
      }
      descend(PhysAddr(e & mode_.address_mask()), level - 1, at, here);
    }
  }

  void descend(PhysAddr table, int level, std::uint64_t base, Inherited inherited) {
    const std::uint64_t key = table.value() | static_cast<std::uint64_t>(level) | (std::uint64_t{inherited.key()} << 3);
    if (auto it = memos_.find(key); it != memos_.end()) {
      ++out_.tables_replayed;
      replay(it->second, base, level_span(level + 1));
      return;
    }
    Memo memo{.begin = out_.ranges.empty() ? 0 : out_.ranges.size() - 1, .base = base};
    expand(table, level, base, inherited, 0, kEntriesPerTable);
    memo.end = out_.ranges.size();
    memos_.emplace(key, memo);
  }

  // Copies what the first expansion of a table produced, clipped to that table's span (its
  // first and last ranges may have been merged with neighbours), moved to `base`.
  void replay(const Memo& memo, std::uint64_t base, std::uint64_t span) {
    const std::uint64_t old_end = memo.base + span;
    for (std::size_t i = memo.begin; i < memo.end && !out_.truncated; ++i) {
      const MappedRange r = out_.ranges[i];  // a copy: emit() may grow the vector
      const std::uint64_t start = linear(r.va);
      const std::uint64_t stop = start + r.size;
      const std::uint64_t from = std::max(start, memo.base);
      const std::uint64_t to = std::min(stop, old_end);
      if (from >= to) continue;
      emit(from - memo.base + base, r.pa + (from - start), to - from, r.page_size, r.flags);
    }
  }

  static PageFlags leaf_flags(Inherited eff, std::uint64_t e) {
    std::uint8_t bits = PageFlags::kPresent;
    if (eff.writable) bits |= PageFlags::kWritable;
    if (eff.user) bits |= PageFlags::kUser;
    if (eff.no_execute) bits |= PageFlags::kNoExecute;
    if ((e & pte::kAccessed) != 0) bits |= PageFlags::kAccessed;
    if ((e & pte::kDirty) != 0) bits |= PageFlags::kDirty;
    if ((e & pte::kGlobal) != 0) bits |= PageFlags::kGlobal;
    return PageFlags(bits);
  }

  void emit(std::uint64_t at, PhysAddr pa, std::uint64_t size, std::uint64_t page_size, PageFlags flags) {
    const VirtAddr va = mode_.canonical(at);
    if (!out_.ranges.empty()) {
      MappedRange& last = out_.ranges.back();
      const bool adjacent = last.va_last().value() != ~0ull && last.va_last() + 1 == va;
      if (last.page_size == page_size && last.flags == flags && adjacent && last.pa + last.size == pa) {
        last.size += size;
        return;
      }
    }
    if (out_.ranges.size() >= options_.max_ranges) {
      out_.truncated = true;
      out_.truncated_reason = fmt::format("more than {} ranges; listing stops at 0x{:x}", options_.max_ranges, va.value());
      return;
    }
    out_.ranges.push_back(MappedRange{va, pa, size, page_size, flags});
  }

  void skip(std::uint64_t at, std::uint64_t span, Fault fault) {
    ++out_.skipped_total;
    if (out_.skipped.size() < options_.max_skipped) out_.skipped.push_back(SkippedSubtree{mode_.canonical(at), span, fault});
  }

  [[nodiscard]] std::uint64_t linear(VirtAddr va) const { return va.value() & ((1ull << mode_.va_bits()) - 1); }

  const guest::GuestRam& ram_;
  const PagingMode& mode_;
  const EnumerateOptions& options_;
  Enumeration out_;
  std::unordered_map<std::uint64_t, Memo> memos_;
};

}  // namespace

Enumeration enumerate(const guest::GuestRam& ram, const PagingMode& mode, Cr3 cr3, const EnumerateOptions& options) {
  return Enumerator(ram, mode, options).run(cr3);
}

}  // namespace haywire::arch
