// Collectors over /proc for the companion. Everything here tolerates processes that vanish
// between two reads and odd file content: a parser that cannot make sense of a line skips it,
// a file that cannot be opened means "gone". The parsers are pure functions over text so the
// fuzz target and the hostile-input tests drive them without a /proc.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace haywire::beacon::companion {

struct ProcessInfo {
  std::uint32_t pid = 0;
  std::uint32_t ppid = 0;
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  std::uint32_t threads = 0;
  char state = '?';
  bool kernel_thread = false;
  std::uint64_t rss_kb = 0;
  std::uint64_t vsize_kb = 0;
  char comm[16] = {};
  std::string cmdline;  // NULs turned into spaces, at most kMaxCmdline bytes
};

struct Section {
  std::uint64_t start = 0;
  std::uint64_t end = 0;
  std::uint64_t offset = 0;
  std::uint64_t inode = 0;
  std::uint32_t dev_major = 0;
  std::uint32_t dev_minor = 0;
  char perms[4] = {'-', '-', '-', '-'};
  std::string path;  // at most kMaxPath bytes
};

inline constexpr std::size_t kMaxCmdline = 512;
inline constexpr std::size_t kMaxPath = 256;

// /proc/PID/stat: comm, state, ppid, flags (kernel thread), threads, vsize, rss.
bool parse_stat(std::string_view text, ProcessInfo& info);
// /proc/PID/status: the real uid and gid.
bool parse_status_ids(std::string_view text, ProcessInfo& info);
// /proc/PID/cmdline: NUL-separated arguments.
void parse_cmdline(std::string_view raw, std::string& out);
// One line of /proc/PID/maps.
bool parse_maps_line(std::string_view line, Section& section);
// Every parseable line, at most `max` sections; returns false when lines were dropped.
bool parse_maps(std::string_view text, std::vector<Section>& out, std::size_t max);

// Reads a small /proc file into `buf` (reusing its capacity). False when it cannot be opened
// or read (the process is gone, or never existed).
bool read_proc_file(const std::string& path, std::string& buf, std::size_t max_bytes);

// Reads stat + status + cmdline. False when the process vanished (or stat is unreadable).
bool read_process(const std::string& proc_root, std::uint32_t pid, ProcessInfo& info,
                  std::string& scratch);
// Reads /proc/PID/maps. False when the process vanished; `truncated` when over `max`.
bool read_sections(const std::string& proc_root, std::uint32_t pid, std::vector<Section>& out,
                   std::size_t max, bool& truncated, std::string& scratch);
// True while /proc/PID exists and is not a zombie's leftovers being reaped.
bool process_exists(const std::string& proc_root, std::uint32_t pid);

// Numeric entries of proc_root, ascending (appended to `out` after clearing it).
void scan_pids_into(const std::string& proc_root, std::vector<std::uint32_t>& out);

}  // namespace haywire::beacon::companion
