// BeaconReader (reader.h): master → page-address table → blocks, last good copies, merging.
#include "haywire/beacon/reader.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <thread>

#include <fmt/format.h>

#include "haywire/guest/writer.h"

namespace haywire::beacon {

using Clock = std::chrono::steady_clock;

std::string_view to_string(Source source) {
  switch (source) {
    case Source::kPidOnly: return "pid-only";
    case Source::kRoundRobin: return "round-robin";
    case Source::kCamera: return "camera";
  }
  return "?";
}

struct BeaconReader::Slot {
  DirectoryEntry entry{};
  bool have = false;  // `copy` and `content` hold a verified generation
  BlockCopy copy;
  BlockContent content;
  Clock::time_point advanced{};  // when `copy.generation` was first read
  std::optional<Invalid> error;  // the last refresh could not read a newer generation
  std::string note;              // directory-level problem ("no address", ...)
  bool hint_mismatch = false;    // first_page_pa disagrees with the page-address table
  BlockCopy scratch;
  std::vector<std::span<const std::byte>> spans;
};

BeaconReader::BeaconReader(const guest::GuestRam& ram, ReaderOptions options) : ram_(&ram), options_(options) {}
BeaconReader::BeaconReader(BeaconReader&&) noexcept = default;
BeaconReader& BeaconReader::operator=(BeaconReader&&) noexcept = default;
BeaconReader::~BeaconReader() = default;

namespace {

Error no_beacon(const ScanStats& stats) {
  return NotFound{fmt::format("beacon (no companion master page in {} MiB of guest RAM)", stats.bytes_scanned >> 20),
                  "is haywire-companion running in the guest? Check its console log (serial.log in the VM's run "
                  "directory) for 'haywire-companion', or start it in the guest: haywire-companion &"};
}

}  // namespace

Result<BeaconReader> BeaconReader::discover(const guest::GuestRam& ram, ReaderOptions options) {
  BeaconReader reader(ram, options);
  ScanStats stats;
  auto masters = scan_for_masters(ram, &stats);
  for (PhysAddr pa : masters)
    if (reader.attach_master(pa)) return reader;
  return std::unexpected(no_beacon(stats));
}

Result<BeaconReader> BeaconReader::discover(const guest::GuestRam& ram, ReaderOptions options, PhysAddr hint) {
  {
    BeaconReader reader(ram, options);
    if (reader.attach_master(hint)) return reader;
  }
  return discover(ram, options);
}

Result<void> BeaconReader::attach_master(PhysAddr pa) {
  auto m = read_master(*ram_, pa);
  if (!m) return fail(NotFound{fmt::format("beacon master at {:#x}: {}", pa.value(), describe(m.error())), ""});
  master_pa_ = pa;
  master_ = std::move(*m);
  master_advanced_ = Clock::now();
  slots_.clear();
  slots_.resize(master_.directory.size());
  table_.clear();
  if (!read_table()) return fail(NotFound{fmt::format("beacon page-address table of master {:#x}", pa.value()), ""});
  for (std::size_t i = 0; i < slots_.size(); ++i) read_block(i);
  return {};
}

// The table is found through its directory entry's first_page_pa; table page 0 lists the
// addresses of area pages 0..506, which include the master and every other table page.
bool BeaconReader::read_table() {
  const DirectoryEntry* entry = nullptr;
  std::uint32_t slot = 0;
  for (std::uint32_t i = 0; i < master_.directory.size(); ++i) {
    if (master_.directory[i].block_type == static_cast<std::uint32_t>(BlockType::kPageTable)) {
      entry = &master_.directory[i];
      slot = i;
      break;
    }
  }
  if (entry == nullptr || entry->page_count != master_.table_pages || entry->first_page != 1) return false;
  auto live0 = ram_->read_pa(PhysAddr(entry->first_page_pa), kPageSize);
  if (!live0) return false;
  std::vector<std::byte> payload;
  auto h0 = copy_page(*live0, PageExpect{.type = BlockType::kPageTable, .block_id = slot, .page_index = 0,
                                         .max_block_pages = master_.table_pages},
                      payload);
  if (!h0) return false;
  auto first = decode_table_page(payload);
  if (!first || first->size() < std::min<std::size_t>(master_.area_pages, kTableEntriesPerPage) ||
      (*first)[0] != master_.pa.value() || (*first)[1] != entry->first_page_pa)
    return false;
  std::vector<std::span<const std::byte>> spans;
  for (std::uint32_t k = 0; k < master_.table_pages; ++k) {
    auto live = ram_->read_pa(PhysAddr((*first)[1 + k]), kPageSize);
    if (!live) return false;
    spans.push_back(*live);
  }
  BlockCopy copy;
  for (int attempt = 0; attempt < std::max(1, options_.retries); ++attempt) {
    auto r = copy_block(spans, BlockExpect{BlockType::kPageTable, slot, 0}, copy);
    if (r) break;
    copy.content.clear();
  }
  auto all = decode_table_page(copy.content);
  if (!all || all->size() < master_.area_pages || (*all)[0] != master_.pa.value()) return false;
  all->resize(master_.area_pages);
  table_ = std::move(*all);
  return true;
}

void BeaconReader::read_block(std::size_t i) {
  Slot& s = slots_[i];
  const DirectoryEntry e = master_.directory[i];
  if (e.block_type != s.entry.block_type || e.first_page != s.entry.first_page || e.camera != s.entry.camera) {
    s.have = false;  // the slot was reassigned: the old copy describes something else
    s.content = {};
  }
  s.entry = e;
  s.note.clear();
  s.error.reset();
  s.hint_mismatch = false;
  const auto type = static_cast<BlockType>(e.block_type);
  if (type == BlockType::kMaster || type == BlockType::kPageTable || type == BlockType::kUnused) return;
  if (type != BlockType::kPids && type != BlockType::kRoundRobin && type != BlockType::kCamera) {
    s.note = fmt::format("unknown block type {}", e.block_type);
    s.have = false;
    return;
  }
  const auto status = static_cast<BlockStatus>(e.status);
  if (status == BlockStatus::kUnused || status == BlockStatus::kInvalid) {
    s.have = false;
    s.content = {};
    s.note = status == BlockStatus::kInvalid ? "invalidated by the companion" : "unused";
    return;
  }
  if (e.page_count == 0 || e.page_count > kMaxBlockPages || e.first_page >= table_.size() ||
      e.page_count > table_.size() - e.first_page) {
    s.note = "directory entry out of the area";
    s.have = false;
    return;
  }
  if (table_[e.first_page] != e.first_page_pa) {
    s.note = "address hint disagrees with the page table";
    s.hint_mismatch = true;
    return;
  }
  s.spans.clear();
  for (std::uint32_t k = 0; k < e.page_count; ++k) {
    const std::uint64_t pa = table_[e.first_page + k];
    auto live = pa == 0 ? Result<std::span<const std::byte>>(fail(InvalidAddress{0, kPageSize, 0}))
                        : ram_->read_pa(PhysAddr(pa), kPageSize);
    if (!live) {
      s.note = pa == 0 ? "page address unknown (companion cannot read physical frames)" : "page address outside guest RAM";
      return;
    }
    s.spans.push_back(*live);
  }
  // Unchanged since the copy we hold: nothing to do (one header read).
  if (s.have) {
    PageHeader h;
    std::memcpy(&h, s.spans[0].data(), sizeof(h));
    if (h.magic == kMagic && h.generation == s.copy.generation && h.timestamp_ns == s.copy.timestamp_ns) return;
  }
  for (int attempt = 0; attempt < std::max(1, options_.retries); ++attempt) {
    if (attempt > 0 && options_.retry_pause.count() > 0) std::this_thread::sleep_for(options_.retry_pause);
    auto r = copy_block(s.spans, BlockExpect{type, static_cast<std::uint32_t>(i), e.last_valid_generation}, s.scratch);
    if (!r) {
      s.error = r.error();
      if (r.error() != Invalid::kInProgress && r.error() != Invalid::kChecksum) break;
      continue;
    }
    auto parsed = parse_records(s.scratch.content);
    if (!parsed) {
      s.error = parsed.error();
      break;
    }
    const bool advanced = !s.have || s.scratch.generation != s.copy.generation;
    std::swap(s.copy, s.scratch);
    s.content = std::move(*parsed);
    s.have = true;
    s.error.reset();
    if (advanced) s.advanced = Clock::now();
    return;
  }
}

Result<void> BeaconReader::refresh() {
  Decoded<MasterInfo> m = std::unexpected(Invalid::kTooShort);
  for (int attempt = 0; attempt < std::max(1, options_.retries); ++attempt) {
    m = read_master(*ram_, master_.pa);
    if (m || (m.error() != Invalid::kInProgress && m.error() != Invalid::kChecksum)) break;
  }
  if (!m || m->session_id != master_.session_id) {
    // The companion restarted or its master is gone: the hints are void.
    ++rescans_;
    ScanStats stats;
    for (PhysAddr pa : scan_for_masters(*ram_, &stats))
      if (attach_master(pa)) return {};
    return std::unexpected(no_beacon(stats));
  }
  if (m->cycle != master_.cycle) master_advanced_ = Clock::now();
  const bool same_shape = m->directory.size() == master_.directory.size();
  master_ = std::move(*m);
  if (!same_shape) slots_.resize(master_.directory.size());
  bool hints_ok = true;
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    read_block(i);
    if (slots_[i].hint_mismatch) hints_ok = false;
  }
  if (!hints_ok && read_table())
    for (std::size_t i = 0; i < slots_.size(); ++i) read_block(i);
  return {};
}

