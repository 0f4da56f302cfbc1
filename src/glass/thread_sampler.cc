#include "haywire/glass/thread_sampler.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <optional>

namespace haywire::glass {

ThreadSampler::ThreadSampler(Uffd sync_uffd, UniqueFd stop_event, const ThreadSamplerOptions& options)
    : sync_(std::move(sync_uffd)), stop_event_(std::move(stop_event)), options_(options) {}

Result<std::unique_ptr<ThreadSampler>> ThreadSampler::start(Uffd sync_uffd, const ThreadSamplerOptions& options) {
  if (sync_uffd.features().wp_async)
    return fail(InvalidArgument{"thread sampling needs a synchronous userfaultfd (without wp_async)"});
  int event = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (event < 0) return fail(SystemCallFailed{"eventfd", errno, ""});
  std::unique_ptr<ThreadSampler> sampler(new ThreadSampler(std::move(sync_uffd), UniqueFd(event), options));
  sampler->thread_ = std::thread([s = sampler.get()] { s->run(); });
  return sampler;
}

ThreadSampler::~ThreadSampler() { (void)stop(nullptr); }

void ThreadSampler::run() {
  pollfd fds[2] = {{sync_.fd(), POLLIN, 0}, {stop_event_.get(), POLLIN, 0}};
  while (true) {
    int n = ::poll(fds, 2, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 || (fds[1].revents & POLLIN) != 0) return;
    if ((fds[0].revents & (POLLERR | POLLHUP)) != 0) return;
    while (true) {
      auto message = sync_.read_message();
      if (!message || !message->has_value()) break;
      const UffdMessage& m = **message;
      if (m.type != UffdMessage::Type::kPageFault) continue;
      VirtAddr page(m.address.value() & ~(kPageSize - 1));
      std::lock_guard lock(mutex_);
      ++current_.faults;
      if (m.wp) current_.by_thread[m.thread_id].push_back(page);
      auto it = slot_of(page);
      if (it != carved_.end() && it->page == page) it->written = true;
      // Release the page for the rest of the interval; this wakes the writer. Under the lock,
      // so that begin_interval cannot protect it again before this call un-protects it.
      (void)sync_.write_protect(page, kPageSize, false);
    }
  }
}

std::vector<ThreadSampler::Carved>::iterator ThreadSampler::slot_of(VirtAddr page) {
  return std::lower_bound(carved_.begin(), carved_.end(), page, [](const Carved& c, VirtAddr p) { return c.page < p; });
}

std::vector<PageRange> ThreadSampler::carved() const {
  std::lock_guard lock(mutex_);
  std::vector<PageRange> out;
  out.reserve(carved_.size());
  for (const Carved& c : carved_) out.push_back({c.page, c.page + kPageSize});
  normalize_ranges(out);
  return out;
}

ThreadWrites ThreadSampler::end_interval() {
  std::lock_guard lock(mutex_);
  // Protect the pages written in this interval again now, before the interval's writes are
  // handed out: a write from here on faults and is the next interval's (the fault thread
  // records it after this lock), so nothing written to a carved page goes unseen.
  for (auto it = carved_.begin(); it != carved_.end();) {
    ++it->age;
    if (!it->written) {
      ++it->idle;
      ++it;
      continue;
    }
    it->written = false;
    it->idle = 0;
    if (sync_.write_protect(it->page, kPageSize, true)) {
      ++it;
      continue;
    }
    (void)sync_.unregister(it->page, kPageSize);  // its memory is gone: drop it
    it = carved_.erase(it);
  }
  ThreadWrites out = std::move(current_);
  current_ = ThreadWrites{};
  return out;
}

Result<bool> ThreadSampler::give_back(Uffd& async, VirtAddr page, bool arm) {
  // Un-protecting wakes a writer whose fault message we have not read yet.
  (void)sync_.write_protect(page, kPageSize, false);
  if (!sync_.unregister(page, kPageSize)) return false;  // unmapped meanwhile
  if (auto registered = async.register_wp(page, kPageSize); !registered) return std::unexpected(registered.error());
  if (arm) (void)async.write_protect(page, kPageSize, true);
  return true;
}

Result<void> ThreadSampler::begin_interval(Uffd& async, const std::vector<VirtAddr>& candidates) {
  std::lock_guard lock(mutex_);
  std::optional<Error> first_error;
  std::size_t returned = 0;
  std::vector<Carved> kept;
  kept.reserve(carved_.size());
  for (const Carved& c : carved_) {
    // Idle, or carved long enough to make room for pages elsewhere (threads whose pages were
    // never candidates while every place was taken).
    const bool due = c.idle >= options_.idle_intervals || c.age >= options_.max_carved_intervals;
    if (due && returned < options_.max_moves_per_interval) {
      ++returned;
      // Armed in the async context: its next write is caught there.
      if (auto back = give_back(async, c.page, true); !back && !first_error) first_error = back.error();
      continue;
    }
    kept.push_back(c);
  }
  carved_ = std::move(kept);

  // Candidates not carved already; when there are more than free places, an even spread of
  // them (taking the first ones would favour low addresses, e.g. the first threads' areas).
  std::vector<VirtAddr> fresh;
  for (VirtAddr raw : candidates) {
    VirtAddr page(raw.value() & ~(kPageSize - 1));
    auto at = slot_of(page);
    if ((at == carved_.end() || at->page != page) && std::find(fresh.begin(), fresh.end(), page) == fresh.end())
      fresh.push_back(page);
  }
  const std::size_t places = std::min(options_.max_pages - std::min(options_.max_pages, carved_.size()),
                                      options_.max_moves_per_interval);
  std::vector<VirtAddr> chosen;
  for (std::size_t i = 0; i < places && i < fresh.size(); ++i) chosen.push_back(fresh[i * fresh.size() / std::min(places, fresh.size())]);

  for (VirtAddr page : chosen) {
    auto at = slot_of(page);
    // Un-protect in the async context first so its leftover marker cannot outlive the move.
    if (!async.write_protect(page, kPageSize, false)) continue;
    if (!async.unregister(page, kPageSize)) continue;
    if (!sync_.register_wp(page, kPageSize) || !sync_.write_protect(page, kPageSize, true)) {
      (void)sync_.unregister(page, kPageSize);
      if (async.register_wp(page, kPageSize)) (void)async.write_protect(page, kPageSize, true);
      continue;
    }
    carved_.insert(at, Carved{page});
  }
  current_.sampled_pages = carved_.size();
  if (first_error) return std::unexpected(std::move(*first_error));
  return {};
}

Result<void> ThreadSampler::stop(Uffd* async) {
  if (stopped_) return {};
  std::optional<Error> first_error;
  {
    std::lock_guard lock(mutex_);
    for (const Carved& c : carved_) {
      if (async != nullptr) {
        if (auto back = give_back(*async, c.page, false); !back && !first_error) first_error = back.error();
      } else {
        (void)sync_.write_protect(c.page, kPageSize, false);
        (void)sync_.unregister(c.page, kPageSize);
      }
    }
    carved_.clear();
  }
  std::uint64_t one = 1;
  if (::write(stop_event_.get(), &one, sizeof one) < 0 && !first_error)
    first_error = Error(SystemCallFailed{"eventfd write", errno, ""});
  if (thread_.joinable()) thread_.join();
  stopped_ = true;
  if (first_error) return std::unexpected(std::move(*first_error));
  return {};
}

}  // namespace haywire::glass
