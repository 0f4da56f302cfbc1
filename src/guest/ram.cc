#include "haywire/guest/ram.h"

#include <fcntl.h>
#include <sys/stat.h>

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
  // The descriptor can close now: the mapping keeps the file alive.
  return GuestRam(path, std::move(*mapping), std::move(layout));
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