double BeaconReader::master_age_ms() const {
  return std::chrono::duration<double, std::milli>(Clock::now() - master_advanced_).count();
}

double BeaconReader::row_age_ms(const Process& p) const {
  double guest = master_.last_cycle_ns > p.collected_ns ? static_cast<double>(master_.last_cycle_ns - p.collected_ns) / 1e6 : 0.0;
  return guest + master_age_ms();
}

namespace {

std::chrono::milliseconds stale_limit(const ReaderOptions& o, const MasterInfo& m) {
  if (o.stale_after.count() > 0) return o.stale_after;
  auto cycles = std::chrono::milliseconds(std::uint64_t{m.cycle_interval_us} * 50 / 1000);
  return std::max(std::chrono::milliseconds(1000), std::min(cycles, std::chrono::milliseconds(60000)));
}

}  // namespace

std::vector<BlockState> BeaconReader::blocks() const {
  std::vector<BlockState> out;
  const auto limit = stale_limit(options_, master_);
  for (std::size_t i = 0; i < master_.directory.size(); ++i) {
    const DirectoryEntry& e = master_.directory[i];
    BlockState b;
    b.slot = static_cast<std::uint32_t>(i);
    b.type = static_cast<BlockType>(e.block_type);
    b.camera = e.camera;
    b.pages = e.page_count;
    b.last_valid_generation = e.last_valid_generation;
    b.directory_status = static_cast<BlockStatus>(e.status);
    b.first_page_pa = PhysAddr(e.first_page_pa);
    if (b.type == BlockType::kMaster) {
      b.block_pages = 1;
      b.generation = master_.generation;
      b.age_ms = master_age_ms();
      b.stale = master_age_ms() > static_cast<double>(limit.count());
      b.status = b.stale ? "stale: companion not cycling" : "ok";
    } else if (b.type == BlockType::kPageTable) {
      b.block_pages = master_.table_pages;
      b.status = table_.empty() ? "invalid" : "ok";
    } else if (i < slots_.size()) {
      const Slot& s = slots_[i];
      if (s.have) {
        b.block_pages = s.copy.block_pages;
        b.generation = s.copy.generation;
        double since = std::chrono::duration<double, std::milli>(Clock::now() - s.advanced).count();
        b.age_ms = since;
        b.stale = s.error.has_value() || since > static_cast<double>(limit.count());
      }
      if (!s.note.empty()) b.status = s.note;
      else if (s.error) b.status = fmt::format("{}: {}", s.have ? "stale" : "invalid", describe(*s.error));
      else if (!s.have) b.status = "no data";
      else b.status = b.stale ? "stale: generation not advancing" : "ok";
    }
    out.push_back(std::move(b));
  }
  return out;
}

