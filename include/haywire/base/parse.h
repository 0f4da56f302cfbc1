// Parsing of numbers people type: sizes ("256M", "4G"), addresses ("0x1000", "4096").
#pragma once

#include <cstdint>
#include <string_view>

#include "haywire/base/error.h"

namespace haywire {

// "256M", "4G", "4096", "64KiB", "1g". Binary units. Rejects overflow and junk.
Result<std::uint64_t> parse_size(std::string_view text);
// Decimal or 0x-prefixed hexadecimal; rejects overflow and junk.
Result<std::uint64_t> parse_u64(std::string_view text);
// Plain hexadecimal without prefix (as QEMU prints it), e.g. "00000000bfffffff".
Result<std::uint64_t> parse_hex(std::string_view text);

}  // namespace haywire
