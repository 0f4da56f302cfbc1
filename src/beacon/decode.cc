// Page verification, seqlock block copies and the record stream (decode.h).
#include "haywire/beacon/decode.h"

#include <algorithm>
#include <atomic>
#include <cstring>

namespace haywire::beacon {

std::string_view describe(Invalid why) {
  switch (why) {
    case Invalid::kTooShort: return "truncated";
    case Invalid::kBadMagic: return "bad magic";
    case Invalid::kVersion: return "unsupported protocol version";
    case Invalid::kType: return "wrong block type";
    case Invalid::kBlockId: return "wrong block id";
    case Invalid::kPageIndex: return "wrong page index";
    case Invalid::kBlockPages: return "bad block page count";
    case Invalid::kDataSize: return "data size past the page";
    case Invalid::kChecksum: return "checksum mismatch";
    case Invalid::kInProgress: return "being rewritten";
    case Invalid::kGeneration: return "older than the valid generation";
    case Invalid::kRecord: return "malformed record";
    case Invalid::kRecordOrder: return "record out of place";
    case Invalid::kString: return "string past its record";
    case Invalid::kRle: return "malformed RLE chunk";
    case Invalid::kRleOrder: return "RLE chunks out of order";
    case Invalid::kPagemapTotals: return "pagemap totals disagree with runs";
    case Invalid::kTable: return "bad page-address table entry";
  }
  return "invalid";
}

namespace {

// memcpy that accepts empty (possibly null) ranges.
void copy_bytes(void* dst, const void* src, std::size_t n) {
  if (n != 0) std::memcpy(dst, src, n);
}

template <class T>
T load(const std::byte* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

std::optional<Invalid> check_header(const PageHeader& h, const PageExpect& expect) {
  if (h.magic != kMagic) return Invalid::kBadMagic;
  if (h.version != kProtocolVersion) return Invalid::kVersion;
  if (expect.type && h.block_type != static_cast<std::uint16_t>(*expect.type)) return Invalid::kType;
  if (expect.block_id && h.block_id != *expect.block_id) return Invalid::kBlockId;
  if (expect.page_index && h.page_index != *expect.page_index) return Invalid::kPageIndex;
  if (h.block_pages == 0 || h.block_pages > expect.max_block_pages || h.page_index >= h.block_pages)
    return Invalid::kBlockPages;
  if (h.data_size > kPagePayload) return Invalid::kDataSize;
  return std::nullopt;
}

}  // namespace

Decoded<PageHeader> verify_page(std::span<const std::byte> page, const PageExpect& expect) {
  if (page.size() < kPageSize) return std::unexpected(Invalid::kTooShort);
  auto h = load<PageHeader>(page.data());
  if (auto bad = check_header(h, expect)) return std::unexpected(*bad);
  if (page_checksum(h, page.subspan(sizeof(PageHeader), h.data_size)) != h.checksum)
    return std::unexpected(Invalid::kChecksum);
  return h;
}

Decoded<PageHeader> copy_page(std::span<const std::byte> live, const PageExpect& expect,
                              std::vector<std::byte>& payload) {
  payload.clear();
  if (live.size() < kPageSize) return std::unexpected(Invalid::kTooShort);
  const auto before = load<PageHeader>(live.data());
  if (auto bad = check_header(before, expect)) return std::unexpected(*bad);
  payload.resize(before.data_size);
  std::atomic_thread_fence(std::memory_order_acquire);
  copy_bytes(payload.data(), live.data() + sizeof(PageHeader), before.data_size);
  std::atomic_thread_fence(std::memory_order_acquire);
  const auto after = load<PageHeader>(live.data());
  if (std::memcmp(&before, &after, sizeof(PageHeader)) != 0) return std::unexpected(Invalid::kInProgress);
  if (page_checksum(before, payload) != before.checksum) return std::unexpected(Invalid::kChecksum);
  return before;
}

Decoded<void> copy_block(std::span<const std::span<const std::byte>> pages, const BlockExpect& expect,
                         BlockCopy& out) {
  out.content.clear();
  if (pages.empty()) return std::unexpected(Invalid::kTooShort);
  const auto allotted = static_cast<std::uint32_t>(std::min<std::size_t>(pages.size(), kMaxBlockPages));
  PageHeader first{};
  for (std::uint32_t i = 0; i < allotted; ++i) {
    const auto page = pages[i];
    if (page.size() < kPageSize) return std::unexpected(Invalid::kTooShort);
    // Seqlock read: the companion rewrites header, payload, header; equal headers on both sides
    // of the payload copy plus a verifying checksum mean the payload is one generation's.
    const auto before = load<PageHeader>(page.data());
    PageExpect want{.type = expect.type, .block_id = expect.block_id, .page_index = i, .max_block_pages = allotted};
    if (auto bad = check_header(before, want)) {
      // Page 0 verified, a later page does not: that is what a rewrite that has not reached
      // this page yet looks like, whether the page holds another generation's header or was
      // never written (a block growing into fresh pages reads zeros there). Callers retry a
      // bounded number of times, so a page that stays broken ends as a stale block.
      return std::unexpected(i > 0 ? Invalid::kInProgress : *bad);
    }
    if (i == 0) {
      first = before;
      if (expect.min_generation != 0 && static_cast<std::int32_t>(first.generation - expect.min_generation) < 0)
        return std::unexpected(Invalid::kGeneration);
    } else if (before.generation != first.generation || before.block_pages != first.block_pages ||
               before.timestamp_ns != first.timestamp_ns) {
      return std::unexpected(Invalid::kInProgress);
    }
    const std::size_t at = out.content.size();
    out.content.resize(at + before.data_size);
    std::atomic_thread_fence(std::memory_order_acquire);
    copy_bytes(out.content.data() + at, page.data() + sizeof(PageHeader), before.data_size);
    std::atomic_thread_fence(std::memory_order_acquire);
    const auto after = load<PageHeader>(page.data());
    if (std::memcmp(&before, &after, sizeof(PageHeader)) != 0) return std::unexpected(Invalid::kInProgress);
    auto copied = std::span<const std::byte>(out.content).subspan(at, before.data_size);
    if (page_checksum(before, copied) != before.checksum) return std::unexpected(Invalid::kChecksum);
    if (i + 1 == first.block_pages) break;
  }
  if (first.block_pages > allotted) return std::unexpected(Invalid::kBlockPages);
  // Page 0 again: a rewrite that started after page 0 was copied and finished before the last
  // page was reached would otherwise pass (every page would carry the new generation but
  // page 0's payload the old one).
  std::atomic_thread_fence(std::memory_order_acquire);
  const auto again = load<PageHeader>(pages[0].data());
  if (std::memcmp(&again, &first, sizeof(PageHeader)) != 0) return std::unexpected(Invalid::kInProgress);
  out.type = static_cast<BlockType>(first.block_type);
  out.block_id = first.block_id;
  out.generation = first.generation;
  out.block_pages = first.block_pages;
  out.timestamp_ns = first.timestamp_ns;
  return {};
}

std::string guest_string(std::span<const std::byte> bytes, std::size_t max, bool stop_at_nul) {
  std::size_t n = std::min(bytes.size(), max);
  if (stop_at_nul && n != 0)
    if (const void* nul = std::memchr(bytes.data(), 0, n)) n = static_cast<std::size_t>(static_cast<const std::byte*>(nul) - bytes.data());
  std::string s(n, '\0');
  copy_bytes(s.data(), bytes.data(), n);
  for (char& c : s) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7f) c = '?';
  }
  return s;
}

