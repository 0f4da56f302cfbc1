// Pagemap RLE chunk decoding (decode.h). A chunk is 1 KiB with at most kRunsPerChunk runs, so a
// chunk's pages sum to under 2^38 and can never overflow; across chunks the ascending,
// non-overlapping rule keeps the total under kVirtualPageLimit.
#include <cstring>

#include "haywire/beacon/decode.h"

namespace haywire::beacon {

Decoded<std::uint64_t> decode_rle_chunk(std::span<const std::byte> bytes, std::uint64_t min_page,
                                        std::vector<DecodedRun>& out) {
  if (bytes.size() < sizeof(RleChunk)) return std::unexpected(Invalid::kTooShort);
  RleChunk c;
  std::memcpy(&c, bytes.data(), sizeof(c));
  if (c.magic != kRleMagic || c.magic_end != kRleMagicEnd || c.num_runs > kRunsPerChunk)
    return std::unexpected(Invalid::kRle);
  if (c.base_page < min_page || c.base_page >= kVirtualPageLimit) return std::unexpected(Invalid::kRleOrder);
  std::uint64_t page = c.base_page;
  const std::size_t start = out.size();
  for (std::uint32_t i = 0; i < c.num_runs; ++i) {
    const Run& r = c.runs[i];
    if (r.type > static_cast<std::uint32_t>(RunType::kSwapped) || r.length == 0) {
      out.resize(start);
      return std::unexpected(Invalid::kRle);
    }
    if (r.length > kVirtualPageLimit - page) {
      out.resize(start);
      return std::unexpected(Invalid::kRle);
    }
    // A run's values are consecutive: the last one must not wrap.
    if (r.type != static_cast<std::uint32_t>(RunType::kEmpty) && r.value > ~std::uint64_t{0} - r.length) {
      out.resize(start);
      return std::unexpected(Invalid::kRle);
    }
    out.push_back(DecodedRun{static_cast<RunType>(r.type), page, r.length, r.value});
    page += r.length;
  }
  // Unused run slots are zero: garbage there means this is not a chunk the companion wrote.
  for (std::size_t i = c.num_runs; i < kRunsPerChunk; ++i) {
    if (c.runs[i].type != 0 || c.runs[i].length != 0 || c.runs[i].value != 0) {
      out.resize(start);
      return std::unexpected(Invalid::kRle);
    }
  }
  if (page - c.base_page != c.pages) {
    out.resize(start);
    return std::unexpected(Invalid::kRle);
  }
  return page;
}

Decoded<std::vector<DecodedRun>> decode_rle(std::span<const std::byte> bytes, std::uint32_t chunk_count) {
  if (chunk_count > bytes.size() / sizeof(RleChunk)) return std::unexpected(Invalid::kTooShort);
  std::vector<DecodedRun> runs;
  runs.reserve(std::min<std::size_t>(std::size_t{chunk_count} * kRunsPerChunk, 1u << 16));
  std::uint64_t next = 0;
  for (std::uint32_t i = 0; i < chunk_count; ++i) {
    auto end = decode_rle_chunk(bytes.subspan(std::size_t{i} * sizeof(RleChunk), sizeof(RleChunk)), next, runs);
    if (!end) return std::unexpected(end.error());
    next = *end;
  }
  return runs;
}

}  // namespace haywire::beacon
