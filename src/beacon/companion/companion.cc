// The companion's cycle: PID discovery, one round-robin PID, camera requests, active cameras,
// verification, master. See include/haywire/beacon/companion.h for the area layout.
#include "haywire/beacon/companion.h"

#include <fcntl.h>
#include <sys/random.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <map>
#include <type_traits>
#include <variant>

#include "beacon/companion/area.h"
#include "beacon/companion/camera.h"
#include "beacon/companion/proc.h"
#include "beacon/companion/records.h"

namespace haywire::beacon {

using namespace companion;

namespace {

constexpr std::uint32_t kSlotMaster = 0, kSlotTable = 1, kSlotPids = 2, kSlotRoundRobin = 3, kSlotFirstCamera = 4;
constexpr std::uint32_t kAddressRefreshCycles = 128;

std::uint64_t random_u64() {
  std::uint64_t v = 0;
  if (::getrandom(&v, sizeof v, 0) != sizeof v) v = monotonic_ns() ^ (static_cast<std::uint64_t>(::getpid()) << 32);
  return v | 1;
}

// Whether /proc/PID/pagemap shows frame numbers to us (CAP_SYS_ADMIN): probe one of our pages.
bool pagemap_frames_readable() {
  static volatile std::uint64_t probe = 1;
  probe = probe + 1;
  int fd = ::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  std::uint64_t e = 0;
  auto page = reinterpret_cast<std::uintptr_t>(&probe) / kPageSize;
  bool ok = ::pread(fd, &e, 8, static_cast<off_t>(page * 8)) == 8;
  ::close(fd);
  return ok && (e >> 63) != 0 && (e & ((1ULL << 55) - 1)) != 0;
}

struct CameraBlock {
  SealedBlock block;
  int owner = -1;  // camera slot using it, -1 when spare
};

struct CameraSlot {
  std::uint32_t pid = 0;
  std::uint32_t seq = 0;
  std::uint32_t priority = 0;
  CameraState state = CameraState::kIdle;
  int block = -1;
  std::uint64_t requested_cycle = 0;
  std::uint64_t window_cursor = 0;
};

}  // namespace

struct Companion::Impl {
  CompanionOptions options;
  Area area;
  std::uint64_t session = 0;
  bool frames_readable = false;
  std::uint32_t master_generation = 0;
  std::uint64_t cycle = 0;
  std::uint64_t jitter_state = 0;
  MasterPayload master{};
  SealedBlock table, pids, rr;
  std::vector<CameraBlock> camera_blocks;
  std::array<CameraSlot, kMaxCameras> slots{};
  std::vector<std::uint32_t> pid_list;
  std::map<std::uint32_t, std::vector<std::byte>> rr_cache;
  std::uint32_t rr_last = 0;
  std::uint32_t rr_pending = 0;
  std::vector<std::uint32_t> rr_published_pids;
  ContentBuffer pid_buf{0}, rr_buf{0}, rr_one{0}, cam_buf{0}, table_buf{0};
  CameraScratch scratch;
  ProcessInfo info;
  std::vector<Section> sections;
  std::string text;

  std::uint32_t flags() const {
    std::uint32_t f = 0;
    if (area.frames_known()) f |= kMasterHasPhysicalFrames;
    if (area.locked()) f |= kMasterLocked;
    if (area.ram_file()) f |= kMasterRamFile;
    return f;
  }

  DirectoryEntry& dir(std::uint32_t slot) { return master.directory[slot]; }

  void describe(std::uint32_t slot, const SealedBlock& b, BlockStatus status, std::uint32_t camera) {
    DirectoryEntry& e = dir(slot);
    e.block_type = static_cast<std::uint32_t>(b.type);
    e.status = static_cast<std::uint32_t>(status);
    e.first_page = b.first_page;
    e.page_count = b.page_count;
    e.camera = camera;
    e.first_page_pa = area.addresses()[b.first_page];
  }

  // Seal, read back, publish in the directory.
  bool publish(std::uint32_t slot, SealedBlock& b, const ContentBuffer& content, std::uint64_t ts, CycleStats& st) {
    area.seal(b, content.bytes(), ts);
    ++st.blocks_written;
    DirectoryEntry& e = dir(slot);
    if (!area.verify(b, content.bytes(), ts)) {
      ++st.verify_failures;
      e.status = static_cast<std::uint32_t>(BlockStatus::kInvalid);
      return false;
    }
    e.status = static_cast<std::uint32_t>(BlockStatus::kActive);
    e.last_valid_generation = b.generation;
    e.first_page_pa = area.addresses()[b.first_page];
    return true;
  }