namespace {

constexpr std::size_t kMaxCmdline = 4096;
constexpr std::size_t kMaxPath = 4096;

Decoded<Process> parse_process(std::span<const std::byte> rec, std::uint16_t flags) {
  if (rec.size() < sizeof(ProcessRecord)) return std::unexpected(Invalid::kRecord);
  auto r = load<ProcessRecord>(rec.data());
  if (r.cmdline_len > rec.size() - sizeof(ProcessRecord)) return std::unexpected(Invalid::kString);
  Process p;
  p.pid = r.pid;
  p.ppid = r.ppid;
  p.uid = r.uid;
  p.gid = r.gid;
  p.threads = r.threads;
  auto st = static_cast<unsigned char>(r.state);
  p.state = st >= 0x20 && st < 0x7f ? r.state : '?';
  p.flags = flags;
  p.rss_kb = r.rss_kb;
  p.vsize_kb = r.vsize_kb;
  p.collected_ns = r.collected_ns;
  p.cycle = r.cycle;
  p.comm = guest_string(std::as_bytes(std::span(r.comm)), sizeof(r.comm), true);
  p.cmdline = guest_string(rec.subspan(sizeof(ProcessRecord), r.cmdline_len), kMaxCmdline, false);
  // Trailing separators of a NUL-terminated argv.
  while (!p.cmdline.empty() && p.cmdline.back() == ' ') p.cmdline.pop_back();
  p.sections.reserve(std::min<std::size_t>(r.section_count, 64));
  return p;
}

Decoded<Section> parse_section(std::span<const std::byte> rec) {
  if (rec.size() < sizeof(SectionRecord)) return std::unexpected(Invalid::kRecord);
  auto r = load<SectionRecord>(rec.data());
  if (r.path_len > rec.size() - sizeof(SectionRecord)) return std::unexpected(Invalid::kString);
  Section s;
  s.start = r.start;
  s.end = r.end;
  s.offset = r.offset;
  s.inode = r.inode;
  s.dev_major = r.dev_major;
  s.dev_minor = r.dev_minor;
  s.perms = guest_string(std::as_bytes(std::span(r.perms)), 4, false);
  s.path = guest_string(rec.subspan(sizeof(SectionRecord), r.path_len), kMaxPath, true);
  return s;
}

Decoded<Pagemap> parse_pagemap(std::span<const std::byte> rec, std::uint16_t flags) {
  if (rec.size() < sizeof(PagemapRecord)) return std::unexpected(Invalid::kRecord);
  auto r = load<PagemapRecord>(rec.data());
  const std::size_t room = (rec.size() - sizeof(PagemapRecord)) / sizeof(RleChunk);
  if (r.chunk_count > room) return std::unexpected(Invalid::kRecord);
  auto runs = decode_rle(rec.subspan(sizeof(PagemapRecord)), r.chunk_count);
  if (!runs) return std::unexpected(runs.error());
  Pagemap m;
  m.flags = flags;
  m.window_start_page = r.window_start_page;
  m.window_pages = r.window_pages;
  m.mapped_pages = r.mapped_pages;
  m.present_pages = r.present_pages;
  m.swapped_pages = r.swapped_pages;
  m.encoded_bytes = sizeof(PagemapRecord) + std::uint64_t{r.chunk_count} * sizeof(RleChunk);
  std::uint64_t present = 0, swapped = 0, covered = 0;
  for (const auto& run : *runs) {
    covered += run.length;
    if (run.type == RunType::kPresent) present += run.length;
    if (run.type == RunType::kSwapped) swapped += run.length;
  }
  if (present != r.present_pages || swapped != r.swapped_pages) return std::unexpected(Invalid::kPagemapTotals);
  m.covered_pages = covered;
  m.runs = std::move(*runs);
  return m;
}

}  // namespace

