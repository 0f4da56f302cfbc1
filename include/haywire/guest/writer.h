// The one host→guest write path: atomic, naturally aligned writes into guest RAM through
// pwrite(2) on a separate read-write descriptor of the RAM file. Guest RAM is never mapped
// writable (fd.h has no writable mapping on purpose). Every write is logged before it is made.
//
// Used for beacon camera requests; the control bus (issue 5) will put leases and authorisation
// in front of it. Deliberately small.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>

#include "haywire/base/error.h"
#include "haywire/base/fd.h"
#include "haywire/base/ram_layout.h"
#include "haywire/base/types.h"

namespace haywire::guest {

// One write, as logged.
struct WriteRecord {
  std::string who;  // caller-supplied identity, e.g. "haywire pagemap"
  int pid = 0;      // the writing host process
  unsigned uid = 0;
  PhysAddr addr;
  std::size_t length = 0;
};
// Receives every write before it is made. A sink that fails to record must not throw.
using WriteSink = std::function<void(const WriteRecord&)>;

// "2025-01-01T12:00:00Z who=haywire pid=1 uid=0 pa=0x1000 len=8": one line per write.
std::string format_write_record(const WriteRecord& record);
// Appends format_write_record lines to `path` (O_APPEND, one write(2) per line); stderr when
// `path` is empty or cannot be opened.
WriteSink log_file_sink(std::string path);

inline constexpr std::size_t kMaxExtent = 4096;

class GuestWriter {
 public:
  // Opens `path` O_RDWR (a descriptor of its own). An empty layout means guest-physical
  // address = file offset.
  static Result<GuestWriter> open(const std::string& path, RamLayout layout, std::string who,
                                  WriteSink sink = {});

  // One atomic store of 1, 2, 4 or 8 bytes at a naturally aligned address. InvalidArgument for
  // other sizes or misalignment, InvalidAddress outside RAM.
  Result<void> write(PhysAddr addr, std::span<const std::byte> bytes);
  template <class T>
    requires(std::is_trivially_copyable_v<T> && (sizeof(T) == 1 || sizeof(T) == 2 || sizeof(T) == 4 || sizeof(T) == 8))
  Result<void> write_value(PhysAddr addr, const T& value) {
    return write(addr, std::as_bytes(std::span(&value, 1)));
  }

  // A larger extent (8-byte aligned, a multiple of 8 bytes, at most kMaxExtent, within one
  // page) written in order as 8-byte stores, the last word (the generation or sequence the
  // reader polls) last.
  Result<void> write_extent(PhysAddr addr, std::span<const std::byte> bytes);

  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  GuestWriter(std::string path, UniqueFd fd, RamLayout layout, std::string who, WriteSink sink)
      : path_(std::move(path)), fd_(std::move(fd)), layout_(std::move(layout)), who_(std::move(who)),
        sink_(std::move(sink)) {}
  Result<std::uint64_t> offset_of(PhysAddr addr, std::size_t len) const;
  Result<void> store(std::uint64_t offset, std::span<const std::byte> bytes);
  void log(PhysAddr addr, std::size_t len) const;

  std::string path_;
  UniqueFd fd_;
  RamLayout layout_;
  std::string who_;
  WriteSink sink_;
};

}  // namespace haywire::guest