  Result<void> layout() {
    std::uint32_t n = area.pages();
    std::uint32_t table_pages = static_cast<std::uint32_t>((n + kTableEntriesPerPage - 1) / kTableEntriesPerPage);
    auto take = [&](std::uint32_t count, BlockType type, std::uint32_t slot, SealedBlock& b) -> bool {
      auto first = area.allocate_pages(count);
      if (!first) return false;
      b = SealedBlock{.type = type, .block_id = slot, .first_page = *first, .page_count = count};
      return true;
    };
    SealedBlock master_block;
    if (!take(1, BlockType::kMaster, kSlotMaster, master_block) || !take(table_pages, BlockType::kPageTable, kSlotTable, table) ||
        !take(options.pid_pages, BlockType::kPids, kSlotPids, pids) ||
        !take(options.rr_pages, BlockType::kRoundRobin, kSlotRoundRobin, rr))
      return fail(InvalidArgument{"the beacon area is too small for master, page table, PID and round-robin blocks"});
    for (std::uint32_t i = 0; i < options.prealloc_cameras && i < kMaxCameras; ++i) {
      CameraBlock cb;
      if (!take(options.camera_pages, BlockType::kCamera, kSlotFirstCamera + i, cb.block))
        return fail(InvalidArgument{"the beacon area is too small for the pre-allocated cameras"});
      camera_blocks.push_back(std::move(cb));
    }
    std::memcpy(master.discovery, kDiscoveryPattern, sizeof master.discovery);
    master.protocol_version = kProtocolVersion;
    master.companion_pid = static_cast<std::uint32_t>(::getpid());
    master.session_id = session;
    master.area_pages = n;
    master.table_pages = table_pages;
    master.cycle_interval_us = options.interval_ms * 1000;
    describe(kSlotMaster, master_block, BlockStatus::kActive, 0);
    describe(kSlotTable, table, BlockStatus::kValidating, 0);
    describe(kSlotPids, pids, BlockStatus::kValidating, 0);
    describe(kSlotRoundRobin, rr, BlockStatus::kValidating, 0);
    for (std::size_t i = 0; i < camera_blocks.size(); ++i)
      describe(camera_blocks[i].block.block_id, camera_blocks[i].block, BlockStatus::kUnused, 0);
    pid_buf = ContentBuffer(std::size_t{options.pid_pages} * kPagePayload);
    rr_buf = ContentBuffer(std::size_t{options.rr_pages} * kPagePayload);
    rr_one = ContentBuffer(std::size_t{options.rr_pages} * kPagePayload);
    cam_buf = ContentBuffer(std::size_t{options.camera_pages} * kPagePayload);
    table_buf = ContentBuffer(std::size_t{table_pages} * kPagePayload + 8);
    return {};
  }

  void publish_table(std::uint64_t ts, CycleStats& st) {
    table_buf.clear();
    table_buf.append(std::as_bytes(std::span(area.addresses())));
    publish(kSlotTable, table, table_buf, ts, st);
    dir(kSlotMaster).first_page_pa = area.addresses()[0];
    for (std::uint32_t s = 0; s < kMaxBlocks; ++s) {
      DirectoryEntry& e = dir(s);
      if (e.block_type != 0 && e.first_page < area.pages()) e.first_page_pa = area.addresses()[e.first_page];
    }
  }

  void finish_master(std::uint64_t ts) {
    master.flags = flags();
    master.cycle = cycle;
    master.last_cycle_ns = ts;
    std::uint32_t blocks = 0, cams = 0;
    for (std::uint32_t s = 0; s < kMaxBlocks; ++s)
      if (master.directory[s].block_type != 0) blocks = s + 1;
    for (std::uint32_t i = 0; i < kMaxCameras; ++i) {
      const CameraSlot& c = slots[i];
      CameraStatus& cs = master.cameras[i];
      cs.pid = c.pid;
      cs.state = static_cast<std::uint32_t>(c.state);
      cs.request_seq = c.seq;
      if (c.block >= 0) {
        const SealedBlock& b = camera_blocks[static_cast<std::size_t>(c.block)].block;
        cs.directory_slot = b.block_id;
        cs.generation = dir(b.block_id).last_valid_generation;
        cs.data_pa = area.addresses()[b.first_page];
      } else {
        cs.directory_slot = 0;
        cs.generation = 0;
        cs.data_pa = 0;
      }
      if (c.state != CameraState::kIdle || c.seq != 0) cams = i + 1;
    }
    master.block_count = blocks;
    master.camera_count = cams;
    if (++master_generation == 0) master_generation = 1;
    dir(kSlotMaster).last_valid_generation = master_generation;
    area.seal_master(master_generation, master, ts);
  }

