// The default guest image (built by scripts/build-guest.sh) and what its init promises.
#pragma once

#include <string>
#include <string_view>

#include "haywire/base/error.h"

namespace haywire::vm {

struct GuestImage {
  std::string kernel;  // vmlinuz
  std::string initrd;  // initrd.img
};

// $HAYWIRE_GUEST_DIR, else $HAYWIRE_CACHE_DIR/current, else ${XDG_CACHE_HOME:-~/.cache}/haywire/current.
// NotFound with the command that builds it.
Result<GuestImage> default_guest_image();

// The line the default guest's init prints on the serial console when userspace is up.
inline constexpr std::string_view kReadyLine = "HAYWIRE-READY";

// The 4 KiB the default guest's init writes into a tmpfs file (so into one page of guest RAM)
// for marker `id`: 64 lines of "HAYWIRE-MARKER:<id>:<nnnn>" padded with '.' to 63 bytes plus
// a newline. Must match guest/init exactly.
std::string marker_pattern(std::string_view id);

}  // namespace haywire::vm
