#include "beacon/companion/records.h"

#include <algorithm>
#include <cstring>

#include "haywire/beacon/companion.h"

namespace haywire::beacon::companion {
namespace {

template <class T>
void put(ContentBuffer& out, std::size_t offset, const T& value) {
  std::memcpy(out.at(offset), &value, sizeof value);
}

}  // namespace

void ContentBuffer::finish() {
  RecordHeader end{.type = static_cast<std::uint16_t>(RecordType::kEnd), .flags = 0, .size = sizeof(RecordHeader)};
  append(std::as_bytes(std::span(&end, 1)));
}

std::size_t encode_pid_list(ContentBuffer& out, std::span<const std::uint32_t> pids, std::uint64_t cycle) {
  if (out.room() < sizeof(PidListRecord)) return 0;
  std::size_t fit = std::min(pids.size(), (out.room() - sizeof(PidListRecord)) / 4);
  std::uint32_t size = padded_size(sizeof(PidListRecord) + fit * 4);
  if (size > out.room()) --fit, size = padded_size(sizeof(PidListRecord) + fit * 4);
  PidListRecord rec{};
  rec.header = {static_cast<std::uint16_t>(RecordType::kPidList), 0, size};
  rec.count = static_cast<std::uint32_t>(fit);
  rec.total = static_cast<std::uint32_t>(pids.size());
  rec.cycle = cycle;
  std::size_t at = out.size();
  out.append(std::as_bytes(std::span(&rec, 1)));
  out.append(std::as_bytes(pids.first(fit)));
  out.resize(at + size);
  return fit;
}

bool encode_process(ContentBuffer& out, const ProcessInfo& info, std::span<const Section> sections,
                    std::uint16_t flags, std::uint64_t collected_ns, std::uint64_t cycle) {
  std::size_t cmd_len = std::min(info.cmdline.size(), kMaxCmdline);
  std::uint32_t size = padded_size(sizeof(ProcessRecord) + cmd_len);
  if (size > out.room()) return false;
  std::size_t at = out.size();
  ProcessRecord rec{};
  rec.header = {static_cast<std::uint16_t>(RecordType::kProcess), flags, size};
  rec.pid = info.pid;
  rec.ppid = info.ppid;
  rec.uid = info.uid;
  rec.gid = info.gid;
  rec.threads = info.threads;
  rec.state = info.state;
  rec.rss_kb = info.rss_kb;
  rec.vsize_kb = info.vsize_kb;
  rec.collected_ns = collected_ns;
  rec.cycle = cycle;
  rec.cmdline_len = static_cast<std::uint32_t>(cmd_len);
  std::memcpy(rec.comm, info.comm, sizeof rec.comm);
  if (info.kernel_thread) rec.header.flags |= kProcessKernelThread;
  out.append(std::as_bytes(std::span(&rec, 1)));
  out.append(std::as_bytes(std::span(info.cmdline.data(), cmd_len)));
  out.resize(at + size);

  std::uint32_t written = 0;
  for (const Section& s : sections) {
    std::size_t path_len = std::min(s.path.size(), kMaxPath);
    std::uint32_t ssize = padded_size(sizeof(SectionRecord) + path_len);
    if (ssize > out.room()) {
      rec.header.flags |= kProcessSectionsTruncated;
      break;
    }
    std::size_t sat = out.size();
    SectionRecord sr{};
    sr.header = {static_cast<std::uint16_t>(RecordType::kSection), 0, ssize};
    sr.start = s.start;
    sr.end = s.end;
    sr.offset = s.offset;
    sr.inode = s.inode;
    sr.dev_major = s.dev_major;
    sr.dev_minor = s.dev_minor;
    std::memcpy(sr.perms, s.perms, 4);
    sr.path_len = static_cast<std::uint32_t>(path_len);
    out.append(std::as_bytes(std::span(&sr, 1)));
    out.append(std::as_bytes(std::span(s.path.data(), path_len)));
    out.resize(sat + ssize);
    ++written;
  }
  rec.section_count = written;
  put(out, at, rec);
  return true;
}

void encode_pagemap(ContentBuffer& out, PagemapSummary summary, std::span<const RleChunk> chunks) {
  if (out.room() < sizeof(PagemapRecord)) return;
  std::size_t fit = std::min(chunks.size(), (out.room() - sizeof(PagemapRecord)) / sizeof(RleChunk));
  PagemapRecord rec{};
  rec.header = {static_cast<std::uint16_t>(RecordType::kPagemap), summary.flags,
                static_cast<std::uint32_t>(sizeof(PagemapRecord) + fit * sizeof(RleChunk))};
  if (fit < chunks.size()) {
    rec.header.flags |= kPagemapTruncated;
    // Counts describe what the record holds.
    summary.present_pages = summary.swapped_pages = 0;
    for (const RleChunk& c : chunks.first(fit)) {
      for (std::uint32_t r = 0; r < c.num_runs; ++r) {
        if (c.runs[r].type == static_cast<std::uint32_t>(RunType::kPresent)) summary.present_pages += c.runs[r].length;
        if (c.runs[r].type == static_cast<std::uint32_t>(RunType::kSwapped)) summary.swapped_pages += c.runs[r].length;
      }
    }
  }
  rec.chunk_count = static_cast<std::uint32_t>(fit);
  rec.window_start_page = summary.window_start_page;
  rec.window_pages = summary.window_pages;
  rec.mapped_pages = summary.mapped_pages;
  rec.present_pages = summary.present_pages;
  rec.swapped_pages = summary.swapped_pages;
  out.append(std::as_bytes(std::span(&rec, 1)));
  out.append(std::as_bytes(chunks.first(fit)));
}

// ---- RLE ------------------------------------------------------------------------------------
namespace {
constexpr std::uint64_t kPmPresent = 1ULL << 63;
constexpr std::uint64_t kPmSwapped = 1ULL << 62;
constexpr std::uint64_t kPmPfnMask = (1ULL << 55) - 1;

Run classify(std::uint64_t e) {
  if (e & kPmPresent) return {static_cast<std::uint32_t>(RunType::kPresent), 1, e & kPmPfnMask};
  if (e & kPmSwapped) {
    std::uint64_t type = e & 0x1f;
    std::uint64_t offset = (e & kPmPfnMask) >> 5;
    return {static_cast<std::uint32_t>(RunType::kSwapped), 1, (type << 50) | offset};
  }
  return {static_cast<std::uint32_t>(RunType::kEmpty), 1, 0};
}
}  // namespace

}  // namespace haywire::beacon::companion

