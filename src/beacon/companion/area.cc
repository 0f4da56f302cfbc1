#include "beacon/companion/area.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <utility>

namespace haywire::beacon::companion {

std::uint64_t monotonic_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<std::uint64_t>(ts.tv_nsec);
}

Area::Area(Area&& other) noexcept { *this = std::move(other); }

Area& Area::operator=(Area&& other) noexcept {
  if (this != &other) {
    if (base_ != nullptr) ::munmap(base_, mapped_bytes_);
    base_ = std::exchange(other.base_, nullptr);
    mapped_bytes_ = std::exchange(other.mapped_bytes_, 0);
    pages_ = std::exchange(other.pages_, 0);
    locked_ = other.locked_;
    frames_known_ = other.frames_known_;
    ram_file_ = other.ram_file_;
    addresses_ = std::move(other.addresses_);
    used_ = std::move(other.used_);
  }
  return *this;
}

Area::~Area() {
  if (base_ != nullptr) ::munmap(base_, mapped_bytes_);
}

Result<Area> Area::allocate(std::size_t bytes) {
  bytes = (bytes + kPageSize - 1) & ~(kPageSize - 1);
  if (bytes < 16 * kPageSize || bytes > (1ULL << 32)) return fail(InvalidArgument{"--area-bytes must be 64 KiB .. 4 GiB"});
  Area a;
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_LOCKED | MAP_POPULATE, -1, 0);
  a.locked_ = p != MAP_FAILED;
  if (p == MAP_FAILED) {
    p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return fail(SystemCallFailed{"mmap of the beacon area", errno, "lower --area-bytes"});
    a.locked_ = ::mlock(p, bytes) == 0;
  }
  // One 4 KiB page per physical frame we publish: no transparent huge pages.
  ::madvise(p, bytes, MADV_NOHUGEPAGE);
  a.base_ = static_cast<std::byte*>(p);
  a.mapped_bytes_ = bytes;
  a.pages_ = static_cast<std::uint32_t>(bytes / kPageSize);
  std::memset(a.base_, 0, bytes);  // every page touched: backed by its own frame
  a.used_.assign(a.pages_, false);
  a.addresses_.assign(a.pages_, 0);
  a.refresh_addresses();
  return a;
}

Result<Area> Area::map_file(const std::string& path, std::uint64_t offset, std::size_t bytes) {
  bytes = (bytes + kPageSize - 1) & ~(kPageSize - 1);
  if (offset % kPageSize != 0) return fail(InvalidArgument{"--ram-offset must be page-aligned"});
  if (bytes < 16 * kPageSize || bytes > (1ULL << 32)) return fail(InvalidArgument{"--area-bytes must be 64 KiB .. 4 GiB"});
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return fail(FileNotFound{path});
    if (errno == EACCES) return fail(PermissionDenied{path});
    return fail(IoError{"open " + path, errno});
  }
  struct stat st{};
  if (::fstat(fd, &st) != 0 || static_cast<std::uint64_t>(st.st_size) < offset + bytes) {
    ::close(fd);
    return fail(InvalidArgument{path + " is smaller than --ram-offset + --area-bytes"});
  }
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, static_cast<off_t>(offset));
  int err = errno;
  ::close(fd);
  if (p == MAP_FAILED) return fail(SystemCallFailed{"mmap of " + path, err, ""});
  Area a;
  a.base_ = static_cast<std::byte*>(p);
  a.mapped_bytes_ = bytes;
  a.pages_ = static_cast<std::uint32_t>(bytes / kPageSize);
  a.ram_file_ = true;
  a.frames_known_ = true;  // "physical" addresses are file offsets
  std::memset(a.base_, 0, bytes);
  a.used_.assign(a.pages_, false);
  a.addresses_.resize(a.pages_);
  for (std::uint32_t i = 0; i < a.pages_; ++i) a.addresses_[i] = offset + std::uint64_t{i} * kPageSize;
  return a;
}

bool Area::refresh_addresses() {
  if (ram_file_ || base_ == nullptr) return false;
  int fd = ::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    frames_known_ = false;
    return false;
  }
  std::vector<std::uint64_t> entries(pages_);
  auto first = reinterpret_cast<std::uintptr_t>(base_) / kPageSize;
  ssize_t n = ::pread(fd, entries.data(), entries.size() * 8, static_cast<off_t>(first * 8));
  ::close(fd);
  bool changed = false;
  bool any = false;
  for (std::uint32_t i = 0; i < pages_; ++i) {
    std::uint64_t e = (n == static_cast<ssize_t>(entries.size() * 8)) ? entries[i] : 0;
    std::uint64_t pfn = (e >> 63) ? (e & ((1ULL << 55) - 1)) : 0;
    std::uint64_t pa = pfn * kPageSize;  // PFN 0 reads as "unknown": without CAP_SYS_ADMIN
    any |= pa != 0;
    changed |= pa != addresses_[i];
    addresses_[i] = pa;
  }
  frames_known_ = any;
  return changed;
}

