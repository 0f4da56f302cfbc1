// Fuzz target: pagemap RLE chunks (whole stream and one chunk at a time) over arbitrary bytes.
#include <cstdint>
#include <cstring>
#include <vector>

#include "haywire/beacon/decode.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace haywire::beacon;
  auto input = std::as_bytes(std::span(data, size));
  const auto chunks = static_cast<std::uint32_t>(size / sizeof(RleChunk));
  if (auto runs = decode_rle(input, chunks)) {
    std::uint64_t next = 0;
    for (const DecodedRun& r : *runs) {
      if (r.length == 0 || r.first_page < next || r.first_page + r.length > kVirtualPageLimit) __builtin_trap();
      next = r.first_page + r.length;
    }
    if (runs->size() > std::size_t{chunks} * kRunsPerChunk) __builtin_trap();
  }
  // A lone chunk, zero-padded, with the first 8 bytes of the input as the lower bound.
  std::vector<std::byte> chunk(sizeof(RleChunk));
  std::memcpy(chunk.data(), data, std::min(size, chunk.size()));
  std::uint64_t min_page = 0;
  if (size > sizeof(RleChunk) + 8) std::memcpy(&min_page, data + sizeof(RleChunk), 8);
  std::vector<DecodedRun> out;
  if (auto end = decode_rle_chunk(chunk, min_page, out)) {
    if (*end > kVirtualPageLimit || out.size() > kRunsPerChunk) __builtin_trap();
  } else if (!out.empty()) {
    __builtin_trap();
  }
  return 0;
}
