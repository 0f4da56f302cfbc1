// A plain file standing in for a QEMU RAM backend file in unit tests and benchmarks.
// Created under /dev/shm (tmpfs, like QEMU's) or $TMPDIR, removed on destruction. The test
// gets a *writable* mapping of its own to play the guest; production code never has one.
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <random>
#include <span>
#include <stdexcept>
#include <string>

namespace haywire::guest::testing {

class FakeRamFile {
 public:
  // kNamed: a file in /dev/shm, removed by the destructor. kUnlinked: removed at once and
  // reached through /proc/self/fd, so nothing is left behind even if the process never runs
  // destructors (libFuzzer exits with _Exit; a crash exits without cleanup).
  enum class Lifetime { kNamed, kUnlinked };

  explicit FakeRamFile(std::uint64_t size, const std::string& tag = "t", Lifetime lifetime = Lifetime::kNamed)
      : size_(size) {
    std::random_device rd;
    std::string dir = std::filesystem::exists("/dev/shm") ? "/dev/shm" : std::filesystem::temp_directory_path().string();
    path_ = dir + "/haywire_fake_" + tag + "_" + std::to_string(::getpid()) + "_" + std::to_string(rd());
    int fd = ::open(path_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 || ::ftruncate(fd, static_cast<off_t>(size)) != 0) throw std::runtime_error("fake RAM file: " + path_);
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) throw std::runtime_error("fake RAM mmap: " + path_);
    guest_view_ = static_cast<std::byte*>(p);
    if (lifetime == Lifetime::kUnlinked) {
      ::unlink(path_.c_str());
      path_ = "/proc/self/fd/" + std::to_string(fd);
      kept_fd_ = fd;
    } else {
      ::close(fd);
    }
  }
  FakeRamFile(const FakeRamFile&) = delete;
  FakeRamFile& operator=(const FakeRamFile&) = delete;
  ~FakeRamFile() {
    ::munmap(guest_view_, size_);
    if (kept_fd_ >= 0) ::close(kept_fd_);
    else ::unlink(path_.c_str());
  }

  [[nodiscard]] const std::string& path() const { return path_; }
  [[nodiscard]] std::uint64_t size() const { return size_; }
  // The "guest's" writable view of the file.
  [[nodiscard]] std::span<std::byte> guest() const { return {guest_view_, size_}; }

  void fill_random(std::uint64_t seed) const {
    std::mt19937_64 rng(seed);
    auto* words = reinterpret_cast<std::uint64_t*>(guest_view_);  // NOLINT: test fixture
    for (std::uint64_t i = 0; i < size_ / 8; ++i) words[i] = rng();
  }

 private:
  std::uint64_t size_;
  std::string path_;
  std::byte* guest_view_ = nullptr;
  int kept_fd_ = -1;
};

}  // namespace haywire::guest::testing
