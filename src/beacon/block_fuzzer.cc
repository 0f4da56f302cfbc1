// Fuzz target: block assembly over several pages plus the record stream parser. The input is
// split into pages (zero-padded); the whole input is also parsed as a bare record stream.
#include <cstdint>
#include <cstring>
#include <vector>

#include "haywire/beacon/decode.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace haywire::beacon;
  auto input = std::as_bytes(std::span(data, size));
  if (auto c = parse_records(input)) {
    std::size_t strings = 0;
    for (const Process& p : c->processes) {
      if (p.comm.size() > 16 || p.cmdline.size() > 4096) __builtin_trap();
      strings += p.cmdline.size();
      for (const Section& s : p.sections) strings += s.path.size();
      if (p.pagemap && p.pagemap->runs.size() > size) __builtin_trap();
    }
    if (strings > size) __builtin_trap();
    if (c->pid_list && c->pid_list->pids.size() * 4 > size) __builtin_trap();
  }
  const std::size_t pages = std::min<std::size_t>(4, (size + kPageSize - 1) / kPageSize);
  std::vector<std::byte> buf(std::max<std::size_t>(pages, 1) * kPageSize);
  std::memcpy(buf.data(), data, size < buf.size() ? size : buf.size());
  std::vector<std::span<const std::byte>> spans;
  for (std::size_t i = 0; i < std::max<std::size_t>(pages, 1); ++i) spans.push_back(std::span<const std::byte>(buf).subspan(i * kPageSize, kPageSize));
  PageHeader h0;
  std::memcpy(&h0, buf.data(), sizeof(h0));
  BlockCopy copy;
  if (copy_block(spans, {static_cast<BlockType>(h0.block_type), h0.block_id, 0}, copy)) {
    if (copy.content.size() > spans.size() * kPagePayload) __builtin_trap();
    (void)parse_records(copy.content);
  }
  return 0;
}
