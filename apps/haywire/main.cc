// haywire: see inside running virtual machines from the host.
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <string>

#include "cli.h"

namespace haywire::cli {

int& exit_code() {
  static int code = kOk;
  return code;
}

int report(const Error& error) {
  std::fprintf(stderr, "haywire: %s\n", error.message().c_str());
  return error.is<InvalidArgument>() ? kUsage : kFailed;
}

void TargetOptions::add_to(CLI::App& app) {
  app.add_option("name", name, "VM name (as given to `haywire vm up`)");
  app.add_option("--qmp", qmp, "QMP socket of a QEMU started by hand (instead of NAME)");
}

// One write(2) per object: stdio would flush a long line to a pipe in 4 KiB pieces, and a
// program launched by `haywire glass -- CMD` shares our stdout, so its output could land inside
// a JSON line. A single write is not split by other writers unless the pipe is full (64 KiB).
void print_json(const nlohmann::json& j) { print_line(j.dump()); }

void print_line(std::string line) {
  line += '\n';
  std::fflush(stdout);
  const char* p = line.data();
  std::size_t left = line.size();
  while (left > 0) {
    const ssize_t n = ::write(STDOUT_FILENO, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // stdout closed (EPIPE): nothing more to say
    p += n;
    left -= static_cast<std::size_t>(n);
  }
}

std::string hex(std::uint64_t value) { return fmt::format("0x{:x}", value); }

std::string human_bytes(std::uint64_t bytes) {
  if (bytes >= (1ull << 30) && bytes % (1ull << 30) == 0) return fmt::format("{} GiB", bytes >> 30);
  if (bytes >= (1ull << 20)) return fmt::format("{} MiB", bytes >> 20);
  if (bytes >= (1ull << 10)) return fmt::format("{} KiB", bytes >> 10);
  return fmt::format("{} B", bytes);
}

}  // namespace haywire::cli

int main(int argc, char** argv) {
  using namespace haywire::cli;
  CLI::App app{"haywire: see inside running virtual machines from the host"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "haywire 0.1.0");
  app.footer("Exit codes: 0 success, 1 the operation failed, 2 bad command line.\n"
             "Run `haywire COMMAND --help` for each command.");
  register_vm_commands(app);
  register_mem_commands(app);
  register_demo_command(app);
  register_arch_commands(app);
  register_beacon_commands(app);
  register_glass_command(app);
  register_hilbert_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kUsage;
  }
  return exit_code();
}
