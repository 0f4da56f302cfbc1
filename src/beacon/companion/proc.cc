#include "beacon/companion/proc.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace haywire::beacon::companion {
namespace {

// Parses an unsigned decimal (or hex with base 16) prefix of `s`; advances `s`. Saturates.
bool take_number(std::string_view& s, std::uint64_t& value, int base = 10) {
  std::size_t i = 0;
  std::uint64_t v = 0;
  while (i < s.size()) {
    char c = s[i];
    unsigned digit;
    if (c >= '0' && c <= '9') digit = static_cast<unsigned>(c - '0');
    else if (base == 16 && c >= 'a' && c <= 'f') digit = static_cast<unsigned>(c - 'a' + 10);
    else if (base == 16 && c >= 'A' && c <= 'F') digit = static_cast<unsigned>(c - 'A' + 10);
    else break;
    std::uint64_t next = v * static_cast<std::uint64_t>(base) + digit;
    v = (next / static_cast<std::uint64_t>(base) == v || v == 0) ? next : UINT64_MAX;
    ++i;
  }
  if (i == 0) return false;
  value = v;
  s.remove_prefix(i);
  return true;
}

// Signed decimal (stat has negative fields); returns false if not a number.
bool take_signed(std::string_view& s, std::int64_t& value) {
  bool neg = !s.empty() && s[0] == '-';
  if (neg) s.remove_prefix(1);
  std::uint64_t v = 0;
  if (!take_number(s, v)) return false;
  v = std::min<std::uint64_t>(v, static_cast<std::uint64_t>(INT64_MAX));
  value = neg ? -static_cast<std::int64_t>(v) : static_cast<std::int64_t>(v);
  return true;
}

void skip_spaces(std::string_view& s) {
  while (!s.empty() && (s[0] == ' ' || s[0] == '\t')) s.remove_prefix(1);
}

std::uint32_t clamp32(std::uint64_t v) { return static_cast<std::uint32_t>(std::min<std::uint64_t>(v, UINT32_MAX)); }
std::uint32_t clamp32(std::int64_t v) { return v < 0 ? 0 : clamp32(static_cast<std::uint64_t>(v)); }

}  // namespace

bool parse_stat(std::string_view text, ProcessInfo& info) {
  // "pid (comm) S ppid ..." — comm may hold spaces and parentheses: it ends at the last ')'.
  auto open = text.find('(');
  auto close = text.rfind(')');
  if (open == std::string_view::npos || close == std::string_view::npos || close < open) return false;
  std::string_view comm = text.substr(open + 1, close - open - 1);
  std::memset(info.comm, 0, sizeof info.comm);
  std::memcpy(info.comm, comm.data(), std::min(comm.size(), sizeof info.comm - 1));
  std::string_view rest = text.substr(close + 1);
  skip_spaces(rest);
  if (rest.empty()) return false;
  info.state = rest[0];
  rest.remove_prefix(1);
  // Fields after the state, 0-based: 0 ppid .. 5 flags .. 16 num_threads .. 19 vsize 20 rss.
  std::int64_t fields[21] = {};
  for (int i = 0; i < 21; ++i) {
    skip_spaces(rest);
    if (!take_signed(rest, fields[i])) return false;
  }
  info.ppid = clamp32(fields[0]);
  constexpr std::uint64_t kPfKthread = 0x00200000;
  info.kernel_thread = (static_cast<std::uint64_t>(fields[5]) & kPfKthread) != 0;
  info.threads = clamp32(fields[16]);
  info.vsize_kb = static_cast<std::uint64_t>(std::max<std::int64_t>(fields[19], 0)) / 1024;
  std::uint64_t rss_pages = static_cast<std::uint64_t>(std::max<std::int64_t>(fields[20], 0));
  info.rss_kb = rss_pages > (UINT64_MAX / 4) ? UINT64_MAX : rss_pages * 4;
  return true;
}

bool parse_status_ids(std::string_view text, ProcessInfo& info) {
  bool uid = false, gid = false;
  while (!text.empty()) {
    auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    bool is_uid = line.starts_with("Uid:");
    bool is_gid = line.starts_with("Gid:");
    if (!is_uid && !is_gid) continue;
    line.remove_prefix(4);
    skip_spaces(line);
    std::uint64_t v = 0;
    if (!take_number(line, v)) continue;
    (is_uid ? info.uid : info.gid) = clamp32(v);
    (is_uid ? uid : gid) = true;
    if (uid && gid) return true;
  }
  return uid;
}

