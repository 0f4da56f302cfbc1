// Fuzz target: one beacon page (verify_page, copy_page) and the master decoder over arbitrary
// bytes. The input is the page; short inputs are zero-padded.
#include <cstdint>
#include <cstring>
#include <vector>

#include "haywire/beacon/decode.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace haywire::beacon;
  std::vector<std::byte> page(kPageSize);
  std::memcpy(page.data(), data, std::min(size, kPageSize));
  if (auto h = verify_page(page)) {
    if (h->data_size > kPagePayload || h->page_index >= h->block_pages) __builtin_trap();
  }
  std::vector<std::byte> payload;
  if (auto h = copy_page(page, {.type = BlockType::kMaster}, payload)) {
    if (payload.size() != h->data_size) __builtin_trap();
  }
  // The payload as a page-address table.
  (void)decode_table_page(std::span<const std::byte>(page).subspan(sizeof(PageHeader), std::min<std::size_t>(size, kPagePayload) / 8 * 8));
  return 0;
}