  // ---- cameras --------------------------------------------------------------------------
  void release_block(int slot_index, BlockStatus status) {
    CameraSlot& c = slots[static_cast<std::size_t>(slot_index)];
    if (c.block < 0) return;
    CameraBlock& cb = camera_blocks[static_cast<std::size_t>(c.block)];
    cb.owner = -1;
    dir(cb.block.block_id).status = static_cast<std::uint32_t>(status);
    dir(cb.block.block_id).camera = 0;
    c.block = -1;
  }

  bool take_spare(int slot_index) {
    for (std::size_t b = 0; b < camera_blocks.size(); ++b) {
      if (camera_blocks[b].owner >= 0) continue;
      assign(slot_index, static_cast<int>(b));
      return true;
    }
    return false;
  }

  void assign(int slot_index, int block) {
    CameraSlot& c = slots[static_cast<std::size_t>(slot_index)];
    CameraBlock& cb = camera_blocks[static_cast<std::size_t>(block)];
    cb.owner = slot_index;
    c.block = block;
    c.window_cursor = 0;
    c.state = CameraState::kStarting;
    describe(cb.block.block_id, cb.block, BlockStatus::kValidating, static_cast<std::uint32_t>(slot_index));
  }

  bool acquire(int slot_index) {
    if (take_spare(slot_index)) return true;
    if (camera_blocks.size() < kMaxCameras) {
      if (auto first = area.allocate_pages(options.camera_pages)) {
        CameraBlock cb;
        cb.block = SealedBlock{.type = BlockType::kCamera,
                               .block_id = kSlotFirstCamera + static_cast<std::uint32_t>(camera_blocks.size()),
                               .first_page = *first, .page_count = options.camera_pages};
        camera_blocks.push_back(std::move(cb));
        assign(slot_index, static_cast<int>(camera_blocks.size() - 1));
        return true;
      }
    }
    // Out of pages: take the block of the lowest-priority camera, oldest first, if it does not
    // outrank the new request.
    const CameraSlot& me = slots[static_cast<std::size_t>(slot_index)];
    int victim = -1;
    for (int j = 0; j < static_cast<int>(kMaxCameras); ++j) {
      const CameraSlot& c = slots[static_cast<std::size_t>(j)];
      if (j == slot_index || c.block < 0 || c.priority > me.priority) continue;
      if (victim < 0) { victim = j; continue; }
      const CameraSlot& v = slots[static_cast<std::size_t>(victim)];
      if (c.priority < v.priority || (c.priority == v.priority && c.requested_cycle < v.requested_cycle)) victim = j;
    }
    if (victim < 0) return false;
    release_block(victim, BlockStatus::kInvalid);
    slots[static_cast<std::size_t>(victim)].state = CameraState::kNoCapacity;
    return take_spare(slot_index);
  }

  void check_requests() {
    const std::byte* req = area.page(0) + kCameraRequestOffset;
    for (int i = 0; i < static_cast<int>(kMaxCameras); ++i) {
      const std::byte* r = req + static_cast<std::size_t>(i) * sizeof(CameraRequest);
      // The host stores {pid, seq} as one aligned 8-byte word after the priority.
      std::uint64_t word = __atomic_load_n(reinterpret_cast<const std::uint64_t*>(r), __ATOMIC_ACQUIRE);
      std::uint32_t priority = __atomic_load_n(reinterpret_cast<const std::uint32_t*>(r + 8), __ATOMIC_ACQUIRE);
      auto pid = static_cast<std::uint32_t>(word);
      auto seq = static_cast<std::uint32_t>(word >> 32);
      CameraSlot& c = slots[static_cast<std::size_t>(i)];
      if (seq == c.seq) {
        if (c.state == CameraState::kNoCapacity && c.pid != 0 && c.block < 0) take_spare(i);
        continue;
      }
      c.seq = seq;
      c.priority = priority;
      c.requested_cycle = cycle;
      if (pid == 0 || pid != c.pid) release_block(i, BlockStatus::kUnused);
      c.pid = pid;
      if (pid == 0) {
        c.state = CameraState::kIdle;
        continue;
      }
      if (!process_exists(options.proc_root, pid)) {
        release_block(i, BlockStatus::kInvalid);
        c.state = CameraState::kProcessGone;
        continue;
      }
      if (c.block >= 0) continue;  // same PID asked again: keep its block
      if (!acquire(i)) c.state = CameraState::kNoCapacity;
    }
  }

