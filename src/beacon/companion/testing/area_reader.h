// A small, strict reader of a beacon area for the companion's own tests: checks every page
// header and checksum and splits block content into records. It is not the host reader
// (haywire_beacon): it trusts sizes only after bounds checks and stops at the first problem.
#pragma once

#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "haywire/beacon/protocol.h"

namespace haywire::beacon::testing {

template <class T>
T load(std::span<const std::byte> bytes, std::size_t offset) {
  T v{};
  if (offset + sizeof(T) <= bytes.size()) std::memcpy(&v, bytes.data() + offset, sizeof(T));
  return v;
}

inline std::optional<MasterPayload> read_master(std::span<const std::byte> area, PageHeader* header_out = nullptr) {
  if (area.size() < kPageSize) return std::nullopt;
  auto h = load<PageHeader>(area, 0);
  if (h.magic != kMagic || h.block_type != static_cast<std::uint16_t>(BlockType::kMaster) ||
      h.data_size != sizeof(MasterPayload))
    return std::nullopt;
  if (h.checksum != page_checksum(h, area.subspan(sizeof(PageHeader), sizeof(MasterPayload)))) return std::nullopt;
  auto m = load<MasterPayload>(area, sizeof(PageHeader));
  if (std::memcmp(m.discovery, kDiscoveryPattern, sizeof m.discovery) != 0) return std::nullopt;
  if (header_out != nullptr) *header_out = h;
  return m;
}

struct BlockContent {
  std::vector<std::byte> bytes;
  std::uint32_t generation = 0;
  std::uint64_t timestamp_ns = 0;
};

// Every page of the block must carry one generation, its index, the block's id and a valid
// checksum; the content is the concatenation of the payloads.
inline std::optional<BlockContent> read_block(std::span<const std::byte> area, const DirectoryEntry& e, std::uint32_t slot,
                                              std::string* why = nullptr) {
  auto bad = [&](const std::string& w) -> std::optional<BlockContent> {
    if (why != nullptr) *why = w;
    return std::nullopt;
  };
  std::size_t first = std::size_t{e.first_page} * kPageSize;
  if (e.page_count == 0 || first + std::size_t{e.page_count} * kPageSize > area.size()) return bad("outside the area");
  auto h0 = load<PageHeader>(area, first);
  if (h0.block_pages == 0 || h0.block_pages > e.page_count) return bad("bad block_pages");
  BlockContent out;
  out.generation = h0.generation;
  out.timestamp_ns = h0.timestamp_ns;
  for (std::uint32_t i = 0; i < h0.block_pages; ++i) {
    std::size_t at = first + std::size_t{i} * kPageSize;
    auto h = load<PageHeader>(area, at);
    if (h.magic != kMagic || h.block_id != slot || h.page_index != i || h.generation != h0.generation ||
        h.block_pages != h0.block_pages || h.block_type != e.block_type || h.data_size > kPagePayload)
      return bad("inconsistent header on page " + std::to_string(i));
    auto payload = area.subspan(at + sizeof(PageHeader), h.data_size);
    if (h.checksum != page_checksum(h, payload)) return bad("checksum on page " + std::to_string(i));
    out.bytes.insert(out.bytes.end(), payload.begin(), payload.end());
  }
  return out;
}

struct ParsedProcess {
  ProcessRecord record{};
  std::string cmdline;
  std::vector<std::pair<SectionRecord, std::string>> sections;
};

struct ParsedRecords {
  std::vector<std::uint32_t> pids;
  PidListRecord pid_list{};
  std::vector<ParsedProcess> processes;
  std::optional<PagemapRecord> pagemap;
  std::vector<RleChunk> chunks;
  bool ended = false;
};

inline std::optional<ParsedRecords> parse_records(std::span<const std::byte> content, std::string* why = nullptr) {
  ParsedRecords out;
  std::size_t at = 0;
  while (at + sizeof(RecordHeader) <= content.size()) {
    auto rh = load<RecordHeader>(content, at);
    if (rh.size < sizeof(RecordHeader) || rh.size % 8 != 0 || at + rh.size > content.size()) {
      if (why != nullptr) *why = "bad record size at " + std::to_string(at);
      return std::nullopt;
    }
    auto rec = content.subspan(at, rh.size);
    switch (static_cast<RecordType>(rh.type)) {
      case RecordType::kEnd:
        out.ended = true;
        return out;
      case RecordType::kPidList: {
        auto r = load<PidListRecord>(rec, 0);
        if (sizeof(PidListRecord) + std::size_t{r.count} * 4 > rh.size) return std::nullopt;
        out.pid_list = r;
        for (std::uint32_t i = 0; i < r.count; ++i) out.pids.push_back(load<std::uint32_t>(rec, sizeof(PidListRecord) + 4 * i));
        break;
      }
      case RecordType::kProcess: {
        ParsedProcess p;
        p.record = load<ProcessRecord>(rec, 0);
        if (sizeof(ProcessRecord) + p.record.cmdline_len > rh.size) return std::nullopt;
        p.cmdline.assign(reinterpret_cast<const char*>(rec.data()) + sizeof(ProcessRecord), p.record.cmdline_len);
        out.processes.push_back(std::move(p));
        break;
      }
      case RecordType::kSection: {
        if (out.processes.empty()) return std::nullopt;
        auto s = load<SectionRecord>(rec, 0);
        if (sizeof(SectionRecord) + s.path_len > rh.size) return std::nullopt;
        out.processes.back().sections.emplace_back(
            s, std::string(reinterpret_cast<const char*>(rec.data()) + sizeof(SectionRecord), s.path_len));
        break;
      }
      case RecordType::kPagemap: {
        auto p = load<PagemapRecord>(rec, 0);
        if (sizeof(PagemapRecord) + std::size_t{p.chunk_count} * sizeof(RleChunk) != rh.size) return std::nullopt;
        out.pagemap = p;
        for (std::uint32_t i = 0; i < p.chunk_count; ++i)
          out.chunks.push_back(load<RleChunk>(rec, sizeof(PagemapRecord) + i * sizeof(RleChunk)));
        break;
      }
      default:
        if (why != nullptr) *why = "unknown record type " + std::to_string(rh.type);
        return std::nullopt;
    }
    at += rh.size;
  }
  return out;
}

}  // namespace haywire::beacon::testing
