// A whole fake guest for page-table tests: a RAM file, a page-table builder writing into the
// guest's view of it, and the read-only GuestRam that production code reads through. The
// builder's writes show through the GuestRam at once (one shared file), like a live guest.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

#include "arch/testing/page_table_builder.h"
#include "guest/testing/fake_ram_file.h"
#include "haywire/guest/ram.h"

namespace haywire::arch::testing {

class FakeGuest {
 public:
  FakeGuest(std::uint64_t ram_size, int levels, PhysAddr table_area = PhysAddr(1u << 20))
      : file_(ram_size, "arch"), pt_(file_.guest(), levels, table_area), ram_(open(file_)) {}

  [[nodiscard]] PageTableBuilder& pt() { return pt_; }
  [[nodiscard]] const guest::GuestRam& ram() const { return ram_; }
  [[nodiscard]] std::span<std::byte> bytes() const { return file_.guest(); }
  [[nodiscard]] Cr3 cr3() const { return pt_.cr3(); }

 private:
  static guest::GuestRam open(const guest::testing::FakeRamFile& file) {
    auto ram = guest::GuestRam::open(file.path(), file.size());
    if (!ram) throw std::runtime_error("fake guest RAM: " + ram.error().message());
    return std::move(*ram);
  }

  guest::testing::FakeRamFile file_;
  PageTableBuilder pt_;
  guest::GuestRam ram_;
};

}  // namespace haywire::arch::testing
