#include "haywire/guest/ram.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace haywire::guest {

Result<GuestRam> GuestRam::open(const std::string& path, std::optional<std::uint64_t> expected_size,
                                RamLayout layout) {
  auto fd = open_file(path, O_RDONLY);
  if (!fd) {
    if (fd.error().is<FileNotFound>())
      return std::unexpected(std::move(fd.error())
                                 .with_context("guest RAM file missing (is the VM running with "
                                               "memory-backend-file share=on? see `haywire vm ls`)"));
    return std::unexpected(fd.error());
  }
  struct stat st {};
  if (::fstat(fd->get(), &st) != 0) return fail(io_error("cannot stat " + path));
  auto size = static_cast<std::uint64_t>(st.st_size);
  if (expected_size && *expected_size != size) return fail(SizeMismatch{path, size, *expected_size});
  if (layout.regions().empty()) layout = RamLayout::identity(size);
  for (const RamRegion& r : layout.regions())
    if (r.file_offset + r.size > size) return fail(SizeMismatch{path, size, r.file_offset + r.size});
  auto mapping = ReadOnlyMapping::map(*fd, size, path);
  if (!mapping) return std::unexpected(mapping.error());
  return GuestRam(path, std::move(*fd), std::move(*mapping), std::move(layout));
}

std::vector<FileRange> GuestRam::data_ranges() const {
  const auto size = static_cast<off_t>(mapping_.size());
  // A fully allocated file has no holes: skip the walk (it costs ~5 ms per 256 MiB).
  struct stat st {};
  if (::fstat(fd_.get(), &st) == 0 && static_cast<std::uint64_t>(st.st_blocks) * 512 >= mapping_.size())
    return {FileRange{0, mapping_.size()}};
  std::vector<FileRange> ranges;
  off_t at = 0;
  while (at < size) {
    off_t data = ::lseek(fd_.get(), at, SEEK_DATA);
    if (data < 0) {
      if (errno == ENXIO) break;  // only a hole remains
      return {FileRange{0, mapping_.size()}};  // no SEEK_DATA here: treat everything as data
    }
    off_t hole = ::lseek(fd_.get(), data, SEEK_HOLE);
    if (hole < 0 || hole <= data) hole = size;
    hole = std::min(hole, size);
    ranges.push_back(FileRange{static_cast<std::uint64_t>(data), static_cast<std::uint64_t>(hole - data)});
    at = hole;
  }
  return ranges;
}

Result<std::span<const std::byte>> GuestRam::read_pa(PhysAddr addr, std::uint64_t len) const {
  auto offset = layout_.file_offset(addr, len);
  if (!offset) return std::unexpected(offset.error());
  return mapping_.bytes().subspan(*offset, len);
}

Result<void> GuestRam::read_pa_into(PhysAddr addr, std::span<std::byte> out) const {
  auto view = read_pa(addr, out.size());
  if (!view) return std::unexpected(view.error());
  std::memcpy(out.data(), view->data(), out.size());
  return {};
}

}  // namespace haywire::guest
