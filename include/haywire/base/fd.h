// RAII for descriptors and mappings: move-only, closed/unmapped exactly once.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <utility>

#include "haywire/base/error.h"

namespace haywire {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) reset(std::exchange(other.fd_, -1));
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  [[nodiscard]] int get() const { return fd_; }
  [[nodiscard]] bool valid() const { return fd_ >= 0; }
  explicit operator bool() const { return valid(); }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

// A read-only shared mapping of a whole file. No writable variant exists on purpose:
// guest RAM is only ever written through GuestWriter's pwrite path.
class ReadOnlyMapping {
 public:
  ReadOnlyMapping() = default;
  ReadOnlyMapping(ReadOnlyMapping&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}
  ReadOnlyMapping& operator=(ReadOnlyMapping&& other) noexcept;
  ReadOnlyMapping(const ReadOnlyMapping&) = delete;
  ReadOnlyMapping& operator=(const ReadOnlyMapping&) = delete;
  ~ReadOnlyMapping();

  // Maps `size` bytes of `fd` PROT_READ, MAP_SHARED. `path` is only for error messages.
  static Result<ReadOnlyMapping> map(const UniqueFd& fd, std::size_t size, const std::string& path);

  // Valid while this mapping lives.
  [[nodiscard]] std::span<const std::byte> bytes() const { return {data_, size_}; }
  [[nodiscard]] const std::byte* data() const { return data_; }
  [[nodiscard]] std::size_t size() const { return size_; }

 private:
  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

// open(2) with errno mapped to FileNotFound / PermissionDenied / IoError.
Result<UniqueFd> open_file(const std::string& path, int flags, int mode = 0);

// Whole small text files (run-directory metadata, /proc entries).
Result<std::string> read_text_file(const std::string& path, std::size_t max_bytes = 1 << 20);
// Writes to path.tmp then renames, so readers never see half a file.
Result<void> write_text_file_atomic(const std::string& path, std::string_view text);

}  // namespace haywire