void parse_cmdline(std::string_view raw, std::string& out) {
  out.assign(raw.substr(0, kMaxCmdline));
  while (!out.empty() && out.back() == '\0') out.pop_back();
  for (char& c : out) {
    if (c == '\0') c = ' ';
  }
}

bool parse_maps_line(std::string_view line, Section& s) {
  // start-end perms offset major:minor inode [path]
  std::uint64_t v = 0;
  if (!take_number(line, s.start, 16) || line.empty() || line[0] != '-') return false;
  line.remove_prefix(1);
  if (!take_number(line, s.end, 16) || s.end < s.start) return false;
  skip_spaces(line);
  if (line.size() < 4) return false;
  std::memcpy(s.perms, line.data(), 4);
  line.remove_prefix(4);
  skip_spaces(line);
  if (!take_number(line, s.offset, 16)) return false;
  skip_spaces(line);
  if (!take_number(line, v, 16) || line.empty() || line[0] != ':') return false;
  s.dev_major = clamp32(v);
  line.remove_prefix(1);
  if (!take_number(line, v, 16)) return false;
  s.dev_minor = clamp32(v);
  skip_spaces(line);
  if (!take_number(line, s.inode)) return false;
  skip_spaces(line);
  s.path.assign(line.substr(0, kMaxPath));
  return true;
}

bool parse_maps(std::string_view text, std::vector<Section>& out, std::size_t max) {
  out.clear();
  while (!text.empty()) {
    auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    if (line.empty()) continue;
    if (out.size() >= max) return false;
    out.emplace_back();
    if (!parse_maps_line(line, out.back())) out.pop_back();
  }
  return true;
}

bool read_proc_file(const std::string& path, std::string& buf, std::size_t max_bytes) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  buf.clear();
  std::size_t chunk = 4096;
  bool ok = true;
  while (buf.size() < max_bytes) {
    std::size_t old = buf.size();
    buf.resize(std::min(old + chunk, max_bytes));
    ssize_t n = ::read(fd, buf.data() + old, buf.size() - old);
    if (n < 0) {
      if (errno == EINTR) { buf.resize(old); continue; }
      buf.resize(old);
      ok = false;  // ESRCH: the process died while we read
      break;
    }
    buf.resize(old + static_cast<std::size_t>(n));
    if (n == 0) break;
    chunk = std::min<std::size_t>(chunk * 2, 1 << 20);
  }
  ::close(fd);
  return ok;
}

bool read_process(const std::string& proc_root, std::uint32_t pid, ProcessInfo& info, std::string& scratch) {
  std::string dir = proc_root + "/" + std::to_string(pid);
  info = ProcessInfo{};
  info.pid = pid;
  if (!read_proc_file(dir + "/stat", scratch, 4096) || !parse_stat(scratch, info)) return false;
  if (read_proc_file(dir + "/status", scratch, 16384)) parse_status_ids(scratch, info);
  if (read_proc_file(dir + "/cmdline", scratch, kMaxCmdline)) parse_cmdline(scratch, info.cmdline);
  // The process may have died after stat: its directory is then gone (or a zombie's).
  return process_exists(proc_root, pid);
}

bool read_sections(const std::string& proc_root, std::uint32_t pid, std::vector<Section>& out,
                   std::size_t max, bool& truncated, std::string& scratch) {
  out.clear();
  truncated = false;
  if (!read_proc_file(proc_root + "/" + std::to_string(pid) + "/maps", scratch, 16u << 20)) {
    return process_exists(proc_root, pid);  // unreadable maps of a live process: no sections
  }
  truncated = !parse_maps(scratch, out, max);
  return true;
}

bool process_exists(const std::string& proc_root, std::uint32_t pid) {
  struct stat st{};
  return ::stat((proc_root + "/" + std::to_string(pid)).c_str(), &st) == 0;
}

void scan_pids_into(const std::string& proc_root, std::vector<std::uint32_t>& out) {
  out.clear();
  DIR* dir = ::opendir(proc_root.c_str());
  if (dir == nullptr) return;
  while (dirent* e = ::readdir(dir)) {
    const char* n = e->d_name;
    if (n[0] < '1' || n[0] > '9') continue;
    std::uint64_t v = 0;
    bool numeric = true;
    for (const char* p = n; *p != '\0'; ++p) {
      if (*p < '0' || *p > '9' || v > UINT32_MAX) { numeric = false; break; }
      v = v * 10 + static_cast<std::uint64_t>(*p - '0');
    }
    if (numeric && v <= UINT32_MAX) out.push_back(static_cast<std::uint32_t>(v));
  }
  ::closedir(dir);
  std::sort(out.begin(), out.end());
}

}  // namespace haywire::beacon::companion
