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
      {
        std::lock_guard lock(mutex_);
        ++current_.faults;
        if (m.wp) current_.by_thread[m.thread_id].push_back(page);
      }
      // Release the page for the rest of the interval; this wakes the writer.
      (void)sync_.write_protect(page, kPageSize, false);
    }
  }
}

std::vector<PageRange> ThreadSampler::carved() const {
  std::lock_guard lock(mutex_);
  std::vector<PageRange> out;
  for (VirtAddr page : carved_) out.push_back({page, page + kPageSize});
  normalize_ranges(out);
  return out;
}

Result<void> ThreadSampler::begin_interval(Uffd& async, const std::vector<VirtAddr>& pages) {
  std::vector<VirtAddr> moved;
  for (VirtAddr raw : pages) {
    if (moved.size() >= options_.max_pages_per_interval) break;
    VirtAddr page(raw.value() & ~(kPageSize - 1));
    if (std::find(moved.begin(), moved.end(), page) != moved.end()) continue;
    // Un-protect in the async context first so its leftover marker cannot outlive the move.
    if (!async.write_protect(page, kPageSize, false)) continue;
    if (!async.unregister(page, kPageSize)) continue;
    if (!sync_.register_wp(page, kPageSize) || !sync_.write_protect(page, kPageSize, true)) {
      (void)sync_.unregister(page, kPageSize);
      (void)async.register_wp(page, kPageSize);  // give it back; it stays unarmed this interval
      continue;
    }
    moved.push_back(page);
  }
  std::lock_guard lock(mutex_);
  carved_ = std::move(moved);
  current_ = ThreadWrites{};
  current_.sampled_pages = carved_.size();
  return {};
}

Result<ThreadWrites> ThreadSampler::end_interval(Uffd& async, bool rearm_async) {
  std::vector<VirtAddr> pages;
  {
    std::lock_guard lock(mutex_);
    pages = std::move(carved_);
    carved_.clear();
  }
  std::optional<Error> first_error;
  for (VirtAddr page : pages) {
    // Un-protecting wakes a writer whose fault message we have not read yet.
    (void)sync_.write_protect(page, kPageSize, false);
    auto unregistered = sync_.unregister(page, kPageSize);
    if (!unregistered) continue;  // unmapped meanwhile
    auto registered = async.register_wp(page, kPageSize);
    if (!registered) {
      if (!first_error) first_error = registered.error();
      continue;
    }
    if (rearm_async) (void)async.write_protect(page, kPageSize, true);
  }
  ThreadWrites out;
  {
    std::lock_guard lock(mutex_);
    out = std::move(current_);
    current_ = ThreadWrites{};
  }
  if (first_error) return std::unexpected(std::move(*first_error));
  return out;
}

Result<void> ThreadSampler::stop(Uffd* async) {
  if (stopped_) return {};
  std::optional<Error> first_error;
  if (async != nullptr) {
    auto ended = end_interval(*async, false);
    if (!ended) first_error = ended.error();
  } else {
    std::lock_guard lock(mutex_);
    for (VirtAddr page : carved_) {
      (void)sync_.write_protect(page, kPageSize, false);
      (void)sync_.unregister(page, kPageSize);
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