const std::vector<std::uint32_t>& BeaconReader::pids() const {
  static const std::vector<std::uint32_t> kNone;
  for (const Slot& s : slots_)
    if (s.have && s.entry.block_type == static_cast<std::uint32_t>(BlockType::kPids) && s.content.pid_list)
      return s.content.pid_list->pids;
  return kNone;
}

const BeaconReader::Slot* BeaconReader::camera_slot_for(std::uint32_t pid) const {
  for (const Slot& s : slots_)
    if (s.have && s.entry.block_type == static_cast<std::uint32_t>(BlockType::kCamera) && !s.content.processes.empty() &&
        s.content.processes.front().pid == pid)
      return &s;
  return nullptr;
}

std::vector<ProcessRow> BeaconReader::processes() const {
  const auto limit = static_cast<double>(stale_limit(options_, master_).count());
  std::map<std::uint32_t, ProcessRow> rows;
  auto stale_of = [&](const Slot& s) {
    return s.error.has_value() || std::chrono::duration<double, std::milli>(Clock::now() - s.advanced).count() > limit;
  };
  auto fill = [&](const Process& p, Source source, bool stale) {
    ProcessRow& r = rows[p.pid];
    r = ProcessRow{p.pid, p.ppid, p.uid, p.threads, p.state, p.comm, p.cmdline, p.rss_kb, row_age_ms(p), source, stale};
  };
  const Slot* pid_slot = nullptr;
  for (const Slot& s : slots_)
    if (s.have && s.entry.block_type == static_cast<std::uint32_t>(BlockType::kPids) && s.content.pid_list) pid_slot = &s;
  for (const Slot& s : slots_)
    if (s.have && s.entry.block_type == static_cast<std::uint32_t>(BlockType::kRoundRobin))
      for (const Process& p : s.content.processes)
        if ((p.flags & kProcessGone) == 0) fill(p, Source::kRoundRobin, stale_of(s));
  for (const Slot& s : slots_)
    if (s.have && s.entry.block_type == static_cast<std::uint32_t>(BlockType::kCamera) && !s.content.processes.empty() &&
        (s.content.processes.front().flags & kProcessGone) == 0)
      fill(s.content.processes.front(), Source::kCamera, stale_of(s));
  if (pid_slot != nullptr) {
    // The PID list is the authority on which processes exist (it is rewritten every cycle):
    // round-robin rows of processes that have exited since are dropped.
    std::map<std::uint32_t, ProcessRow> merged;
    const bool stale = stale_of(*pid_slot);
    for (std::uint32_t pid : pid_slot->content.pid_list->pids) {
      auto it = rows.find(pid);
      if (it != rows.end()) merged[pid] = std::move(it->second);
      else merged[pid] = ProcessRow{.pid = pid, .source = Source::kPidOnly, .stale = stale};
    }
    rows = std::move(merged);
  }
  std::vector<ProcessRow> out;
  out.reserve(rows.size());
  for (auto& [pid, row] : rows) out.push_back(std::move(row));
  return out;
}

