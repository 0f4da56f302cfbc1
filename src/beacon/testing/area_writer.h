// Test-only beacon writer: lays out a beacon area in a byte span standing in for guest RAM
// (guest-physical address = offset in the span) with the area's pages scattered at caller-chosen
// addresses, so the host reader's discovery, page-table indirection, tear detection and camera
// protocol can be tested without the companion. Not the companion: no /proc, no policy.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "haywire/beacon/decode.h"
#include "haywire/beacon/protocol.h"

namespace haywire::beacon::testing {

// Record stream builder.
class RecordWriter {
 public:
  void pid_list(std::span<const std::uint32_t> pids, std::uint64_t cycle, std::uint32_t total = 0) {
    PidListRecord r{};
    r.count = static_cast<std::uint32_t>(pids.size());
    r.total = total != 0 ? total : r.count;
    r.cycle = cycle;
    put(RecordType::kPidList, 0, &r, sizeof(r), pids.data(), pids.size() * 4);
  }
  struct Proc {
    std::uint32_t pid = 0, ppid = 0, uid = 0, threads = 1;
    char state = 'S';
    std::uint64_t rss_kb = 0, collected_ns = 0, cycle = 0;
    std::string comm, cmdline;
    std::uint32_t section_count = 0;
  };
  void process(const Proc& p, std::uint16_t flags = 0) {
    ProcessRecord r{};
    r.pid = p.pid;
    r.ppid = p.ppid;
    r.uid = p.uid;
    r.threads = p.threads;
    r.state = p.state;
    r.rss_kb = p.rss_kb;
    r.collected_ns = p.collected_ns;
    r.cycle = p.cycle;
    r.section_count = p.section_count;
    r.cmdline_len = static_cast<std::uint32_t>(p.cmdline.size());
    if (!p.comm.empty()) std::memcpy(r.comm, p.comm.data(), std::min(p.comm.size(), sizeof(r.comm)));
    put(RecordType::kProcess, flags, &r, sizeof(r), p.cmdline.data(), p.cmdline.size());
  }
  void section(std::uint64_t start, std::uint64_t end, const char (&perms)[5], std::uint64_t offset,
               const std::string& path) {
    SectionRecord r{};
    r.start = start;
    r.end = end;
    r.offset = offset;
    std::memcpy(r.perms, perms, 4);
    r.path_len = static_cast<std::uint32_t>(path.size());
    put(RecordType::kSection, 0, &r, sizeof(r), path.data(), path.size());
  }
  // Encodes `runs` (ascending, contiguous within a chunk's span) into chunks, starting a new chunk
  // at a gap or when one is full.
  void pagemap(std::span<const DecodedRun> runs, std::uint64_t mapped_pages, std::uint16_t flags = 0) {
    std::vector<RleChunk> chunks;
    std::uint64_t present = 0, swapped = 0, next = ~0ULL;
    for (const auto& run : runs) {
      if (chunks.empty() || chunks.back().num_runs == kRunsPerChunk || run.first_page != next) {
        RleChunk c{};
        c.magic = kRleMagic;
        c.magic_end = kRleMagicEnd;
        c.base_page = run.first_page;
        chunks.push_back(c);
      }
      RleChunk& c = chunks.back();
      c.runs[c.num_runs++] = Run{static_cast<std::uint32_t>(run.type), static_cast<std::uint32_t>(run.length), run.value};
      c.pages += static_cast<std::uint32_t>(run.length);
      next = run.first_page + run.length;
      if (run.type == RunType::kPresent) present += run.length;
      if (run.type == RunType::kSwapped) swapped += run.length;
    }
    PagemapRecord r{};
    r.chunk_count = static_cast<std::uint32_t>(chunks.size());
    r.mapped_pages = mapped_pages;
    r.window_pages = mapped_pages;
    r.present_pages = present;
    r.swapped_pages = swapped;
    put(RecordType::kPagemap, flags, &r, sizeof(r), chunks.data(), chunks.size() * sizeof(RleChunk));
  }
  [[nodiscard]] const std::vector<std::byte>& bytes() const { return bytes_; }
  void clear() { bytes_.clear(); }

 private:
  void put(RecordType type, std::uint16_t flags, void* fixed, std::size_t fixed_size, const void* tail,
           std::size_t tail_size) {
    auto* h = static_cast<RecordHeader*>(fixed);
    h->type = static_cast<std::uint16_t>(type);
    h->flags = flags;
    h->size = static_cast<std::uint32_t>((fixed_size + tail_size + 7) / 8 * 8);
    const std::size_t at = bytes_.size();
    bytes_.resize(at + h->size);
    std::memcpy(bytes_.data() + at, fixed, fixed_size);
    if (tail_size != 0) std::memcpy(bytes_.data() + at + fixed_size, tail, tail_size);
  }
  std::vector<std::byte> bytes_;
};

class AreaWriter {
 public:
  // `page_pas[i]`: the guest-physical address (= offset into `ram`) of area page i.
  AreaWriter(std::span<std::byte> ram, std::vector<std::uint64_t> page_pas, std::uint64_t session_id)
      : ram_(ram), pas_(std::move(page_pas)), session_(session_id) {
    table_pages_ = static_cast<std::uint32_t>((pas_.size() + kTableEntriesPerPage - 1) / kTableEntriesPerPage);
    next_free_ = 1 + table_pages_;
    table_slot_ = add_block(BlockType::kPageTable, table_pages_, 0, 1);
  }

