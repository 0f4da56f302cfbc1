// Shared pieces of the `haywire` command line: exit codes, error printing, VM target options.
#pragma once

#include <string>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "haywire/base/error.h"
#include "haywire/vm/attach.h"

namespace haywire::cli {

// Exit codes, documented in README.md.
inline constexpr int kOk = 0;
inline constexpr int kFailed = 1;  // the operation failed (VM not found, bad address, ...)
inline constexpr int kUsage = 2;   // the command line is wrong

// The code main() returns; subcommand callbacks set it.
int& exit_code();
// Wraps a subcommand body that returns an exit code into a CLI11 callback.
template <class F>
auto run(F body) {
  return [body]() { exit_code() = body(); };
}

// Prints "haywire: <message>" on stderr and returns kFailed (or kUsage for bad arguments).
int report(const Error& error);

// NAME positional or --qmp PATH, on any subcommand that takes a VM.
struct TargetOptions {
  std::string name;
  std::string qmp;
  void add_to(CLI::App& app);
  [[nodiscard]] Result<vm::Target> target() const { return vm::Target::make(name, qmp); }
};

void print_json(const nlohmann::json& j);
void print_line(std::string line);  // one write(2), newline added (see print_json)
std::string hex(std::uint64_t value);
std::string human_bytes(std::uint64_t bytes);

void register_vm_commands(CLI::App& app);
void register_mem_commands(CLI::App& app);
void register_demo_command(CLI::App& app);
void register_arch_commands(CLI::App& app);  // translate, pagetable
void register_beacon_commands(CLI::App& app);  // ps, maps, pagemap, beacon
void register_glass_command(CLI::App& app);  // glass (host-process write tracking)
void register_hilbert_command(CLI::App& app);  // hilbert d2xy / xy2d

}  // namespace haywire::cli