namespace haywire::beacon {

using companion::classify;

void RleEncoder::push_run(const Run& run, std::uint64_t run_base_page) {
  RleChunk* chunk = out_.empty() ? nullptr : &out_.back();
  bool continues = chunk != nullptr && open_ && chunk->num_runs < kRunsPerChunk &&
                   chunk->base_page + chunk->pages == run_base_page;
  if (!continues) {
    out_.emplace_back();
    chunk = &out_.back();
    std::memset(static_cast<void*>(chunk), 0, sizeof *chunk);
    chunk->magic = kRleMagic;
    chunk->magic_end = kRleMagicEnd;
    chunk->base_page = run_base_page;
    open_ = true;
  }
  chunk->runs[chunk->num_runs++] = run;
  chunk->pages += run.length;
  ++runs_;
}

std::size_t RleEncoder::add(std::uint64_t base_page, std::span<const std::uint64_t> entries) {
  std::size_t before = runs_;
  bool have = pending_.length != 0;
  if (have && next_page_ != base_page) {
    if (base_page > next_page_ && base_page - next_page_ <= kBridgeGapPages) {
      // A small gap between sections (guard pages, alignment holes): an EMPTY run keeps the
      // chunk going, instead of a new 1 KiB chunk per section. Readers count only pages
      // inside the process's sections as pagemap bytes saved.
      const std::uint64_t gap = base_page - next_page_;
      if (pending_.type == static_cast<std::uint32_t>(RunType::kEmpty) && pending_.length + gap <= UINT32_MAX) {
        pending_.length += static_cast<std::uint32_t>(gap);
      } else {
        push_run(pending_, pending_base_);
        pending_ = Run{static_cast<std::uint32_t>(RunType::kEmpty), static_cast<std::uint32_t>(gap), 0};
        pending_base_ = next_page_;
      }
      next_page_ = base_page;
    } else {
      push_run(pending_, pending_base_);
      pending_ = {};
      have = false;
      open_ = false;  // a large gap: the next run starts a new chunk
    }
  }
  for (std::size_t i = 0; i < entries.size(); ++i) {
    Run r = classify(entries[i]);
    if (r.type == static_cast<std::uint32_t>(RunType::kPresent)) ++present_;
    if (r.type == static_cast<std::uint32_t>(RunType::kSwapped)) ++swapped_;
    if (!frames_ && r.type == static_cast<std::uint32_t>(RunType::kPresent)) r.value = 0;
    if (have && r.type == pending_.type && pending_.length < UINT32_MAX) {
      std::uint64_t expect = pending_.value;
      if (r.type == static_cast<std::uint32_t>(RunType::kPresent) && frames_) expect += pending_.length;
      if (r.type == static_cast<std::uint32_t>(RunType::kSwapped)) expect += pending_.length;
      if (r.value == expect) {
        ++pending_.length;
        continue;
      }
    }
    if (have) push_run(pending_, pending_base_);
    pending_ = r;
    pending_base_ = base_page + i;
    have = true;
  }
  next_page_ = base_page + entries.size();
  return runs_ - before;
}

void RleEncoder::finish() {
  if (pending_.length != 0) push_run(pending_, pending_base_);
  pending_ = {};
  open_ = false;
}

bool decode_rle_chunks(std::span<const RleChunk> chunks, std::vector<DecodedPage>& out) {
  for (const RleChunk& c : chunks) {
    if (c.magic != kRleMagic || c.magic_end != kRleMagicEnd || c.num_runs > kRunsPerChunk) return false;
    std::uint64_t page = c.base_page;
    std::uint64_t total = 0;
    for (std::uint32_t r = 0; r < c.num_runs; ++r) {
      const Run& run = c.runs[r];
      if (run.length == 0 || run.type > static_cast<std::uint32_t>(RunType::kSwapped)) return false;
      total += run.length;
      if (total > (1u << 26)) return false;  // bound what a test decodes
      for (std::uint32_t i = 0; i < run.length; ++i) {
        std::uint64_t v = run.value;
        if (run.type != static_cast<std::uint32_t>(RunType::kEmpty) && v != 0) v += i;
        out.push_back({page++, static_cast<RunType>(run.type), v});
      }
    }
    if (total != c.pages) return false;
  }
  return true;
}

}  // namespace haywire::beacon