std::optional<std::uint32_t> Area::allocate_pages(std::uint32_t count) {
  if (count == 0) return std::nullopt;
  std::uint32_t run = 0;
  for (std::uint32_t i = 0; i < pages_; ++i) {
    run = used_[i] ? 0 : run + 1;
    if (run == count) {
      std::uint32_t first = i + 1 - count;
      for (std::uint32_t j = first; j <= i; ++j) used_[j] = true;
      return first;
    }
  }
  return std::nullopt;
}

std::uint32_t Area::free_pages() const {
  std::uint32_t n = 0;
  for (bool u : used_) n += u ? 0 : 1;
  return n;
}

namespace {
// Stores that the host may observe are ordered by these fences: x86 keeps stores in order, the
// fence stops the compiler from moving them.
void store_fence() { std::atomic_thread_fence(std::memory_order_release); }

PageHeader header_for(const SealedBlock& b, std::uint32_t index, std::uint32_t pages, std::uint32_t size,
                      std::uint64_t ts) {
  return PageHeader{.magic = kMagic, .version = kProtocolVersion, .block_type = static_cast<std::uint16_t>(b.type),
                    .block_id = b.block_id, .page_index = index, .block_pages = pages,
                    .generation = b.generation, .data_size = size, .checksum = 0, .timestamp_ns = ts};
}

std::uint32_t pages_for(std::size_t bytes) {
  return bytes == 0 ? 1 : static_cast<std::uint32_t>((bytes + kPagePayload - 1) / kPagePayload);
}
}  // namespace

void Area::seal(SealedBlock& block, std::span<const std::byte> content, std::uint64_t timestamp_ns) {
  content = content.first(std::min(content.size(), std::size_t{block.page_count} * kPagePayload));
  std::uint32_t pages = pages_for(content.size());
  ++block.generation;
  if (block.generation == 0) block.generation = 1;
  block.checksums.resize(pages);
  for (std::uint32_t i = 0; i < pages; ++i) {
    std::byte* p = page(block.first_page + i);
    auto payload = content.subspan(std::size_t{i} * kPagePayload,
                                   std::min(kPagePayload, content.size() - std::min(content.size(), std::size_t{i} * kPagePayload)));
    PageHeader h = header_for(block, i, pages, static_cast<std::uint32_t>(payload.size()), timestamp_ns);
    std::memcpy(p, &h, sizeof h);  // checksum 0: "being written"
    store_fence();
    std::memcpy(p + sizeof h, payload.data(), payload.size());
    if (payload.size() < kPagePayload) std::memset(p + sizeof h + payload.size(), 0, kPagePayload - payload.size());
    store_fence();
    h.checksum = page_checksum(h, payload);
    block.checksums[i] = h.checksum;
    std::memcpy(p, &h, sizeof h);
  }
  store_fence();
  block.pages_used = pages;
}

bool Area::verify(const SealedBlock& block, std::span<const std::byte> content, std::uint64_t timestamp_ns) {
  content = content.first(std::min(content.size(), std::size_t{block.page_count} * kPagePayload));
  std::uint32_t pages = pages_for(content.size());
  if (pages != block.pages_used) return false;
  for (std::uint32_t i = 0; i < pages; ++i) {
    const std::byte* p = page(block.first_page + i);
    auto payload = content.subspan(std::size_t{i} * kPagePayload,
                                   std::min(kPagePayload, content.size() - std::min(content.size(), std::size_t{i} * kPagePayload)));
    PageHeader expect = header_for(block, i, pages, static_cast<std::uint32_t>(payload.size()), timestamp_ns);
    PageHeader got;
    std::memcpy(&got, p, sizeof got);
    // Same bytes as sealed, and the checksum computed then: no second hash pass needed.
    expect.checksum = block.checksums[i];
    if (std::memcmp(&got, &expect, sizeof got) != 0) return false;
    if (std::memcmp(p + sizeof got, payload.data(), payload.size()) != 0) return false;
  }
  return true;
}

void Area::seal_master(std::uint32_t generation, const MasterPayload& master, std::uint64_t timestamp_ns) {
  std::byte* p = page(0);
  PageHeader h{.magic = kMagic, .version = kProtocolVersion, .block_type = static_cast<std::uint16_t>(BlockType::kMaster),
               .block_id = 0, .page_index = 0, .block_pages = 1, .generation = generation,
               .data_size = sizeof(MasterPayload), .checksum = 0, .timestamp_ns = timestamp_ns};
  std::memcpy(p, &h, sizeof h);
  store_fence();
  std::memcpy(p + sizeof h, &master, sizeof master);
  store_fence();
  h.checksum = page_checksum(h, std::as_bytes(std::span(&master, 1)));
  std::memcpy(p, &h, sizeof h);
  store_fence();
}

}  // namespace haywire::beacon::companion