Decoded<BlockContent> parse_records(std::span<const std::byte> content) {
  BlockContent out;
  std::size_t at = 0;
  std::uint32_t sections_left = 0;
  Process* current = nullptr;
  // Each record is at least 8 bytes, so the loop runs at most content.size() / 8 times.
  while (at + sizeof(RecordHeader) <= content.size()) {
    auto h = load<RecordHeader>(content.data() + at);
    if (h.type == static_cast<std::uint16_t>(RecordType::kEnd)) break;
    if (h.size < sizeof(RecordHeader) || h.size % 8 != 0 || h.size > content.size() - at)
      return std::unexpected(Invalid::kRecord);
    auto rec = content.subspan(at, h.size);
    switch (static_cast<RecordType>(h.type)) {
      case RecordType::kPidList: {
        if (out.pid_list || rec.size() < sizeof(PidListRecord)) return std::unexpected(Invalid::kRecord);
        auto r = load<PidListRecord>(rec.data());
        if (r.count > (rec.size() - sizeof(PidListRecord)) / 4) return std::unexpected(Invalid::kRecord);
        PidList list;
        list.total = r.total;
        list.cycle = r.cycle;
        list.pids.resize(r.count);
        copy_bytes(list.pids.data(), rec.data() + sizeof(PidListRecord), std::size_t{r.count} * 4);
        out.pid_list = std::move(list);
        current = nullptr;
        break;
      }
      case RecordType::kProcess: {
        // Fewer sections than the previous process announced is accepted (it may have
        // unmapped some while being read); its count ends here.
        auto p = parse_process(rec, h.flags);
        if (!p) return std::unexpected(p.error());
        sections_left = load<ProcessRecord>(rec.data()).section_count;
        out.processes.push_back(std::move(*p));
        current = &out.processes.back();
        break;
      }
      case RecordType::kSection: {
        if (current == nullptr || sections_left == 0) return std::unexpected(Invalid::kRecordOrder);
        auto s = parse_section(rec);
        if (!s) return std::unexpected(s.error());
        current->sections.push_back(std::move(*s));
        --sections_left;
        break;
      }
      case RecordType::kPagemap: {
        if (current == nullptr || current->pagemap) return std::unexpected(Invalid::kRecordOrder);
        auto m = parse_pagemap(rec, h.flags);
        if (!m) return std::unexpected(m.error());
        current->pagemap = std::move(*m);
        sections_left = 0;
        break;
      }
      default:
        return std::unexpected(Invalid::kRecord);
    }
    at += h.size;
  }
  return out;
}

Decoded<std::vector<std::uint64_t>> decode_table_page(std::span<const std::byte> payload) {
  if (payload.size() % 8 != 0) return std::unexpected(Invalid::kTable);
  std::vector<std::uint64_t> out(payload.size() / 8);
  copy_bytes(out.data(), payload.data(), payload.size());
  for (auto pa : out)
    if (pa % kPageSize != 0) return std::unexpected(Invalid::kTable);
  return out;
}

}  // namespace haywire::beacon
