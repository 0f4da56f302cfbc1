#include "haywire/guest/writer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <memory>

#include <fmt/format.h>

namespace haywire::guest {

std::string format_write_record(const WriteRecord& r) {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&now, &tm);
  char when[32];
  std::strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return fmt::format("{} who={} pid={} uid={} pa=0x{:x} len={}", when, r.who.empty() ? "?" : r.who, r.pid, r.uid,
                     r.addr.value(), r.length);
}

WriteSink log_file_sink(std::string path) {
  auto fd = std::make_shared<UniqueFd>();
  if (!path.empty()) fd->reset(::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600));
  return [fd](const WriteRecord& r) {
    std::string line = "guest write: " + format_write_record(r) + "\n";
    int out = fd->valid() ? fd->get() : 2;
    // One write(2) of one line: O_APPEND keeps concurrent writers' lines whole.
    (void)!::write(out, line.data(), line.size());
  };
}

Result<GuestWriter> GuestWriter::open(const std::string& path, RamLayout layout, std::string who, WriteSink sink) {
  auto fd = open_file(path, O_RDWR | O_CLOEXEC);
  if (!fd) return std::unexpected(std::move(fd.error()).with_context("opening guest RAM for writing"));
  struct stat st {};
  if (::fstat(fd->get(), &st) != 0) return fail(io_error("cannot stat " + path));
  const auto size = static_cast<std::uint64_t>(st.st_size);
  if (layout.regions().empty()) layout = RamLayout::identity(size);
  for (const RamRegion& r : layout.regions())
    if (r.file_offset + r.size > size) return fail(SizeMismatch{path, size, r.file_offset + r.size});
  if (!sink) sink = log_file_sink("");
  return GuestWriter(path, std::move(*fd), std::move(layout), std::move(who), std::move(sink));
}

Result<std::uint64_t> GuestWriter::offset_of(PhysAddr addr, std::size_t len) const {
  return layout_.file_offset(addr, len);
}

void GuestWriter::log(PhysAddr addr, std::size_t len) const {
  sink_(WriteRecord{who_, static_cast<int>(::getpid()), static_cast<unsigned>(::getuid()), addr, len});
}

Result<void> GuestWriter::store(std::uint64_t offset, std::span<const std::byte> bytes) {
  for (;;) {
    ssize_t n = ::pwrite(fd_.get(), bytes.data(), bytes.size(), static_cast<off_t>(offset));
    if (n == static_cast<ssize_t>(bytes.size())) return {};
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail(io_error(fmt::format("pwrite of {} bytes at file offset 0x{:x} of {}", bytes.size(), offset, path_)));
    // A short write of at most 8 aligned bytes cannot happen on a regular file short of ENOSPC.
    return fail(IoError{fmt::format("short pwrite ({} of {} bytes) at 0x{:x} of {}", n, bytes.size(), offset, path_), 0});
  }
}

Result<void> GuestWriter::write(PhysAddr addr, std::span<const std::byte> bytes) {
  const std::size_t n = bytes.size();
  if (n != 1 && n != 2 && n != 4 && n != 8)
    return fail(InvalidArgument{fmt::format("guest write of {} bytes: only 1, 2, 4 or 8 are atomic", n)});
  if (addr.value() % n != 0)
    return fail(InvalidArgument{fmt::format("guest write of {} bytes at 0x{:x} is not naturally aligned", n, addr.value())});
  auto off = offset_of(addr, n);
  if (!off) return std::unexpected(off.error());
  log(addr, n);
  return store(*off, bytes);
}

Result<void> GuestWriter::write_extent(PhysAddr addr, std::span<const std::byte> bytes) {
  const std::size_t n = bytes.size();
  if (n == 0 || n % 8 != 0 || n > kMaxExtent || addr.value() % 8 != 0)
    return fail(InvalidArgument{fmt::format("guest extent write of {} bytes at 0x{:x}: needs 8-byte alignment, a multiple "
                                            "of 8 bytes and at most {}", n, addr.value(), kMaxExtent)});
  if (addr.value() / kPageSize != (addr.value() + n - 1) / kPageSize)
    return fail(InvalidArgument{fmt::format("guest extent write at 0x{:x}+{} crosses a page", addr.value(), n)});
  auto off = offset_of(addr, n);
  if (!off) return std::unexpected(off.error());
  log(addr, n);
  // Everything but the last word in one pwrite, then the last word on its own: a reader that
  // sees the new last word sees every byte before it (both go through the same page cache page
  // in program order).
  if (n > 8)
    if (auto r = store(*off, bytes.first(n - 8)); !r) return r;
  return store(*off + n - 8, bytes.last(8));
}

}  // namespace haywire::guest