std::optional<ProcessDetail> BeaconReader::process(std::uint32_t pid) const {
  const auto limit = static_cast<double>(stale_limit(options_, master_).count());
  auto detail = [&](const Slot& s, const Process& p, Source source) {
    double since = std::chrono::duration<double, std::milli>(Clock::now() - s.advanced).count();
    return ProcessDetail{p, source, row_age_ms(p), s.error.has_value() || since > limit};
  };
  if (const Slot* s = camera_slot_for(pid)) return detail(*s, s->content.processes.front(), Source::kCamera);
  for (const Slot& s : slots_)
    if (s.have && s.entry.block_type == static_cast<std::uint32_t>(BlockType::kRoundRobin))
      for (const Process& p : s.content.processes)
        if (p.pid == pid) return detail(s, p, Source::kRoundRobin);
  return std::nullopt;
}

namespace {
// Pages of `run` that fall inside the sections (sorted by start, as /proc/PID/maps lists them).
std::uint64_t pages_in_sections(const DecodedRun& run, std::span<const Section> sections) {
  std::uint64_t inside = 0;
  const std::uint64_t first = run.first_page;
  const std::uint64_t end = run.first_page + run.length;
  for (const Section& sec : sections) {
    const std::uint64_t a = std::max(first, sec.start / kPageSize);
    const std::uint64_t b = std::min(end, sec.end / kPageSize);
    if (a < b) inside += b - a;
  }
  return inside;
}
}  // namespace

