// The host side of the beacon protocol: find the companion's master page in guest RAM, read
// every block through the guest-physical addresses it publishes, keep the last good copy of each
// block, merge PID list, round-robin and camera data into one process table, and ask for cameras.
//
// Everything read is untrusted (decode.h). A block caught mid-rewrite is retried a few times,
// then the previous copy is served marked stale. A BeaconReader is single-threaded: one thread
// calls refresh() and the accessors.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "haywire/base/error.h"
#include "haywire/base/types.h"
#include "haywire/beacon/decode.h"
#include "haywire/beacon/protocol.h"
#include "haywire/guest/ram.h"

namespace haywire::guest {
class GuestWriter;
}

namespace haywire::beacon {

// ---- Discovery --------------------------------------------------------------------------------
struct ScanStats {
  std::uint64_t bytes_scanned = 0;  // file bytes holding data (holes skipped)
  std::uint64_t pages_checked = 0;
  std::uint64_t magic_hits = 0;     // pages starting with kMagic
};

// Every page of guest RAM that is a valid master (magic, type kMaster, page_index 0, discovery
// pattern, checksum), newest first (by the guest clock of its last cycle: a restarted
// companion's old master may linger in freed memory). Visits only the file's data ranges.
std::vector<PhysAddr> scan_for_masters(const guest::GuestRam& ram, ScanStats* stats = nullptr);

struct MasterInfo {
  PhysAddr pa;
  std::uint32_t generation = 0;
  std::uint64_t session_id = 0;
  std::uint32_t companion_pid = 0;
  std::uint32_t area_pages = 0;
  std::uint32_t table_pages = 0;
  std::uint32_t flags = 0;
  std::uint32_t cycle_interval_us = 0;
  std::uint64_t cycle = 0;
  std::uint64_t last_cycle_ns = 0;
  std::vector<DirectoryEntry> directory;  // block_count entries, at most kMaxBlocks
  std::array<CameraStatus, kMaxCameras> cameras{};
};

// A torn-free, validated copy of the master at `pa` (seqlock copy of the page).
Decoded<MasterInfo> read_master(const guest::GuestRam& ram, PhysAddr pa);

// The host-owned camera request slots of the master page (not checksummed: read as is).
std::array<CameraRequest, kMaxCameras> read_camera_requests(const guest::GuestRam& ram, PhysAddr master_pa);

// ---- Reader -----------------------------------------------------------------------------------
enum class Source : std::uint8_t { kPidOnly, kRoundRobin, kCamera };
std::string_view to_string(Source source);  // "pid-only", "round-robin", "camera"

struct ProcessRow {
  std::uint32_t pid = 0, ppid = 0, uid = 0, threads = 0;
  char state = '?';
  std::string comm, cmdline;
  std::uint64_t rss_kb = 0;
  std::optional<double> age_ms;  // how old the row's data is (none for pid-only rows)
  Source source = Source::kPidOnly;
  bool stale = false;  // its block is stale (not advancing, or only an old copy readable)
};

struct ProcessDetail {
  Process process;  // with sections (and pagemap from a camera)
  Source source = Source::kRoundRobin;
  double age_ms = 0;
  bool stale = false;
};

struct PagemapSummary {
  std::uint32_t pid = 0;
  std::uint64_t present_runs = 0, swapped_runs = 0, empty_runs = 0;
  std::uint64_t present_pages = 0, swapped_pages = 0, empty_pages = 0;
  std::uint64_t resident_pages = 0;  // = present_pages
  std::uint64_t mapped_pages = 0;
  std::uint64_t raw_bytes = 0;      // 8 per covered page: what /proc/PID/pagemap would be
  std::uint64_t encoded_bytes = 0;  // record + chunks
  double compression_ratio = 0;     // raw_bytes / encoded_bytes
  bool windowed = false, truncated = false, frames_known = true;
  std::uint64_t window_start_page = 0, window_pages = 0;
  std::vector<DecodedRun> present;  // present runs: virtual page → first PFN (for --frames)
  std::uint32_t generation = 0;
  double age_ms = 0;
  bool stale = false;
};
PagemapSummary summarize(const Pagemap& map);
// The same, counting raw pagemap bytes and empty pages only inside `sections` (EMPTY runs may
// bridge small gaps between sections).
PagemapSummary summarize(const Pagemap& map, std::span<const Section> sections);

struct BlockState {
  std::uint32_t slot = 0;
  BlockType type = BlockType::kUnused;
  std::uint32_t camera = 0;
  std::uint32_t pages = 0;        // allotted
  std::uint32_t block_pages = 0;  // used by the copy we hold
  std::uint32_t generation = 0;   // of the copy we hold (0: none)
  std::uint32_t last_valid_generation = 0;  // the master's word
  BlockStatus directory_status = BlockStatus::kUnused;
  PhysAddr first_page_pa;
  std::optional<double> age_ms;  // since the held copy's generation was first seen advancing
  bool stale = false;
  std::string status;  // "ok", "stale: being rewritten", "invalid: checksum mismatch", ...
};

struct ReaderOptions {
  int retries = 4;                         // copy attempts per block per refresh
  std::chrono::milliseconds stale_after{0};  // 0: max(1 s, 50 companion cycles)
  std::chrono::milliseconds retry_pause{0};  // between attempts (0: just retry)
};

struct CameraOutcome {
  std::uint32_t slot = 0;   // request / status slot
  std::uint32_t seq = 0;
  CameraState state = CameraState::kIdle;
  std::uint32_t directory_slot = 0;
};

class BeaconReader {
 public:
  // Scans guest RAM for the newest master and reads everything. NotFound when there is none.
  static Result<BeaconReader> discover(const guest::GuestRam& ram, ReaderOptions options = {});
  // The same, trying `hint` (where a master was found before, e.g. cached in the VM's run
  // directory) first: a valid master there skips the scan of all RAM. A wrong or stale hint
  // costs one page read, then the scan runs as usual.
  static Result<BeaconReader> discover(const guest::GuestRam& ram, ReaderOptions options, PhysAddr hint);
  // Where the master was found (the address to cache as the next hint).
  [[nodiscard]] PhysAddr master_address() const { return master_pa_; }

