// Finding the master page in guest RAM and reading it (reader.h).
//
// The scan looks at the first word of every page of the file's data ranges (holes are skipped:
// reading a tmpfs hole through the mapping would allocate it). One 4-byte load per 4 KiB page
// is bounded by TLB and cache misses, not bandwidth; the loads are independent, so the CPU
// overlaps them. Only pages starting with kMagic get a closer look.
#include <algorithm>
#include <cstring>

#include "haywire/beacon/reader.h"

namespace haywire::beacon {

namespace {

bool looks_like_master(const std::byte* page) {
  PageHeader h;
  std::memcpy(&h, page, sizeof(h));
  if (h.block_type != static_cast<std::uint16_t>(BlockType::kMaster) || h.page_index != 0) return false;
  return std::memcmp(page + sizeof(PageHeader), kDiscoveryPattern, sizeof(kDiscoveryPattern)) == 0;
}

}  // namespace

std::vector<PhysAddr> scan_for_masters(const guest::GuestRam& ram, ScanStats* stats) {
  ScanStats local;
  std::vector<std::pair<std::uint64_t, PhysAddr>> found;
  const auto file = ram.file_bytes();
  const std::byte* base = file.data();
  for (const guest::FileRange& r : ram.data_ranges()) {
    std::uint64_t begin = (r.offset + kPageSize - 1) / kPageSize * kPageSize;
    std::uint64_t end = std::min<std::uint64_t>(r.offset + r.length, file.size());
    if (end < begin + kPageSize) continue;
    end -= (end - begin) % kPageSize;
    local.bytes_scanned += end - begin;
    local.pages_checked += (end - begin) / kPageSize;
    for (std::uint64_t off = begin; off < end; off += kPageSize) {
      std::uint32_t magic;
      std::memcpy(&magic, base + off, 4);
      if (magic != kMagic) [[likely]]
        continue;
      ++local.magic_hits;
      if (!looks_like_master(base + off)) continue;
      auto pa = ram.layout().phys_of_offset(off);
      if (!pa) continue;
      auto master = read_master(ram, *pa);
      if (!master) continue;
      found.emplace_back(master->last_cycle_ns, *pa);
      if (found.size() >= 64) break;  // a guest full of fake masters cannot make this unbounded
    }
  }
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<PhysAddr> out;
  out.reserve(found.size());
  for (const auto& f : found) out.push_back(f.second);
  if (stats != nullptr) *stats = local;
  return out;
}

Decoded<MasterInfo> read_master(const guest::GuestRam& ram, PhysAddr pa) {
  auto live = ram.read_pa(pa, kPageSize);
  if (!live) return std::unexpected(Invalid::kTooShort);
  std::vector<std::byte> payload;
  auto h = copy_page(*live, PageExpect{.type = BlockType::kMaster, .block_id = 0, .page_index = 0, .max_block_pages = 1},
                     payload);
  if (!h) return std::unexpected(h.error());
  if (payload.size() < sizeof(MasterPayload)) return std::unexpected(Invalid::kTooShort);
  MasterPayload m;
  std::memcpy(&m, payload.data(), sizeof(m));
  if (std::memcmp(m.discovery, kDiscoveryPattern, sizeof(kDiscoveryPattern)) != 0) return std::unexpected(Invalid::kBadMagic);
  if (m.protocol_version != kProtocolVersion) return std::unexpected(Invalid::kVersion);
  const std::uint64_t want_table = (std::uint64_t{m.area_pages} + kTableEntriesPerPage - 1) / kTableEntriesPerPage;
  if (m.area_pages < 2 || m.area_pages > kMaxAreaPages || m.table_pages != want_table ||
      m.block_count > kMaxBlocks || m.camera_count > kMaxCameras)
    return std::unexpected(Invalid::kBlockPages);
  MasterInfo info;
  info.pa = pa;
  info.generation = h->generation;
  info.session_id = m.session_id;
  info.companion_pid = m.companion_pid;
  info.area_pages = m.area_pages;
  info.table_pages = m.table_pages;
  info.flags = m.flags;
  info.cycle_interval_us = m.cycle_interval_us;
  info.cycle = m.cycle;
  info.last_cycle_ns = m.last_cycle_ns;
  info.directory.assign(m.directory, m.directory + m.block_count);
  std::copy(m.cameras, m.cameras + kMaxCameras, info.cameras.begin());
  return info;
}

std::array<CameraRequest, kMaxCameras> read_camera_requests(const guest::GuestRam& ram, PhysAddr master_pa) {
  std::array<CameraRequest, kMaxCameras> out{};
  auto bytes = ram.read_pa(master_pa + kCameraRequestOffset, sizeof(out));
  if (bytes) std::memcpy(out.data(), bytes->data(), sizeof(out));
  return out;
}

}  // namespace haywire::beacon
