// Decoders for the beacon protocol (protocol.h): page verification, torn-free block copies,
// the record stream and the pagemap RLE. Everything they read comes from guest RAM and is
// hostile: every count, size, offset, string and run length is bounded by the bytes actually
// present, nothing allocates more than a small multiple of its input, no loop runs on a count
// that was not first checked against the input size. Malformed input yields an `Invalid` reason,
// never a crash, hang or unbounded allocation (fuzzed: beacon_*_fuzzer).
#pragma once

#include <cstdint>
#include <expected>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "haywire/beacon/protocol.h"

namespace haywire::beacon {

// Why a page, block or stream was rejected. kInProgress and kChecksum are what a concurrent
// rewrite looks like (retry); the rest mean the bytes are not (or no longer) a valid beacon.
enum class Invalid : std::uint8_t {
  kTooShort,
  kBadMagic,
  kVersion,
  kType,
  kBlockId,
  kPageIndex,
  kBlockPages,
  kDataSize,
  kChecksum,
  kInProgress,   // header changed during the copy, or pages of different generations
  kGeneration,   // older than the generation the master says is valid
  kRecord,       // a record's header, size or alignment is wrong
  kRecordOrder,  // a record where its type may not appear (section without process, ...)
  kString,       // a string length past its record
  kRle,          // an RLE chunk's magic, run count, run type, or lengths are wrong
  kRleOrder,     // RLE chunks overlap or go backwards
  kPagemapTotals,  // the pagemap record's totals disagree with its runs
  kTable,        // a page-address table entry is not a page address
};
std::string_view describe(Invalid why);

template <class T>
using Decoded = std::expected<T, Invalid>;

// The largest block and area the host accepts (the default area is 2048 pages): bounds every
// allocation a hostile directory could ask for.
inline constexpr std::uint32_t kMaxAreaPages = 1u << 16;   // 256 MiB
inline constexpr std::uint32_t kMaxBlockPages = 1u << 14;  // 64 MiB
// One past the highest virtual page number of a 64-bit address space.
inline constexpr std::uint64_t kVirtualPageLimit = 1ULL << 52;

// What a page must say about itself. Empty optionals are not checked.
struct PageExpect {
  std::optional<BlockType> type;
  std::optional<std::uint32_t> block_id;
  std::optional<std::uint32_t> page_index;
  std::uint32_t max_block_pages = kMaxBlockPages;
};

// Verifies one page (>= kPageSize bytes, a stable copy): magic, version, type, id, index,
// block_pages, data_size bound and checksum. Returns the header.
Decoded<PageHeader> verify_page(std::span<const std::byte> page, const PageExpect& expect = {});

// Seqlock copy of one live page (header, payload, header again; equal headers and a verifying
// checksum). The payload replaces `payload`'s contents.
Decoded<PageHeader> copy_page(std::span<const std::byte> live, const PageExpect& expect,
                              std::vector<std::byte>& payload);

// A consistent copy of one block generation.
struct BlockCopy {
  BlockType type = BlockType::kUnused;
  std::uint32_t block_id = 0;
  std::uint32_t generation = 0;
  std::uint32_t block_pages = 0;
  std::uint64_t timestamp_ns = 0;
  std::vector<std::byte> content;  // the pages' payloads (data_size bytes each), concatenated
};

struct BlockExpect {
  BlockType type = BlockType::kUnused;
  std::uint32_t block_id = 0;
  std::uint32_t min_generation = 0;  // the master's last_valid_generation (0: any)
};

// Copies a block from live pages (spans into guest RAM that may change during the copy), seqlock
// style: per page header, payload, header again; the two headers must be equal, the checksum
// must verify, and every page must carry page 0's generation, block_pages and timestamp.
// `pages` are the block's allotted pages in order (block_pages <= pages.size()).
// `out.content` is reused across calls (no reallocation once large enough).
Decoded<void> copy_block(std::span<const std::span<const std::byte>> pages, const BlockExpect& expect,
                         BlockCopy& out);

// ---- Records ----------------------------------------------------------------------------------
struct Section {
  std::uint64_t start = 0, end = 0, offset = 0, inode = 0;
  std::uint32_t dev_major = 0, dev_minor = 0;
  std::string perms;  // 4 characters, "rwxp"
  std::string path;
};

struct DecodedRun {
  RunType type = RunType::kEmpty;
  std::uint64_t first_page = 0;  // virtual page number
  std::uint64_t length = 0;      // pages
  std::uint64_t value = 0;       // PFN / swap entry of the first page
};

struct Pagemap {
  std::uint16_t flags = 0;  // kPagemap*
  std::uint64_t window_start_page = 0;
  std::uint64_t window_pages = 0;
  std::uint64_t mapped_pages = 0;
  std::uint64_t present_pages = 0;
  std::uint64_t swapped_pages = 0;
  std::uint64_t covered_pages = 0;  // pages the runs describe
  std::uint64_t encoded_bytes = 0;  // record bytes (header + chunks)
  std::vector<DecodedRun> runs;
};

struct Process {
  std::uint32_t pid = 0, ppid = 0, uid = 0, gid = 0, threads = 0;
  char state = '?';
  std::uint16_t flags = 0;  // kProcess*
  std::uint64_t rss_kb = 0, vsize_kb = 0, collected_ns = 0, cycle = 0;
  std::string comm;
  std::string cmdline;
  std::vector<Section> sections;
  std::optional<Pagemap> pagemap;  // camera blocks
};

struct PidList {
  std::vector<std::uint32_t> pids;
  std::uint32_t total = 0;
  std::uint64_t cycle = 0;
};

struct BlockContent {
  std::optional<PidList> pid_list;
  std::vector<Process> processes;
};

// Parses a block's record stream up to kEnd or the end of `content`. Sections and a pagemap
// belong to the process record before them (at most its section_count sections).
Decoded<BlockContent> parse_records(std::span<const std::byte> content);

// ---- Pagemap RLE ------------------------------------------------------------------------------
// Decodes one 1 KiB chunk, appending its runs to `out`. The chunk must start at or after
// `min_page` (chunks ascend without overlap); returns the page one past its last run.
Decoded<std::uint64_t> decode_rle_chunk(std::span<const std::byte> chunk, std::uint64_t min_page,
                                        std::vector<DecodedRun>& out);
// Decodes `chunk_count` chunks from `bytes` (which must hold them all).
Decoded<std::vector<DecodedRun>> decode_rle(std::span<const std::byte> bytes, std::uint32_t chunk_count);

// ---- Page-address table ---------------------------------------------------------------------
// The table page's entries (payload = data_size bytes of uint64 addresses; 0 = unknown).
// Nonzero entries must be page-aligned.
Decoded<std::vector<std::uint64_t>> decode_table_page(std::span<const std::byte> payload);

// Sanitised text from guest bytes: stops at NUL (when `stop_at_nul`), replaces bytes outside
// printable ASCII with '?', at most `max` bytes.
std::string guest_string(std::span<const std::byte> bytes, std::size_t max, bool stop_at_nul);

}  // namespace haywire::beacon