  // Re-reads the master and every block. When the master is gone or the companion restarted
  // (new session id), falls back to a full scan. Fails only when no beacon can be found.
  Result<void> refresh();

  [[nodiscard]] const MasterInfo& master() const { return master_; }
  [[nodiscard]] std::uint64_t rescans() const { return rescans_; }

  // The merged process table, by PID.
  [[nodiscard]] std::vector<ProcessRow> processes() const;
  // Sections (and camera pagemap) of one PID: camera if there is one, else round-robin.
  [[nodiscard]] std::optional<ProcessDetail> process(std::uint32_t pid) const;
  // The pagemap summary of a camera on `pid`, if one holds valid data.
  [[nodiscard]] std::optional<PagemapSummary> pagemap(std::uint32_t pid) const;
  [[nodiscard]] std::vector<BlockState> blocks() const;
  [[nodiscard]] std::array<CameraRequest, kMaxCameras> camera_requests() const;
  // The PID list block alone (for benchmarks and `ps` fast paths); empty when unreadable.
  [[nodiscard]] const std::vector<std::uint32_t>& pids() const;

  // Asks the companion for a camera on `pid` through `writer` (priority, then {pid, seq}), then
  // refreshes until the matching status answers: kActive with a valid camera block, or
  // kProcessGone / kNoCapacity (returned, not errors). Timeout when nothing answers in time.
  // Reuses a slot already requesting `pid`.
  Result<CameraOutcome> request_camera(guest::GuestWriter& writer, std::uint32_t pid, std::uint32_t priority,
                                       std::chrono::milliseconds timeout);
  // Writes pid 0 into the slot (the companion releases the camera).
  Result<void> release_camera(guest::GuestWriter& writer, std::uint32_t slot);

  BeaconReader(BeaconReader&&) noexcept;
  BeaconReader& operator=(BeaconReader&&) noexcept;
  ~BeaconReader();

 private:
  struct Slot;
  BeaconReader(const guest::GuestRam& ram, ReaderOptions options);
  Result<void> attach_master(PhysAddr pa);
  PhysAddr master_pa_;
  bool read_table();
  void read_block(std::size_t slot);
  [[nodiscard]] double master_age_ms() const;
  [[nodiscard]] double row_age_ms(const Process& p) const;
  [[nodiscard]] const Slot* camera_slot_for(std::uint32_t pid) const;

  const guest::GuestRam* ram_;
  ReaderOptions options_;
  MasterInfo master_;
  std::chrono::steady_clock::time_point master_advanced_{};
  std::vector<std::uint64_t> table_;  // guest-physical address of each area page
  std::vector<Slot> slots_;
  std::uint64_t rescans_ = 0;
};

}  // namespace haywire::beacon
