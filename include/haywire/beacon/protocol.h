// The beacon protocol: the byte layout shared by the in-guest companion (writer) and the host
// reader. Spec: shared/seeds/000 with the corrections in shared/design/SYSTEM.md; every byte is
// documented in docs/beacon-protocol.md. Fixed-width little-endian fields, explicit padding,
// static_asserts on sizes and offsets. Header-only and dependency-free so the static companion
// binary can include it. Everything the host reads through this layout is untrusted.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

namespace haywire::beacon {

static_assert(std::endian::native == std::endian::little,
              "the beacon layout is little-endian; a big-endian host would need byte swaps");

inline constexpr std::uint32_t kMagic = 0x3142FACE;
inline constexpr std::uint16_t kProtocolVersion = 1;
inline constexpr std::size_t kPageSize = 4096;

enum class BlockType : std::uint16_t {
  kUnused = 0,
  kMaster = 1,       // page 0 of the area: directory, camera requests and statuses
  kPageTable = 2,    // pages 1..N: guest-physical address of every page of the area
  kPids = 3,         // PID discovery: every PID, rewritten each cycle
  kRoundRobin = 4,   // one record set per known PID, one PID refreshed per cycle
  kCamera = 5,       // one focused PID: info + sections + RLE pagemap, every cycle
};

// Every page of the area starts with this header. The spec's header claims 32 bytes but its
// fields add up to 36; this one is 40, with a version and the block's page count added.
// Write order (companion): header with checksum 0 → payload → header with final checksum and
// generation (one 8-byte store each for generation/checksum words is not needed: the reader
// copies header + payload + header again and requires both headers equal and the checksum to
// verify, seqlock style).
struct PageHeader {
  std::uint32_t magic;         //  0 kMagic
  std::uint16_t version;       //  4 kProtocolVersion
  std::uint16_t block_type;    //  6 BlockType
  std::uint32_t block_id;      //  8 directory slot of the block (master: 0)
  std::uint32_t page_index;    // 12 index of this page within its block
  std::uint32_t block_pages;   // 16 pages the block's current generation spans
  std::uint32_t generation;    // 20 block generation; every page of one generation carries it
  std::uint32_t data_size;     // 24 payload bytes valid in this page (<= kPagePayload)
  std::uint32_t checksum;      // 28 page_checksum() of this header (checksum = 0) + payload
  std::uint64_t timestamp_ns;  // 32 guest CLOCK_MONOTONIC when the generation was written
};
static_assert(sizeof(PageHeader) == 40);
static_assert(offsetof(PageHeader, block_type) == 6);
static_assert(offsetof(PageHeader, generation) == 20);
static_assert(offsetof(PageHeader, checksum) == 28);
static_assert(offsetof(PageHeader, timestamp_ns) == 32);

inline constexpr std::size_t kPagePayload = kPageSize - sizeof(PageHeader);  // 4056

// The page checksum: a 4-lane multiply-xor hash over the header (with its checksum field taken
// as zero) followed by the payload's data_size bytes. Not cryptographic: it catches torn and
// stale pages, and a wrong layout; the host never trusts content for safety.
namespace detail {
inline std::uint64_t load64(const std::byte* p) {
  std::uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
inline std::uint64_t mix(std::uint64_t h, std::uint64_t w) {
  h ^= w;
  h *= 0xff51afd7ed558ccdULL;
  return h ^ (h >> 32);
}
inline void hash_bytes(std::uint64_t (&lanes)[4], std::span<const std::byte> bytes) {
  std::size_t i = 0;
  for (; i + 32 <= bytes.size(); i += 32) {
    for (int l = 0; l < 4; ++l) lanes[l] = mix(lanes[l], load64(bytes.data() + i + 8 * l));
  }
  std::byte tail[32] = {};
  if (i < bytes.size()) {
    std::memcpy(tail, bytes.data() + i, bytes.size() - i);
    for (int l = 0; l < 4; ++l) lanes[l] = mix(lanes[l], load64(tail + 8 * l));
  }
}
}  // namespace detail

inline std::uint32_t page_checksum(const PageHeader& header, std::span<const std::byte> payload) {
  PageHeader h = header;
  h.checksum = 0;
  std::uint64_t lanes[4] = {0x9E3779B97F4A7C15ULL, 0xC2B2AE3D27D4EB4FULL, 0x165667B19E3779F9ULL,
                            0x27D4EB2F165667C5ULL ^ payload.size()};
  detail::hash_bytes(lanes, std::as_bytes(std::span(&h, 1)));
  detail::hash_bytes(lanes, payload);
  std::uint64_t x = detail::mix(detail::mix(lanes[0], lanes[1]), detail::mix(lanes[2], lanes[3]));
  return static_cast<std::uint32_t>(x ^ (x >> 29));
}

// ---- Master block (page 0 of the area) ------------------------------------------------------
// Block status in the directory.
enum class BlockStatus : std::uint32_t {
  kUnused = 0,
  kValidating = 1,  // being (re)written: readers keep their previous copy
  kActive = 2,      // last_valid_generation is complete and verified by the companion
  kInvalid = 3,     // abandoned (process gone, camera recycled, write failed)
};

inline constexpr std::size_t kMaxBlocks = 32;
inline constexpr std::size_t kMaxCameras = 16;

struct DirectoryEntry {
  std::uint32_t block_type;             //  0 BlockType
  std::uint32_t status;                 //  4 BlockStatus
  std::uint32_t first_page;             //  8 index of the block's first page in the area
  std::uint32_t page_count;             // 12 pages allotted (the block uses a prefix of them)
  std::uint32_t last_valid_generation;  // 16 newest generation verified complete
  std::uint32_t camera;                 // 20 camera slot for kCamera blocks, else 0
  std::uint64_t first_page_pa;          // 24 guest-physical address of the first page (hint)
};
static_assert(sizeof(DirectoryEntry) == 32);

enum class CameraState : std::uint32_t {
  kIdle = 0,
  kStarting = 1,     // request seen, block being allocated and filled
  kActive = 2,       // block `directory_slot` holds the camera's data
  kProcessGone = 3,  // the PID does not exist (or died): block invalid
  kNoCapacity = 4,   // no pages left for another camera
};

// Companion → host, in the checksummed part of the master page.
struct CameraStatus {
  std::uint32_t pid;             //  0
  std::uint32_t state;           //  4 CameraState
  std::uint32_t directory_slot;  //  8 block holding the camera's data
  std::uint32_t generation;      // 12 that block's newest valid generation
  std::uint32_t request_seq;     // 16 the request sequence number this status answers
  std::uint32_t reserved;        // 20
  std::uint64_t data_pa;         // 24 guest-physical address of the block's first page
};
static_assert(sizeof(CameraStatus) == 32);

// Host → companion: the one host→guest write (GuestWriter). Outside the checksummed bytes of
// the master page, at kCameraRequestOffset. The host writes `priority` first, then the 8-byte
// word {pid, seq} in one naturally aligned store; the companion acts when seq changes.
// pid 0 releases the camera.
struct CameraRequest {
  std::uint32_t pid;       // 0
  std::uint32_t seq;       // 4 incremented by the host on each new request
  std::uint32_t priority;  // 8 higher keeps its camera when the companion must recycle one
  std::uint32_t reserved;  // 12
};
static_assert(sizeof(CameraRequest) == 16);

// Master flags.
inline constexpr std::uint32_t kMasterHasPhysicalFrames = 1u << 0;  // PFNs readable (CAP_SYS_ADMIN)
inline constexpr std::uint32_t kMasterLocked = 1u << 1;             // area mlock()ed
inline constexpr std::uint32_t kMasterRamFile = 1u << 2;            // host-side companion (--ram-file)

// Discovery pattern at the start of the master payload: "HAYWIRE BEACON\0\0" — with the magic,
// block type kMaster and page_index 0 it identifies the master page in a scan.
inline constexpr char kDiscoveryPattern[16] = {'H', 'A', 'Y', 'W', 'I', 'R', 'E', ' ',
                                               'B', 'E', 'A', 'C', 'O', 'N', 0, 0};

struct MasterPayload {
  char discovery[16];                     //    0 kDiscoveryPattern
  std::uint32_t protocol_version;         //   16 kProtocolVersion
  std::uint32_t companion_pid;            //   20
  std::uint64_t session_id;               //   24 random per companion start
  std::uint32_t area_pages;               //   32 pages in the beacon area
  std::uint32_t table_pages;              //   36 kPageTable pages following the master
  std::uint32_t flags;                    //   40 kMaster* flags
  std::uint32_t cycle_interval_us;        //   44 nominal sleep between cycles
  std::uint64_t cycle;                    //   48 completed companion cycles (heartbeat)
  std::uint32_t block_count;              //   56 directory entries in use
  std::uint32_t camera_count;             //   60 camera statuses in use
  std::uint64_t last_cycle_ns;            //   64 guest CLOCK_MONOTONIC at the last cycle
  std::uint64_t reserved[3];              //   72
  DirectoryEntry directory[kMaxBlocks];   //   96 (32 x 32 = 1024)
  CameraStatus cameras[kMaxCameras];      // 1120 (16 x 32 = 512)
};
static_assert(sizeof(MasterPayload) == 1632);
static_assert(offsetof(MasterPayload, directory) == 96);
static_assert(offsetof(MasterPayload, cameras) == 1120);

// Camera requests live at this offset of the master page (page offset, not payload offset),
// after the checksummed bytes (header + MasterPayload end at 40 + 1632 = 1672).
inline constexpr std::size_t kCameraRequestOffset = 3072;
static_assert(sizeof(PageHeader) + sizeof(MasterPayload) <= kCameraRequestOffset);
static_assert(kCameraRequestOffset + kMaxCameras * sizeof(CameraRequest) <= kPageSize);
static_assert(kCameraRequestOffset % 8 == 0);

// ---- Page-address table (pages 1..table_pages) ------------------------------------------------
// Payload: uint64 guest-physical address of each area page, in area order; page k of the table
// holds entries [k * kTableEntriesPerPage, ...). 0 means unknown (no physical frames readable).
inline constexpr std::size_t kTableEntriesPerPage = kPagePayload / 8;  // 507

// ---- Block content: a stream of records ------------------------------------------------------
// A block's content is the concatenation of its pages' payloads (each data_size bytes, pages in
// page_index order). The content is a sequence of records, each starting 8-byte aligned.
enum class RecordType : std::uint16_t {
  kEnd = 0,
  kPidList = 1,    // PidListRecord + uint32 pids[count]
  kProcess = 2,    // ProcessRecord + cmdline bytes
  kSection = 3,    // SectionRecord + path bytes
  kPagemap = 4,    // PagemapRecord + RleChunk[chunk_count]
};

struct RecordHeader {
  std::uint16_t type;   // 0 RecordType
  std::uint16_t flags;  // 2 per type
  std::uint32_t size;   // 4 bytes of this record including the header, multiple of 8
};
static_assert(sizeof(RecordHeader) == 8);

struct PidListRecord {
  RecordHeader header;   //  0
  std::uint32_t count;   //  8 pids that follow
  std::uint32_t total;   // 12 PIDs seen this cycle (> count when the block was too small)
  std::uint64_t cycle;   // 16
};
static_assert(sizeof(PidListRecord) == 24);

// kProcess flags
inline constexpr std::uint16_t kProcessGone = 1u << 0;        // died while being read
inline constexpr std::uint16_t kProcessKernelThread = 1u << 1;
inline constexpr std::uint16_t kProcessSectionsTruncated = 1u << 2;

struct ProcessRecord {
  RecordHeader header;           //   0 size covers cmdline bytes
  std::uint32_t pid;             //   8
  std::uint32_t ppid;            //  12
  std::uint32_t uid;             //  16
  std::uint32_t gid;             //  20
  std::uint32_t threads;         //  24
  char state;                    //  28 'R', 'S', 'D', 'Z', ...
  std::uint8_t reserved0[3];     //  29
  std::uint64_t rss_kb;          //  32
  std::uint64_t vsize_kb;        //  40
  std::uint64_t collected_ns;    //  48 guest CLOCK_MONOTONIC when read
  std::uint64_t cycle;           //  56 companion cycle when read
  std::uint32_t section_count;   //  64 kSection records following this one
  std::uint32_t cmdline_len;     //  68 bytes of cmdline after this struct (NULs → spaces)
  char comm[16];                 //  72 NUL-padded
};
static_assert(sizeof(ProcessRecord) == 88);

struct SectionRecord {
  RecordHeader header;         //  0 size covers path bytes
  std::uint64_t start;         //  8 virtual address
  std::uint64_t end;           // 16
  std::uint64_t offset;        // 24 file offset
  std::uint64_t inode;         // 32
  std::uint32_t dev_major;     // 40
  std::uint32_t dev_minor;     // 44
  char perms[4];               // 48 "rwxp" / "r--s"
  std::uint32_t path_len;      // 52 bytes of path after this struct
};
static_assert(sizeof(SectionRecord) == 56);

// ---- Pagemap RLE -------------------------------------------------------------------------
// The spec's `0xRLE` is not a number: chunks start with 'RLE1' and end with '1ELR'.
inline constexpr std::uint32_t kRleMagic = 0x31454C52;     // "RLE1" little-endian
inline constexpr std::uint32_t kRleMagicEnd = 0x524C4531;  // "1ELR"
inline constexpr std::size_t kRunsPerChunk = 62;

enum class RunType : std::uint32_t {
  kEmpty = 0,    // not present, not swapped; value 0
  kPresent = 1,  // value = PFN of the first page; page i of the run has PFN value + i
                 // (0 when the companion cannot read frames: then runs merge regardless)
  kSwapped = 2,  // value = swap entry (type << 50 | offset) of the first page; offsets consecutive
};

struct Run {
  std::uint32_t type;    // 0 RunType
  std::uint32_t length;  // 4 pages, >= 1
  std::uint64_t value;   // 8
};
static_assert(sizeof(Run) == 16);

// Fixed-size chunk (1 KiB) for predictable parsing: num_runs <= kRunsPerChunk valid runs,
// the rest zero. Runs cover [base_page, base_page + sum(length)) contiguously.
struct RleChunk {
  std::uint32_t magic;       //    0 kRleMagic
  std::uint32_t num_runs;    //    4
  std::uint64_t base_page;   //    8 virtual page number (address >> 12) of the first run
  Run runs[kRunsPerChunk];   //   16
  std::uint32_t magic_end;   // 1008 kRleMagicEnd
  std::uint32_t pages;       // 1012 sum of run lengths (cross-check)
  std::uint64_t reserved;    // 1016
};
static_assert(sizeof(RleChunk) == 1024);
static_assert(offsetof(RleChunk, magic_end) == 1008);

// kPagemap flags
inline constexpr std::uint16_t kPagemapWindowed = 1u << 0;   // covers a window, not everything
inline constexpr std::uint16_t kPagemapTruncated = 1u << 1;  // block too small: chunks missing
inline constexpr std::uint16_t kPagemapNoFrames = 1u << 2;   // PFNs not readable (values 0)

// One pagemap record per camera generation: RLE chunks over the process's sections (gaps
// between sections are not encoded: each chunk says where it starts). Windowed mode (more than
// kWindowThresholdPages of mapped address space) covers [window_start_page, +window_pages) and
// moves on each cycle.
inline constexpr std::uint64_t kWindowThresholdPages = (10ULL << 30) / kPageSize;  // 10 GiB

struct PagemapRecord {
  RecordHeader header;              //  0 flags kPagemap*
  std::uint32_t chunk_count;        //  8 RleChunk following this struct
  std::uint32_t reserved;           // 12
  std::uint64_t window_start_page;  // 16
  std::uint64_t window_pages;       // 24 pages of address space this record covers
  std::uint64_t mapped_pages;       // 32 pages in all the process's sections
  std::uint64_t present_pages;      // 40 in this record
  std::uint64_t swapped_pages;      // 48 in this record
};
static_assert(sizeof(PagemapRecord) == 56);

// Default area (8 MiB): master, page table, PIDs, round-robin, two cameras; the rest is free
// for cameras the host asks for (up to kMaxCameras).
inline constexpr std::size_t kDefaultAreaBytes = 8u << 20;

}  // namespace haywire::beacon
