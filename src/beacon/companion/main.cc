// haywire-companion: the beacon writer. Runs in the guest (static binary started by the default
// guest's init), or on the host against a file standing in for guest RAM (--ram-file).
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "haywire/beacon/companion.h"

namespace {

std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop.store(true); }

bool parse_u64_arg(const char* text, std::uint64_t& out) {
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(text, &end, 0);
  if (errno != 0 || end == text) return false;
  std::uint64_t mul = 1;
  std::string_view suffix(end);
  if (suffix == "K" || suffix == "k") mul = 1ULL << 10;
  else if (suffix == "M" || suffix == "m") mul = 1ULL << 20;
  else if (suffix == "G" || suffix == "g") mul = 1ULL << 30;
  else if (!suffix.empty()) return false;
  out = static_cast<std::uint64_t>(v) * mul;
  return true;
}

int usage(const char* why) {
  if (why != nullptr) std::fprintf(stderr, "haywire-companion: %s\n", why);
  std::fprintf(stderr,
               "usage: haywire-companion [--area-bytes N] [--interval-ms N] [--cycles N]\n"
               "                         [--ram-file PATH --ram-offset OFF] [--proc DIR]\n"
               "Publishes the guest's processes as beacon pages in RAM (see docs/beacon-protocol.md).\n"
               "--ram-file runs on the host against a file standing in for guest RAM.\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  haywire::beacon::CompanionOptions options;
  std::uint64_t cycles = 0;  // 0: until SIGTERM/SIGINT
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    auto value = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    std::uint64_t v = 0;
    if (arg == "--help" || arg == "-h") return usage(nullptr), 0;
    const char* text = (arg == "--area-bytes" || arg == "--interval-ms" || arg == "--ram-file" || arg == "--ram-offset" ||
                        arg == "--proc" || arg == "--cycles") ? value() : nullptr;
    if (text == nullptr) return usage(("unknown or incomplete option " + std::string(arg)).c_str());
    if (arg == "--ram-file") { options.ram_file = text; continue; }
    if (arg == "--proc") { options.proc_root = text; continue; }
    if (!parse_u64_arg(text, v)) return usage(("bad number for " + std::string(arg)).c_str());
    if (arg == "--area-bytes") options.area_bytes = static_cast<std::size_t>(v);
    else if (arg == "--interval-ms") options.interval_ms = static_cast<std::uint32_t>(v > 60000 ? 60000 : v);
    else if (arg == "--ram-offset") options.ram_offset = v;
    else if (arg == "--cycles") cycles = v;
  }
  auto companion = haywire::beacon::Companion::start(options);
  if (!companion) {
    std::fprintf(stderr, "haywire-companion: cannot start: %s\n",
                 haywire::beacon::companion_error_text(companion.error()).c_str());
    return 1;
  }
  std::uint32_t flags = (*companion)->flags();
  const auto& pa = (*companion)->page_addresses();
  std::printf("HAYWIRE-COMPANION pid=%d session=%016llx pages=%zu master_pa=0x%llx frames=%s locked=%s\n",
              static_cast<int>(::getpid()), static_cast<unsigned long long>((*companion)->session_id()), pa.size(),
              static_cast<unsigned long long>(pa.empty() ? 0 : pa[0]),
              (flags & haywire::beacon::kMasterHasPhysicalFrames) ? "yes" : "no",
              (flags & haywire::beacon::kMasterLocked) ? "yes" : "no");
  std::fflush(stdout);
  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);
  if (cycles > 0) {
    for (std::uint64_t c = 0; c < cycles && !g_stop.load(); ++c) (void)(*companion)->run_cycle();
    return 0;
  }
  (*companion)->run(g_stop);
  return 0;
}
