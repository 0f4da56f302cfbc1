#include "haywire/vm/image.h"

#include <pwd.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include <fmt/format.h>

namespace haywire::vm {
namespace {

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return (v != nullptr && *v != '\0') ? std::string(v) : fallback;
}

}  // namespace

Result<GuestImage> default_guest_image() {
  const passwd* pw = ::getpwuid(::geteuid());
  std::string home = env_or("HOME", pw != nullptr && pw->pw_dir != nullptr ? pw->pw_dir : "/");
  std::string cache = env_or("HAYWIRE_CACHE_DIR", env_or("XDG_CACHE_HOME", home + "/.cache") + "/haywire");
  std::string dir = env_or("HAYWIRE_GUEST_DIR", cache + "/current");
  GuestImage image{dir + "/vmlinuz", dir + "/initrd.img"};
  if (!std::filesystem::exists(image.kernel) || !std::filesystem::exists(image.initrd))
    return fail(NotFound{fmt::format("no default guest image in {}", dir),
                         "build it with `make guest` or scripts/build-guest.sh, or pass --kernel and --initrd"});
  return image;
}

std::string marker_pattern(std::string_view id) {
  std::string out;
  out.reserve(4096);
  for (int line = 0; line < 64; ++line) {
    std::string text = fmt::format("HAYWIRE-MARKER:{}:{:04d}", id, line);
    if (text.size() < 63) text.append(63 - text.size(), '.');
    out += text.substr(0, 63);
    out += '\n';
  }
  return out;
}

}  // namespace haywire::vm