  void update_cameras(std::uint64_t ts, CycleStats& st) {
    for (int i = 0; i < static_cast<int>(kMaxCameras); ++i) {
      CameraSlot& c = slots[static_cast<std::size_t>(i)];
      if (c.block < 0) continue;
      CameraBlock& cb = camera_blocks[static_cast<std::size_t>(c.block)];
      CameraOutcome out = build_camera(options.proc_root, c.pid, frames_readable, options.window_pages,
                                       c.window_cursor, cycle, cam_buf, scratch);
      st.pagemap_pages += out.pages_read;
      st.rle_bytes += out.rle_bytes;
      if (out.gone) {
        release_block(i, BlockStatus::kInvalid);
        c.state = CameraState::kProcessGone;
        ++st.cameras_gone;
        continue;
      }
      if (publish(cb.block.block_id, cb.block, cam_buf, ts, st)) {
        c.state = CameraState::kActive;
        ++st.cameras_updated;
      }
    }
  }

  // ---- PIDs and round-robin -------------------------------------------------------------
  void update_pids(std::uint64_t ts, CycleStats& st) {
    scan_pids_into(options.proc_root, pid_list);
    st.pids = static_cast<std::uint32_t>(pid_list.size());
    pid_buf.clear();
    encode_pid_list(pid_buf, pid_list, cycle);
    pid_buf.finish();
    publish(kSlotPids, pids, pid_buf, ts, st);
  }