PagemapSummary summarize(const Pagemap& map, std::span<const Section> sections) {
  PagemapSummary s = summarize(map);
  if (sections.empty()) return s;
  // EMPTY runs may bridge small gaps between sections; /proc/PID/pagemap bytes the encoding
  // replaces are those of pages inside sections only.
  std::uint64_t covered = 0;
  std::uint64_t empty = 0;
  for (const DecodedRun& r : map.runs) {
    const std::uint64_t inside = pages_in_sections(r, sections);
    covered += inside;
    if (r.type == RunType::kEmpty) empty += inside;
  }
  s.empty_pages = empty;
  s.raw_bytes = covered * 8;
  s.compression_ratio = s.encoded_bytes == 0 ? 0.0 : static_cast<double>(s.raw_bytes) / static_cast<double>(s.encoded_bytes);
  return s;
}

PagemapSummary summarize(const Pagemap& map) {
  PagemapSummary s;
  for (const DecodedRun& r : map.runs) {
    switch (r.type) {
      case RunType::kPresent:
        ++s.present_runs;
        s.present_pages += r.length;
        s.present.push_back(r);
        break;
      case RunType::kSwapped:
        ++s.swapped_runs;
        s.swapped_pages += r.length;
        break;
      case RunType::kEmpty:
        ++s.empty_runs;
        s.empty_pages += r.length;
        break;
    }
  }
  s.resident_pages = s.present_pages;
  s.mapped_pages = map.mapped_pages;
  s.raw_bytes = map.covered_pages * 8;
  s.encoded_bytes = map.encoded_bytes;
  s.compression_ratio = s.encoded_bytes == 0 ? 0.0 : static_cast<double>(s.raw_bytes) / static_cast<double>(s.encoded_bytes);
  s.windowed = (map.flags & kPagemapWindowed) != 0;
  s.truncated = (map.flags & kPagemapTruncated) != 0;
  s.frames_known = (map.flags & kPagemapNoFrames) == 0;
  s.window_start_page = map.window_start_page;
  s.window_pages = map.window_pages;
  return s;
}

std::optional<PagemapSummary> BeaconReader::pagemap(std::uint32_t pid) const {
  const Slot* s = camera_slot_for(pid);
  if (s == nullptr || !s->content.processes.front().pagemap) return std::nullopt;
  PagemapSummary out = summarize(*s->content.processes.front().pagemap, s->content.processes.front().sections);
  out.pid = pid;
  out.generation = s->copy.generation;
  out.age_ms = row_age_ms(s->content.processes.front());
  const auto limit = static_cast<double>(stale_limit(options_, master_).count());
  out.stale = s->error.has_value() || std::chrono::duration<double, std::milli>(Clock::now() - s->advanced).count() > limit;
  return out;
}

