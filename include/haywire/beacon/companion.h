// The beacon companion: the writer side of protocol.h. In the guest it runs as the static
// binary `haywire-companion` (guest/companion); on the host the same code runs against a plain
// file standing in for guest RAM (`--ram-file`), which is how the unit tests and benchmarks
// exercise the protocol without a VM.
//
// Area layout (page indices; sizes from CompanionOptions):
//   0                   master (directory slot 0): discovery pattern, directory, camera statuses;
//                       the host writes CameraRequest[16] at kCameraRequestOffset
//   1..table_pages      page-address table (slot 1)
//   then                PID discovery (slot 2), round-robin (slot 3), the pre-allocated cameras
//   the rest            free pages for further cameras (slots 4..4+kMaxCameras)
// Camera status i answers camera request i (same slot index in both arrays).
//
// This library depends on the standard library and header-only haywire pieces only, so the
// guest binary links statically without fmt or any shared library. Nothing here calls
// Error::message(): use companion_error_text() where haywire_base is not linked.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "haywire/base/error.h"
#include "haywire/beacon/protocol.h"

namespace haywire::beacon {

struct CompanionOptions {
  std::size_t area_bytes = kDefaultAreaBytes;  // rounded up to whole pages
  std::uint32_t interval_ms = 10;              // sleep between cycles (plus up to 25% jitter)
  std::string ram_file;        // empty: allocate and lock the area in this process (guest mode)
  std::uint64_t ram_offset = 0;  // page-aligned offset of the area in ram_file
  std::string proc_root = "/proc";
  std::uint32_t pid_pages = 16;        // PID discovery block (~16,000 PIDs)
  std::uint32_t rr_pages = 512;        // round-robin block
  std::uint32_t camera_pages = 256;    // each camera block (~63,000 RLE runs)
  std::uint32_t prealloc_cameras = 2;  // camera blocks allocated at start
  std::uint32_t max_rr_sections = 256;  // per process in the round-robin block
  // One PID is refreshed every cycle; the round-robin block is rewritten when PIDs come or go,
  // else every this many cycles (rewriting it costs a pass over every row).
  std::uint32_t rr_publish_every = 8;
  // Pages of mapped address space a camera's pagemap covers per cycle when the process maps
  // more than kWindowThresholdPages (windowed mode).
  std::uint64_t window_pages = (1ULL << 30) / kPageSize;
};

struct CycleStats {
  std::uint64_t cycle = 0;
  std::uint32_t pids = 0;             // PIDs seen by the discovery scan
  std::uint32_t round_robin_pid = 0;  // PID refreshed this cycle (0: none)
  std::uint32_t cameras_updated = 0;
  std::uint32_t cameras_gone = 0;     // cameras whose process vanished this cycle
  std::uint64_t pagemap_pages = 0;    // pagemap entries read for cameras
  std::uint64_t rle_bytes = 0;        // chunk bytes written for cameras
  std::uint32_t blocks_written = 0;
  std::uint32_t verify_failures = 0;
};

// One camera as the companion sees it (for tests and the guest's log).
struct CameraSnapshot {
  std::uint32_t slot = 0;
  std::uint32_t pid = 0;
  CameraState state = CameraState::kIdle;
  std::uint32_t directory_slot = 0;
  std::uint32_t generation = 0;
};

class Companion {
 public:
  // Allocates (or maps) the area, writes the master and the page-address table.
  static Result<std::unique_ptr<Companion>> start(const CompanionOptions& options);
  ~Companion();
  Companion(const Companion&) = delete;
  Companion& operator=(const Companion&) = delete;

  // One cycle: PID discovery, one round-robin PID, camera requests, every active camera,
  // verification, master. Never fails on /proc content; errors are about the area itself.
  Result<CycleStats> run_cycle();
  // Cycles until `stop` is set, sleeping interval_ms plus jitter between them.
  void run(const std::atomic<bool>& stop);

  // The area as written (valid while this object lives).
  [[nodiscard]] std::span<const std::byte> area() const;
  [[nodiscard]] std::uint32_t flags() const;  // kMaster* flags published in the master
  [[nodiscard]] std::uint64_t session_id() const;
  [[nodiscard]] std::vector<CameraSnapshot> cameras() const;
  // Guest-physical address of each area page (file offsets with --ram-file; 0 = unknown).
  [[nodiscard]] const std::vector<std::uint64_t>& page_addresses() const;

 private:
  struct Impl;
  explicit Companion(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// ---- Pieces exposed for tests and benchmarks ------------------------------------------------

// PIDs under proc_root (numeric directory names), ascending.
std::vector<std::uint32_t> scan_pids(const std::string& proc_root);

// Encodes raw /proc/PID/pagemap entries for pages [base_page, base_page + entries.size())
// into RLE chunks appended to `out`. Consecutive calls continue the last run and chunk when
// base_page follows on from the previous call; a gap starts a new chunk. add() returns the
// runs completed by the call (the last run stays open until the next add or finish()).
// Sections separated by at most this many unmapped pages share chunks: the gap is encoded as an
// EMPTY run (16 bytes) instead of starting a new 1 KiB chunk.
inline constexpr std::uint64_t kBridgeGapPages = 4096;

class RleEncoder {
 public:
  explicit RleEncoder(std::vector<RleChunk>& out, bool frames_known) : out_(out), frames_(frames_known) {}
  std::size_t add(std::uint64_t base_page, std::span<const std::uint64_t> entries);
  void finish();
  [[nodiscard]] std::uint64_t present_pages() const { return present_; }
  [[nodiscard]] std::uint64_t swapped_pages() const { return swapped_; }

 private:
  void push_run(const Run& run, std::uint64_t run_base_page);
  std::vector<RleChunk>& out_;
  bool frames_;
  bool open_ = false;
  Run pending_{};
  std::uint64_t pending_base_ = 0;  // virtual page of pending_'s first page
  std::uint64_t next_page_ = 0;     // page after pending_
  std::uint64_t present_ = 0;
  std::uint64_t swapped_ = 0;
  std::size_t runs_ = 0;
};

// A run's pages expanded back to (virtual page, RunType, value-for-that-page); used by tests
// to compare an encoding with its input. Returns false on a malformed chunk.
struct DecodedPage {
  std::uint64_t page;
  RunType type;
  std::uint64_t value;
};
bool decode_rle_chunks(std::span<const RleChunk> chunks, std::vector<DecodedPage>& out);

// One line for an error, without haywire_base's Error::message() (the guest binary has no fmt).
std::string companion_error_text(const Error& error);

}  // namespace haywire::beacon