  void update_round_robin(std::uint64_t ts, CycleStats& st) {
    // Forget PIDs that left the list (both sorted).
    for (auto it = rr_cache.begin(); it != rr_cache.end();) {
      it = std::binary_search(pid_list.begin(), pid_list.end(), it->first) ? std::next(it) : rr_cache.erase(it);
    }
    if (!pid_list.empty()) {
      auto next = std::upper_bound(pid_list.begin(), pid_list.end(), rr_last);
      std::uint32_t pid = next == pid_list.end() ? pid_list.front() : *next;
      rr_last = pid;
      st.round_robin_pid = pid;
      bool truncated = false;
      std::uint64_t collected = monotonic_ns();
      if (read_process(options.proc_root, pid, info, text) &&
          read_sections(options.proc_root, pid, sections, options.max_rr_sections, truncated, text)) {
        rr_one.clear();
        encode_process(rr_one, info, sections, truncated ? kProcessSectionsTruncated : 0, collected, cycle);
        auto bytes = rr_one.bytes();
        rr_cache[pid].assign(bytes.begin(), bytes.end());
      } else {
        rr_cache.erase(pid);  // died while being read: its row goes
      }
    }
    // Rewriting the whole table costs a pass over every row: do it at once when rows came or
    // went, otherwise every rr_publish_every cycles (the rows refreshed meanwhile wait).
    bool set_changed = pid_list != rr_published_pids;
    if (!set_changed && ++rr_pending < options.rr_publish_every && rr.generation != 0) return;
    rr_pending = 0;
    rr_published_pids = pid_list;
    rr_buf.clear();
    for (const auto& [pid, bytes] : rr_cache) {
      if (bytes.size() > rr_buf.room()) break;  // full: later PIDs wait for a smaller table
      rr_buf.append(bytes);
    }
    rr_buf.finish();
    publish(kSlotRoundRobin, rr, rr_buf, ts, st);
  }
};

Companion::Companion(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Companion::~Companion() = default;

Result<std::unique_ptr<Companion>> Companion::start(const CompanionOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  if (options.pid_pages == 0 || options.rr_pages == 0 || options.camera_pages == 0)
    return fail(InvalidArgument{"block sizes must be at least one page"});
  auto area = options.ram_file.empty() ? Area::allocate(options.area_bytes)
                                       : Area::map_file(options.ram_file, options.ram_offset, options.area_bytes);
  if (!area) return std::unexpected(area.error());
  impl->area = std::move(*area);
  impl->session = random_u64();
  impl->jitter_state = impl->session;
  impl->frames_readable = pagemap_frames_readable();
  if (auto l = impl->layout(); !l) return std::unexpected(l.error());
  std::uint64_t ts = monotonic_ns();
  CycleStats st;
  impl->finish_master(ts);  // discoverable from the start
  impl->publish_table(ts, st);
  impl->finish_master(ts);
  return std::unique_ptr<Companion>(new Companion(std::move(impl)));
}

Result<CycleStats> Companion::run_cycle() {
  Impl& m = *impl_;
  CycleStats st;
  ++m.cycle;
  st.cycle = m.cycle;
  std::uint64_t ts = monotonic_ns();
  if (!m.area.ram_file() && m.cycle % kAddressRefreshCycles == 0 && m.area.refresh_addresses())
    m.publish_table(ts, st);  // the kernel migrated a page of ours
  m.update_pids(ts, st);
  m.update_round_robin(ts, st);
  m.check_requests();
  m.update_cameras(ts, st);
  m.finish_master(monotonic_ns());
  return st;
}

void Companion::run(const std::atomic<bool>& stop) {
  Impl& m = *impl_;
  while (!stop.load(std::memory_order_relaxed)) {
    (void)run_cycle();
    m.jitter_state ^= m.jitter_state << 13;
    m.jitter_state ^= m.jitter_state >> 7;
    m.jitter_state ^= m.jitter_state << 17;
    std::uint64_t interval_ns = std::uint64_t{m.options.interval_ms} * 1'000'000ULL;
    std::uint64_t sleep_ns = interval_ns + (interval_ns / 4 == 0 ? 0 : m.jitter_state % (interval_ns / 4));
    timespec ts{static_cast<time_t>(sleep_ns / 1'000'000'000ULL), static_cast<long>(sleep_ns % 1'000'000'000ULL)};
    while (::nanosleep(&ts, &ts) != 0 && errno == EINTR && !stop.load(std::memory_order_relaxed)) {
    }
  }
}

std::span<const std::byte> Companion::area() const { return impl_->area.bytes(); }
std::uint32_t Companion::flags() const { return impl_->flags(); }
std::uint64_t Companion::session_id() const { return impl_->session; }
const std::vector<std::uint64_t>& Companion::page_addresses() const { return impl_->area.addresses(); }

std::vector<CameraSnapshot> Companion::cameras() const {
  std::vector<CameraSnapshot> out;
  for (std::uint32_t i = 0; i < kMaxCameras; ++i) {
    const CameraSlot& c = impl_->slots[i];
    if (c.state == CameraState::kIdle) continue;
    CameraSnapshot s{.slot = i, .pid = c.pid, .state = c.state};
    if (c.block >= 0) {
      const SealedBlock& b = impl_->camera_blocks[static_cast<std::size_t>(c.block)].block;
      s.directory_slot = b.block_id;
      s.generation = b.generation;
    }
    out.push_back(s);
  }
  return out;
}

std::vector<std::uint32_t> scan_pids(const std::string& proc_root) {
  std::vector<std::uint32_t> out;
  scan_pids_into(proc_root, out);
  return out;
}

std::string companion_error_text(const Error& error) {
  return std::visit(
      [](const auto& k) -> std::string {
        using K = std::decay_t<decltype(k)>;
        std::string text;
        if constexpr (requires { k.what; }) text += k.what;
        if constexpr (requires { k.path; }) text += (text.empty() ? "" : " ") + k.path;
        if constexpr (requires { k.operation; }) text += k.operation;
        if constexpr (requires { k.err; }) {
          if (k.err != 0) text += std::string(": ") + std::strerror(k.err);
        }
        if constexpr (requires { k.hint; }) {
          if (!k.hint.empty()) text += " (" + k.hint + ")";
        }
        if constexpr (std::is_same_v<K, FileNotFound>) text += ": no such file";
        if constexpr (std::is_same_v<K, PermissionDenied>) text += ": permission denied";
        return text.empty() ? std::string("error") : text;
      },
      error.kind());
}

}  // namespace haywire::beacon
