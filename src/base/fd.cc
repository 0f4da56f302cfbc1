#include "haywire/base/fd.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>

namespace haywire {

void UniqueFd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

ReadOnlyMapping& ReadOnlyMapping::operator=(ReadOnlyMapping&& other) noexcept {
  if (this != &other) {
    this->~ReadOnlyMapping();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

ReadOnlyMapping::~ReadOnlyMapping() {
  if (data_ != nullptr) ::munmap(const_cast<std::byte*>(data_), size_);  // NOLINT
  data_ = nullptr;
  size_ = 0;
}

Result<ReadOnlyMapping> ReadOnlyMapping::map(const UniqueFd& fd, std::size_t size,
                                             const std::string& path) {
  if (size == 0) return fail(MmapFailed{path, EINVAL});
  void* p = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd.get(), 0);
  if (p == MAP_FAILED) return fail(MmapFailed{path, errno});
  ReadOnlyMapping m;
  m.data_ = static_cast<const std::byte*>(p);
  m.size_ = size;
  return m;
}

Result<UniqueFd> open_file(const std::string& path, int flags, int mode) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
  if (fd < 0) {
    if (errno == ENOENT) return fail(FileNotFound{path});
    if (errno == EACCES || errno == EPERM) return fail(PermissionDenied{path});
    return fail(io_error("cannot open " + path));
  }
  return UniqueFd(fd);
}

Result<std::string> read_text_file(const std::string& path, std::size_t max_bytes) {
  auto fd = open_file(path, O_RDONLY);
  if (!fd) return std::unexpected(fd.error());
  std::string out;
  char buf[4096];
  while (true) {
    ssize_t n = ::read(fd->get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail(io_error("cannot read " + path));
    }
    if (n == 0) break;
    if (out.size() + static_cast<std::size_t>(n) > max_bytes)
      return fail(IoError{path + " is larger than " + std::to_string(max_bytes) + " bytes", 0});
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

Result<void> write_text_file_atomic(const std::string& path, std::string_view text) {
  std::string tmp = path + ".tmp";
  auto fd = open_file(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (!fd) return std::unexpected(fd.error());
  std::size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd->get(), text.data() + done, text.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail(io_error("cannot write " + tmp));
    }
    done += static_cast<std::size_t>(n);
  }
  fd->reset();
  if (::rename(tmp.c_str(), path.c_str()) != 0) return fail(io_error("cannot rename " + tmp));
  return {};
}

}  // namespace haywire