  // Allots `pages` area pages to a new directory slot (its first_page is the next free page).
  std::uint32_t add_block(BlockType type, std::uint32_t pages, std::uint32_t camera = 0, std::uint32_t first = 0) {
    std::uint32_t slot = master_.block_count++;
    DirectoryEntry& e = master_.directory[slot];
    e.block_type = static_cast<std::uint32_t>(type);
    e.status = static_cast<std::uint32_t>(BlockStatus::kValidating);
    e.first_page = first != 0 ? first : next_free_;
    if (first == 0) next_free_ += pages;
    e.page_count = pages;
    e.camera = camera;
    e.first_page_pa = pas_.at(e.first_page);
    generations_.resize(kMaxBlocks, 0);
    return slot;
  }

  // Writes one new generation of block `slot`, pages in order, each header (checksum 0), payload,
  // final header; then marks it active in the directory (not published until write_master()).
  void write_block(std::uint32_t slot, std::span<const std::byte> content, std::uint64_t timestamp_ns) {
    DirectoryEntry& e = master_.directory[slot];
    const std::uint32_t gen = ++generations_[slot];
    const auto pages = static_cast<std::uint32_t>(std::max<std::size_t>(1, (content.size() + kPagePayload - 1) / kPagePayload));
    if (pages > e.page_count) throw std::runtime_error("test block too small");
    for (std::uint32_t i = 0; i < pages; ++i) {
      const std::size_t at = std::size_t{i} * kPagePayload;
      const std::size_t n = std::min(kPagePayload, content.size() - std::min(content.size(), at));
      PageHeader h{kMagic, kProtocolVersion, static_cast<std::uint16_t>(e.block_type), slot, i, pages, gen,
                   static_cast<std::uint32_t>(n), 0, timestamp_ns};
      write_page(pas_[e.first_page + i], h, content.subspan(std::min(content.size(), at), n));
    }
    e.status = static_cast<std::uint32_t>(BlockStatus::kActive);
    e.last_valid_generation = gen;
  }

  void write_table() {
    std::vector<std::byte> bytes(pas_.size() * 8);
    std::memcpy(bytes.data(), pas_.data(), bytes.size());
    write_block(table_slot_, bytes, 1);
  }

  void write_master(std::uint64_t cycle, std::uint64_t last_cycle_ns, std::uint32_t flags = kMasterRamFile) {
    std::memcpy(master_.discovery, kDiscoveryPattern, sizeof(kDiscoveryPattern));
    master_.protocol_version = kProtocolVersion;
    master_.companion_pid = 1;
    master_.session_id = session_;
    master_.area_pages = static_cast<std::uint32_t>(pas_.size());
    master_.table_pages = table_pages_;
    master_.flags = flags;
    master_.cycle_interval_us = 10000;
    master_.cycle = cycle;
    master_.last_cycle_ns = last_cycle_ns;
    master_.camera_count = kMaxCameras;
    PageHeader h{kMagic, kProtocolVersion, static_cast<std::uint16_t>(BlockType::kMaster), 0, 0, 1,
                 static_cast<std::uint32_t>(cycle), sizeof(MasterPayload), 0, last_cycle_ns};
    write_page(pas_[0], h, std::as_bytes(std::span(&master_, 1)));
  }

  MasterPayload& master() { return master_; }
  [[nodiscard]] CameraRequest request(std::size_t i) const {
    CameraRequest r;
    std::memcpy(&r, ram_.data() + pas_[0] + kCameraRequestOffset + i * sizeof(CameraRequest), sizeof(r));
    return r;
  }
  [[nodiscard]] std::uint64_t master_pa() const { return pas_[0]; }
  [[nodiscard]] std::uint64_t page_pa(std::uint32_t i) const { return pas_[i]; }

  // Destroys the master page's magic (the companion exited and its memory was reused).
  void erase_master() { std::memset(ram_.data() + pas_[0], 0, kPageSize); }

 private:
  void write_page(std::uint64_t pa, PageHeader h, std::span<const std::byte> payload) {
    std::byte* page = ram_.data() + pa;
    const std::uint32_t sum = page_checksum(h, payload);
    h.checksum = 0;
    std::memcpy(page, &h, sizeof(h));
    std::atomic_thread_fence(std::memory_order_release);
    if (!payload.empty()) std::memcpy(page + sizeof(PageHeader), payload.data(), payload.size());
    std::atomic_thread_fence(std::memory_order_release);
    h.checksum = sum;
    std::memcpy(page, &h, sizeof(h));
  }

  std::span<std::byte> ram_;
  std::vector<std::uint64_t> pas_;
  std::uint64_t session_;
  std::uint32_t table_pages_ = 0;
  std::uint32_t next_free_ = 0;
  std::uint32_t table_slot_ = 0;
  MasterPayload master_{};
  std::vector<std::uint32_t> generations_ = std::vector<std::uint32_t>(kMaxBlocks, 0);
};

}  // namespace haywire::beacon::testing
