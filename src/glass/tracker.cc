#include "haywire/glass/tracker.h"

#include <dirent.h>

#include <algorithm>
#include <cerrno>

#include <fmt/format.h>

#include "haywire/base/fd.h"
#include "haywire/base/parse.h"
#include "haywire/glass/thread_sampler.h"

namespace haywire::glass {
namespace {

std::uint64_t total_pages(const std::vector<PageRange>& ranges) {
  std::uint64_t pages = 0;
  for (const PageRange& r : ranges) pages += r.pages();
  return pages;
}

// Up to `limit` page addresses spread evenly over `ranges`.
std::vector<VirtAddr> spread_pages(const std::vector<PageRange>& ranges, std::size_t limit) {
  std::vector<VirtAddr> out;
  std::uint64_t total = total_pages(ranges);
  if (total == 0 || limit == 0) return out;
  std::uint64_t step = std::max<std::uint64_t>(1, total / limit);
  std::uint64_t index = 0;
  for (const PageRange& r : ranges) {
    for (std::uint64_t p = 0; p < r.pages(); ++p, ++index) {
      if (index % step == 0 && out.size() < limit) out.push_back(r.start + p * kPageSize);
    }
  }
  return out;
}

// The ranges of `ranges` that overlap some range of `marks` (both normalized), whole.
std::vector<PageRange> ranges_touching(const std::vector<PageRange>& ranges, const std::vector<PageRange>& marks) {
  std::vector<PageRange> out;
  std::size_t j = 0;
  for (const PageRange& r : ranges) {
    while (j < marks.size() && marks[j].end <= r.start) ++j;
    if (j < marks.size() && marks[j].start < r.end) out.push_back(r);
  }
  return out;
}

// `ranges` (normalized) with the gaps of at most `max_gap` bytes between neighbours filled in.
std::vector<PageRange> bridge_gaps(const std::vector<PageRange>& ranges, std::uint64_t max_gap) {
  std::vector<PageRange> out;
  for (const PageRange& r : ranges) {
    if (!out.empty() && r.start - out.back().end <= max_gap) {
      out.back().end = r.end;
    } else {
      out.push_back(r);
    }
  }
  return out;
}

// A sampled scan walks the watched ranges, joined across gaps up to one page-table page (512
// pages): walking such a gap costs less than a separate call for the range after it.
constexpr std::uint64_t kWalkBridge = std::uint64_t{512} * kPageSize;

}  // namespace

Tracker::Tracker(Pid pid, Uffd uffd, PagemapScanner scanner, TrackerOptions options)
    : pid_(pid), uffd_(std::move(uffd)), scanner_(std::move(scanner)), options_(std::move(options)) {}
Tracker::~Tracker() { (void)detach(); }
Tracker::Tracker(Tracker&&) noexcept = default;
Tracker& Tracker::operator=(Tracker&&) noexcept = default;

Result<Tracker> Tracker::create(Pid pid, Uffd async_uffd, TrackerOptions options) {
  if (!async_uffd.features().wp_async)
    return fail(InvalidArgument{"the tracker needs a userfaultfd opened with wp_async"});
  auto scanner = PagemapScanner::open(pid);
  if (!scanner) return std::unexpected(std::move(scanner.error()));
  Tracker tracker(pid, std::move(async_uffd), std::move(*scanner), std::move(options));
  auto refreshed = tracker.refresh_layout(false);
  if (!refreshed) {
    (void)tracker.detach();
    return std::unexpected(std::move(refreshed.error()));
  }
  tracker.created_ = true;
  // Everything chosen was armed just now: the first interval watches all of it.
  tracker.rearmed_ = subtract_ranges(tracker.registered_, tracker.excluded());
  return tracker;
}

std::vector<PageRange> Tracker::excluded() const {
  return sampler_ ? sampler_->carved() : std::vector<PageRange>{};
}

Result<void> Tracker::protect(const std::vector<PageRange>& ranges, bool enable) {
  for (const PageRange& r : subtract_ranges(ranges, excluded())) {
    ++ioctls_;
    auto done = uffd_.write_protect(r.start, r.bytes(), enable);
    // EAGAIN: a layout event is pending; read it (it unblocks the target) and retry. A target
    // whose threads unmap or madvise memory all the time (malloc arenas trimming) can have the
    // next one pending by then, so keep reading and retrying, for up to about 200 ms.
    for (int attempt = 0; !done && attempt < 200; ++attempt) {
      auto* sys = done.error().as<SystemCallFailed>();
      if (sys == nullptr || sys->err != EAGAIN) break;
      auto events = attempt == 0 ? process_events() : wait_events(1);
      if (!events) return std::unexpected(std::move(events.error()));
      ++ioctls_;
      done = uffd_.write_protect(r.start, r.bytes(), enable);
    }
    if (!done) {
      // ENOENT: the memory is no longer registered (unmapped, or replaced, since the layout was
      // read): nothing to protect or unprotect there; the next scan's layout read forgets it.
      auto* sys = done.error().as<SystemCallFailed>();
      if (sys != nullptr && sys->err == ENOENT) {
        sizes_at_read_.reset();  // the layout changed: read it at the next scan
        continue;
      }
      return done;
    }
  }
  return {};
}

Result<Tracker::Refresh> Tracker::refresh_layout_if_changed(bool& read) {
  // The counters are read before the maps: a change between the two reads shows in the maps
  // now and in the counters next time (one read too many, never one too few).
  auto sizes = read_vm_sizes(pid_);
  ++scans_since_read_;
  read = !sizes || sizes_at_read_ != *sizes || scans_since_read_ >= options_.maps_every;
  if (!read) return Refresh{};
  auto refreshed = refresh_layout(false);
  if (refreshed && sizes) sizes_at_read_ = *sizes;
  return refreshed;
}

Result<Tracker::Refresh> Tracker::refresh_layout(bool force_register) {
  scans_since_read_ = 0;
  sizes_at_read_.reset();
  auto maps = read_maps(pid_);
  if (!maps) return std::unexpected(std::move(maps.error()));
  std::vector<PageRange> desired;
  std::vector<PageRange> added;
  unsigned skipped = 0;
  Refresh result;
  for (const MemoryRegion& region : *maps) {
    bool wanted = options_.filter ? options_.filter(region)
                                  : is_trackable(region) && region.size() <= options_.max_region_bytes;
    if (!wanted) continue;
    std::vector<PageRange> whole{{region.start, region.end}};
    std::vector<PageRange> todo = force_register ? whole : subtract_ranges(whole, registered_);
    bool ok = true;
    for (const PageRange& piece : subtract_ranges(todo, excluded())) {
      ++ioctls_;
      if (!uffd_.register_wp(piece.start, piece.bytes())) {
        ok = false;
        break;
      }
      added.push_back(piece);
    }
    if (!ok) {
      // Mappings the kernel cannot write-protect (VM_PFNMAP, hugetlb without support...) or
      // one that vanished since the read: leave it untracked.
      ++skipped;
      continue;
    }
    desired.push_back({region.start, region.end});
  }
  normalize_ranges(desired);
  normalize_ranges(added);
  std::vector<PageRange> gone = subtract_ranges(registered_, desired);
  std::vector<PageRange> fresh = subtract_ranges(added, registered_);
  result.added = static_cast<unsigned>(fresh.size());
  result.removed = static_cast<unsigned>(gone.size());
  registered_ = desired;
  ever_registered_ = union_ranges(ever_registered_, added);
  regions_ = std::move(*maps);
  skipped_ = skipped;
  if (sampled_) {
    armed_ = intersect_ranges(armed_, registered_);
    watched_ = intersect_ranges(watched_, registered_);
  }
  // New memory: what was written there before this read is reported with this scan, in both
  // modes. Full mode arms it in the same pass (arming after collecting would lose a write
  // landing in between) and watches it from now on. Sampled mode only reads it and leaves it
  // to the plans, like the pages written since their last arming: arming all of it would put
  // a write-protect marker on every page not touched yet, and a marker makes the first write
  // fault twice.
  // A forced pass (full mode) re-arms everything it registered: it runs after the kernel said
  // a range was not (or no longer) registered, so the previous arming is gone anyway.
  if (!added.empty()) {
    std::vector<PageRange> to_arm = force_register ? added : fresh;
    if (created_ && !force_register) {
      std::vector<PageRange> failed;
      for (const PageRange& r : subtract_ranges(fresh, excluded())) {
        ++ioctls_;
        auto done = sampled_ ? scanner_.read_written_before(r.start, r.end, written_before_)
                             : scanner_.collect_written_before(r.start, r.end, written_before_);
        if (!done) failed.push_back(r);
      }
      to_arm = std::move(failed);
    }
    if (!sampled_) {
      if (auto armed = protect(to_arm, true); !armed) return std::unexpected(std::move(armed.error()));
    }
  }
  return result;
}

Result<ScanResult> Tracker::scan(bool rearm) {
  if (detached_) return fail(InvalidArgument{"scan() after detach()"});
  std::uint64_t ioctls_before = ioctls_ + scanner_.ioctls();
  ScanResult result;
  // The carved pages' writes of the interval (they stay carved: excluded from the reads below).
  ThreadWrites thread_writes;
  if (sampler_) thread_writes = sampler_->end_interval();
  auto refreshed = refresh_layout_if_changed(result.maps_read);
  if (!refreshed) return std::unexpected(std::move(refreshed.error()));
  result.regions_added = refreshed->added;
  result.regions_removed = refreshed->removed;
  rearmed_.clear();
  unarmed_known_ = false;
  for (int attempt = 0;; ++attempt) {
    result.written.clear();
    const std::vector<PageRange>& watched = sampled_ ? watched_ : registered_;
    Result<std::uint64_t> pages = 0;
    std::vector<PageRange> read = subtract_ranges(watched, excluded());
    if (sampled_ || !rearm) {
      // Sampled mode only reads (so does full mode when sampled mode follows), which changes
      // nothing (no TLB flush, no fault later). The watched pages written are this interval's
      // result; what the walk saw armed tells set_sampled() which ranges of the next plan need
      // arming at all. Re-arming this plan instead would make the target fault on pages the
      // next plan does not read, and interrupt its CPUs with a TLB flush per range.
      // Sampled mode walks only what it watched (bridged across short gaps): a page outside
      // was not armed when the interval began, so its state says nothing new. Full mode walks
      // every tracked page (one call per region): all of it was armed.
      walked_ = sampled_ ? subtract_ranges(intersect_ranges(bridge_gaps(read, kWalkBridge), registered_), excluded())
                         : subtract_ranges(registered_, excluded());
      unarmed_.clear();
      for (const PageRange& r : walked_) {
        pages = scanner_.read_written(r.start, r.end, unarmed_, true);
        if (!pages) break;
      }
      if (pages) {
        result.walked_pages = total_pages(walked_);
        normalize_ranges(unarmed_);
        result.written = intersect_ranges(unarmed_, read);
        if (sampled_) result.watched = std::move(read);
        unarmed_known_ = true;
        break;
      }
    } else {
      // Full mode re-arms what it reads: the next interval watches every page again.
      for (const PageRange& r : read) {
        pages = scanner_.collect_written(r.start, r.end, result.written, true);
        if (!pages) break;
      }
      if (pages) {
        result.walked_pages = total_pages(read);
        rearmed_ = std::move(read);
        break;
      }
    }
    // A watched range holds memory our context does not cover: it was unmapped and mapped again
    // between two reads of the layout. Register everything again and rescan once.
    if (attempt > 0 || !pages.error().is<Unsupported>()) return std::unexpected(std::move(pages.error()));
    auto again = refresh_layout(true);
    if (!again) return std::unexpected(std::move(again.error()));
    result.layout_changed = true;
  }
  for (const auto& [tid, pages] : thread_writes.by_thread)
    for (VirtAddr page : pages) result.written.push_back({page, page + kPageSize});
  result.written.insert(result.written.end(), written_before_.begin(), written_before_.end());
  written_before_.clear();
  normalize_ranges(result.written);
  result.written_pages = total_pages(result.written);
  result.tracked_pages = total_pages(registered_);
  result.armed_pages = sampled_ ? total_pages(result.watched) : result.tracked_pages;
  result.sampled = sampled_;
  result.layout_changed = result.layout_changed || result.regions_added != 0 || result.regions_removed != 0;
  if (sampler_) {
    // One thread at both ends of the interval: it wrote everything, nothing to sample. (A
    // thread that came and went in between is missed; one that is still there shows now.)
    auto threads = read_thread_count(pid_);
    const std::uint32_t now = threads ? *threads : 0;
    if (now == 1 && threads_at_last_scan_ == 1) thread_writes.sole_writer = static_cast<std::uint32_t>(pid_.value());
    threads_at_last_scan_ = now;
    // Sample threads where writing happens now: pages written in this interval (the sampler
    // keeps the ones it has and fills free places from these).
    std::vector<VirtAddr> candidates;
    if (now != 1) {
      candidates = spread_pages(
          subtract_ranges(sampled_ ? intersect_ranges(result.written, armed_) : result.written, excluded()),
          sampler_->max_pages());
    }
    if (auto begun = sampler_->begin_interval(uffd_, candidates); !begun) return std::unexpected(std::move(begun.error()));
    last_thread_writes_ = std::move(thread_writes);
  }
  result.ioctls = ioctls_ + scanner_.ioctls() - ioctls_before;
  return result;
}

Result<void> Tracker::set_sampled(std::vector<PageRange> ranges) {
  if (detached_) return fail(InvalidArgument{"set_sampled() after detach()"});
  for (PageRange& r : ranges) {
    r.start = VirtAddr(r.start.value() & ~(kPageSize - 1));
    r.end = VirtAddr((r.end.value() + kPageSize - 1) & ~(kPageSize - 1));
  }
  normalize_ranges(ranges);
  std::vector<PageRange> next = intersect_ranges(ranges, registered_);
  // Arming the plan re-protects only what was written there since it was last armed (the
  // scan's cost follows the written pages, not the range). Pages outside the plan are left as
  // they are: an armed page costs the target nothing until its first write, which disarms it,
  // so un-protecting them would cost the monitor a page-table pass to save at most one fault.
  // While they stay armed they are watched too (watched_ below): that fault is information.
  // What the last scan read was re-armed by it, when this interval began: only the rest of the
  // plan needs arming.
  std::vector<PageRange> to_arm = subtract_ranges(subtract_ranges(next, rearmed_), excluded());
  // After a reading scan, the pages it saw armed are known: a range of the plan within them is
  // armed already (a write since the scan is this interval's, and caught), so it needs no call.
  // Each other range is re-protected whole, in one call.
  last_arming_ = {next.size(), to_arm.size(), unarmed_known_};
  std::optional<std::vector<PageRange>> known = known_armed();
  if (known) {
    to_arm = ranges_touching(to_arm, subtract_ranges(registered_, *known));
    last_arming_.rearmed = to_arm.size();
  }
  if (auto armed = rearm(to_arm); !armed) return armed;
  // Watched from now on: every page known to be armed. After a reading scan, what it saw
  // armed, plus the ranges just re-protected; after a re-arming full scan, what it re-armed;
  // else (after create, or layout events) only what was armed here.
  if (known) {
    watched_ = union_ranges(std::move(*known), to_arm);
  } else {
    watched_ = subtract_ranges(intersect_ranges(union_ranges(rearmed_, to_arm), registered_), excluded());
  }
  unarmed_known_ = false;
  armed_ = std::move(next);
  sampled_ = true;
  return {};
}

std::optional<std::vector<PageRange>> Tracker::known_armed() const {
  if (!unarmed_known_) return std::nullopt;
  return subtract_ranges(subtract_ranges(intersect_ranges(walked_, registered_), unarmed_), excluded());
}

Result<void> Tracker::set_full() {
  if (detached_) return fail(InvalidArgument{"set_full() after detach()"});
  // Full mode after a scan that re-armed everything: nothing to do. After a sampled scan, or a
  // full one that only read (scan(false)), arm what that scan did not.
  const bool armed_by_scan = !sampled_ && !unarmed_known_;
  unarmed_known_ = false;
  if (armed_by_scan) return {};
  if (auto armed = rearm(subtract_ranges(subtract_ranges(registered_, rearmed_), excluded())); !armed) return armed;
  armed_.clear();
  watched_.clear();
  sampled_ = false;
  return {};
}

Result<void> Tracker::disarm() {
  if (detached_) return fail(InvalidArgument{"disarm() after detach()"});
  if (auto r = protect(registered_, false); !r) return r;
  // Known now: nothing is armed (a write since is caught by no one, and costs nothing).
  rearmed_.clear();
  watched_.clear();
  walked_ = subtract_ranges(registered_, excluded());
  unarmed_ = walked_;
  unarmed_known_ = true;
  return {};
}

Result<void> Tracker::rearm(const std::vector<PageRange>& ranges) {
  for (const PageRange& r : ranges) {
    // A range unmapped since the layout was read is skipped by the kernel (not registered).
    if (auto done = scanner_.rearm(r.start, r.end); !done) return done;
  }
  return {};
}

void Tracker::apply(const UffdMessage& message) {
  if (message.type == UffdMessage::Type::kUnmap || message.type == UffdMessage::Type::kRemap) {
    unarmed_known_ = false;
    sizes_at_read_.reset();  // read the layout at the next scan
  }
  switch (message.type) {
    case UffdMessage::Type::kUnmap: {
      std::vector<PageRange> gone{{message.address, message.end}};
      registered_ = subtract_ranges(registered_, gone);
      armed_ = subtract_ranges(armed_, gone);
      watched_ = subtract_ranges(watched_, gone);
      rearmed_ = subtract_ranges(rearmed_, gone);
      break;
    }
    case UffdMessage::Type::kRemap: {
      // With event_remap the moved pages keep our registration and their protection state.
      std::vector<PageRange> from{{message.address, message.address + message.length}};
      std::vector<PageRange> to{{message.new_address, message.new_address + message.length}};
      bool was_armed = !intersect_ranges(armed_, from).empty();
      rearmed_ = subtract_ranges(rearmed_, from);
      // Moved pages keep their protection, but whether they were written is unknown here:
      // no longer watched this interval (a plan takes them in again).
      watched_ = subtract_ranges(watched_, from);
      registered_ = union_ranges(subtract_ranges(registered_, from), to);
      ever_registered_ = union_ranges(ever_registered_, to);
      if (sampled_) {
        armed_ = subtract_ranges(armed_, from);
        if (was_armed) armed_ = union_ranges(armed_, to);
      }
      break;
    }
    default:
      break;  // remove (madvise) keeps the registration; fork does not touch ours
  }
}

Result<std::size_t> Tracker::process_events() {
  std::size_t count = 0;
  while (true) {
    auto message = uffd_.read_message();
    if (!message) return std::unexpected(std::move(message.error()));
    if (!message->has_value()) return count;
    UffdMessage& m = **message;
    ++count;
    apply(m);
    TrackerEvent event{m.type, m.address, m.end, m.new_address, m.length, std::nullopt};
    if (m.type == UffdMessage::Type::kFork && options_.follow_forks)
      event.child = Uffd::adopt(std::move(m.child_uffd), uffd_.features());
    if (callback_) callback_(event);
    // Anything not taken (child context) closes here: the child then runs untracked.
  }
}

Result<std::size_t> Tracker::wait_events(int timeout_ms, int also_fd) {
  auto ready = uffd_.wait_readable(timeout_ms, also_fd);
  if (!ready) return std::unexpected(std::move(ready.error()));
  return process_events();
}

Result<void> Tracker::enable_thread_sampling(Uffd sync_uffd, const ThreadSamplerOptions& options) {
  if (sync_uffd.features().wp_async)
    return fail(InvalidArgument{"the thread sampler needs a synchronous context (without wp_async)"});
  auto sampler = ThreadSampler::start(std::move(sync_uffd), options);
  if (!sampler) return std::unexpected(std::move(sampler.error()));
  sampler_ = std::move(*sampler);
  auto threads = read_thread_count(pid_);
  threads_at_last_scan_ = threads ? *threads : 0;
  return {};
}

const ThreadWrites* Tracker::last_thread_writes() const {
  return sampler_ ? &last_thread_writes_ : nullptr;
}

Result<void> Tracker::detach() {
  if (uffd_.fd() < 0) return {};
  std::optional<Error> first_error;
  if (sampler_) {
    if (auto stopped = sampler_->stop(&uffd_); !stopped && !first_error) first_error = stopped.error();
    sampler_.reset();
  }
  // Events first: a target blocked on an unread message would otherwise wait until close.
  (void)process_events();
  // Unregister what is still mapped of everything we ever registered, region by region: the
  // kernel refuses a range whose mappings changed type, and vanished ones need nothing.
  auto maps = read_maps(pid_);
  if (maps) {
    std::vector<PageRange> mapped;
    for (const MemoryRegion& r : *maps) mapped.push_back({r.start, r.end});
    for (const PageRange& r : intersect_ranges(ever_registered_, mapped)) {
      auto done = uffd_.unregister(r.start, r.bytes());
      if (!done && !first_error) first_error = done.error();
    }
  } else if (!maps.error().is<NotFound>()) {
    first_error = maps.error();
  }
  registered_.clear();
  armed_.clear();
  watched_.clear();
  ever_registered_.clear();
  // Closing our reference releases the context once the target's own copy is gone too
  // (the attach layer closes that one), which also drops any registration we missed.
  uffd_ = Uffd::adopt(UniqueFd(), {});
  detached_ = true;
  if (first_error) return std::unexpected(std::move(*first_error));
  return {};
}

Result<std::vector<Pid>> Tracker::children_of(Pid pid) {
  std::string dir = fmt::format("/proc/{}/task", pid.value());
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return fail(NotFound{fmt::format("process {}", pid.value()), "it has exited"});
  std::vector<Pid> out;
  while (dirent* entry = ::readdir(d)) {
    if (entry->d_name[0] == '.') continue;
    auto text = read_text_file(dir + "/" + entry->d_name + "/children", 1 << 16);
    if (!text) continue;
    std::string_view rest = *text;
    while (!rest.empty()) {
      std::size_t space = rest.find(' ');
      auto value = parse_u64(rest.substr(0, space));
      if (value && *value > 0 && *value < (1u << 31)) out.push_back(Pid(static_cast<std::int32_t>(*value)));
      rest = space == std::string_view::npos ? std::string_view{} : rest.substr(space + 1);
    }
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace haywire::glass