std::array<CameraRequest, kMaxCameras> BeaconReader::camera_requests() const {
  return read_camera_requests(*ram_, master_.pa);
}

namespace {

Result<void> write_request(guest::GuestWriter& writer, PhysAddr master_pa, std::uint32_t slot, std::uint32_t pid,
                           std::uint32_t seq, std::uint32_t priority) {
  const PhysAddr at = master_pa + kCameraRequestOffset + std::uint64_t{slot} * sizeof(CameraRequest);
  if (auto r = writer.write_value(at + offsetof(CameraRequest, priority), priority); !r) return r;
  // {pid, seq} in one naturally aligned 8-byte store: the companion acts when seq changes.
  const std::uint64_t word = std::uint64_t{pid} | (std::uint64_t{seq} << 32);
  return writer.write_value(at, word);
}

}  // namespace

Result<CameraOutcome> BeaconReader::request_camera(guest::GuestWriter& writer, std::uint32_t pid, std::uint32_t priority,
                                                   std::chrono::milliseconds timeout) {
  if (pid == 0) return fail(InvalidArgument{"camera on PID 0: 0 releases a camera"});
  auto requests = camera_requests();
  std::optional<std::uint32_t> slot;
  for (std::uint32_t i = 0; i < kMaxCameras && !slot; ++i)
    if (requests[i].pid == pid) slot = i;
  for (std::uint32_t i = 0; i < kMaxCameras && !slot; ++i) {
    const auto state = static_cast<CameraState>(master_.cameras[i].state);
    if (requests[i].pid == 0 && state != CameraState::kActive && state != CameraState::kStarting) slot = i;
  }
  if (!slot) return CameraOutcome{0, 0, CameraState::kNoCapacity, 0};
  std::uint32_t seq = requests[*slot].seq + 1;
  if (seq == 0) seq = 1;
  const PhysAddr master_pa = master_.pa;
  const std::uint64_t session = master_.session_id;
  if (auto r = write_request(writer, master_pa, *slot, pid, seq, priority); !r) return std::unexpected(r.error());
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    if (auto r = refresh(); !r) return std::unexpected(r.error());
    if (master_.session_id != session)
      return fail(NotFound{"camera request: the companion restarted while it was pending", "run the command again"});
    const CameraStatus& st = master_.cameras[*slot];
    if (st.request_seq == seq && st.pid == pid) {
      const auto state = static_cast<CameraState>(st.state);
      if (state == CameraState::kProcessGone || state == CameraState::kNoCapacity)
        return CameraOutcome{*slot, seq, state, st.directory_slot};
      if (state == CameraState::kActive && st.directory_slot < slots_.size()) {
        const Slot& s = slots_[st.directory_slot];
        if (s.have && !s.content.processes.empty() && s.content.processes.front().pid == pid)
          return CameraOutcome{*slot, seq, state, st.directory_slot};
      }
    }
    if (Clock::now() >= deadline)
      return fail(Timeout{fmt::format("camera on PID {} (the companion did not answer request {} in slot {})", pid, seq, *slot),
                          static_cast<int>(timeout.count())});
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

Result<void> BeaconReader::release_camera(guest::GuestWriter& writer, std::uint32_t slot) {
  if (slot >= kMaxCameras) return fail(InvalidArgument{fmt::format("camera slot {} (0-{})", slot, kMaxCameras - 1)});
  auto requests = camera_requests();
  std::uint32_t seq = requests[slot].seq + 1;
  if (seq == 0) seq = 1;
  return write_request(writer, master_.pa, slot, 0, seq, 0);
}

}  // namespace haywire::beacon
