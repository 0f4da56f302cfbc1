// Hilbert batch conversion at order 16 against the classic loop, rendering of an order-12 map
// against memset/memcpy of the same bytes, PNG writing and page counting.
// Run: glass_map_benchmark (release build).
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <random>
#include <vector>

#include <benchmark/benchmark.h>

#include "glass/hilbert_reference.h"
#include "haywire/glass/hilbert.h"
#include "haywire/glass/layout.h"
#include "haywire/glass/png.h"
#include "haywire/glass/render.h"

namespace haywire::glass {
namespace {

constexpr unsigned kOrder = 16;
constexpr std::size_t kPoints = 1 << 16;  // 512 KiB in + 512 KiB out: stays in L2

std::vector<std::uint64_t> random_indices() {
  std::mt19937_64 rng(1);
  std::vector<std::uint64_t> d(kPoints);
  for (auto& v : d) v = rng() >> (64 - 2 * kOrder);
  return d;
}

std::vector<Cell> cells_of(const std::vector<std::uint64_t>& d) {
  std::vector<Cell> cells(d.size());
  for (std::size_t i = 0; i < d.size(); ++i) cells[i] = reference::d2xy(kOrder, d[i]);
  return cells;
}

void BM_D2xyBatch(benchmark::State& state) {
  const auto d = random_indices();
  std::vector<Cell> out(d.size());
  for (auto _ : state) {
    hilbert_d2xy_batch(kOrder, d, out);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(d.size()));
}
BENCHMARK(BM_D2xyBatch);

void BM_D2xyScalar(benchmark::State& state) {
  const auto d = random_indices();
  std::vector<Cell> out(d.size());
  for (auto _ : state) {
    for (std::size_t i = 0; i < d.size(); ++i) out[i] = hilbert_d2xy(kOrder, d[i]);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(d.size()));
}
BENCHMARK(BM_D2xyScalar);

void BM_D2xyReferenceLoop(benchmark::State& state) {
  const auto d = random_indices();
  std::vector<Cell> out(d.size());
  for (auto _ : state) {
    for (std::size_t i = 0; i < d.size(); ++i) out[i] = reference::d2xy(kOrder, d[i]);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(d.size()));
}
BENCHMARK(BM_D2xyReferenceLoop);

void BM_Xy2dBatch(benchmark::State& state) {
  const auto cells = cells_of(random_indices());
  std::vector<std::uint64_t> out(cells.size());
  for (auto _ : state) {
    hilbert_xy2d_batch(kOrder, cells, out);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(cells.size()));
}
BENCHMARK(BM_Xy2dBatch);

void BM_Xy2dReferenceLoop(benchmark::State& state) {
  const auto cells = cells_of(random_indices());
  std::vector<std::uint64_t> out(cells.size());
  for (auto _ : state) {
    for (std::size_t i = 0; i < cells.size(); ++i) out[i] = reference::xy2d(kOrder, cells[i].x, cells[i].y);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(cells.size()));
}
BENCHMARK(BM_Xy2dReferenceLoop);

// --- rendering at order 12 (4096 x 4096, 64 MiB of RGBA) ------------------------------------

constexpr unsigned kRenderOrder = 12;

// A plausible map: most cells idle, clusters of activity with a spread of densities.
DensityMap sample_density() {
  DensityMap map(kRenderOrder);
  std::mt19937 rng(5);
  for (std::size_t i = 0; i < map.cells.size(); ++i) {
    const auto r = static_cast<std::uint32_t>(rng());
    map.cells[i] = (r & 7) == 0 ? static_cast<float>(r >> 8) / static_cast<float>(1 << 24) : 0.0f;
  }
  return map;
}

void BM_RenderHeatmapOrder12(benchmark::State& state) {
  const DensityMap map = sample_density();
  Image image;
  render_heatmap(map, image);  // allocate once, as the CLI does
  for (auto _ : state) {
    render_heatmap(map, image);
    benchmark::DoNotOptimize(image.rgba.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(image.rgba.size()));
}
BENCHMARK(BM_RenderHeatmapOrder12)->Unit(benchmark::kMillisecond);

void BM_RenderThreadsOrder12(benchmark::State& state) {
  const DensityMap map = sample_density();
  ThreadActivity activity{.order = kRenderOrder, .slot = std::vector<std::uint8_t>(map.cells.size()),
                          .rate = map.cells};
  for (std::size_t i = 0; i < activity.slot.size(); ++i) {
    activity.slot[i] = map.cells[i] > 0 ? static_cast<std::uint8_t>(i % 7) : kNoThread;
  }
  Image image;
  render_threads(activity, image);
  for (auto _ : state) {
    render_threads(activity, image);
    benchmark::DoNotOptimize(image.rgba.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(image.rgba.size()));
}
BENCHMARK(BM_RenderThreadsOrder12)->Unit(benchmark::kMillisecond);

void BM_OverlaysOrder12(benchmark::State& state) {
  const DensityMap map = sample_density();
  Image image;
  render_heatmap(map, image);
  std::vector<std::uint8_t> avalanche(map.cells.size(), 0);
  for (std::size_t i = 0; i < avalanche.size() / 16; ++i) avalanche[i] = 1;  // a band of rows
  for (auto _ : state) {
    draw_overlays(image, {.avalanche = avalanche});
    benchmark::DoNotOptimize(image.rgba.data());
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(avalanche.size()));
}
BENCHMARK(BM_OverlaysOrder12)->Unit(benchmark::kMillisecond);

// Baselines: the least any renderer must do is read 64 MiB of floats and write 64 MiB of pixels.
void BM_MemsetSameBytes(benchmark::State& state) {
  std::vector<std::uint8_t> pixels(std::size_t{4} << (2 * kRenderOrder), 1);
  for (auto _ : state) {
    std::memset(pixels.data(), static_cast<int>(state.iterations() & 0xFF), pixels.size());
    benchmark::DoNotOptimize(pixels.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(pixels.size()));
}
BENCHMARK(BM_MemsetSameBytes)->Unit(benchmark::kMillisecond);

void BM_MemcpySameBytes(benchmark::State& state) {
  const DensityMap map = sample_density();
  std::vector<std::uint8_t> pixels(map.cells.size() * 4);
  for (auto _ : state) {
    std::memcpy(pixels.data(), map.cells.data(), pixels.size());
    benchmark::DoNotOptimize(pixels.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(pixels.size()));
}
BENCHMARK(BM_MemcpySameBytes)->Unit(benchmark::kMillisecond);

// --- PNG and layout ---------------------------------------------------------------------------

void BM_WritePngOrder12(benchmark::State& state) {
  Image image;
  render_heatmap(sample_density(), image);
  const std::string path = "/tmp/haywire-map-benchmark-" + std::to_string(::getpid()) + ".png";
  for (auto _ : state) {
    auto written = write_png(path, image);
    if (!written) state.SkipWithError(written.error().message().c_str());
  }
  std::remove(path.c_str());
}
BENCHMARK(BM_WritePngOrder12)->Unit(benchmark::kMillisecond)->Iterations(3);

// 1 GiB tracked in 64 regions; 64 K written pages (sorted, as PAGEMAP_SCAN returns them).
void BM_LayoutCountPages(benchmark::State& state) {
  auto layout = AddressLayout::create({.order = 8});
  std::vector<VirtRange> regions;
  for (std::uint64_t i = 0; i < 64; ++i) {
    const std::uint64_t start = 0x7f0000000000 + i * (std::uint64_t{32} << 20);
    regions.push_back({VirtAddr(start), VirtAddr(start + (std::uint64_t{16} << 20))});
  }
  if (!layout || !layout->update(regions)) {
    state.SkipWithError("layout");
    return;
  }
  std::vector<VirtAddr> pages;
  std::mt19937_64 rng(9);
  for (const VirtRange& r : regions) {
    for (std::uint64_t a = r.start.value(); a < r.end.value(); a += kPageSize) {
      if ((rng() & 3) == 0) pages.push_back(VirtAddr(a));
    }
  }
  CellCounts counts;
  for (auto _ : state) {
    std::fill(counts.cells.begin(), counts.cells.end(), 0u);
    layout->count_pages(pages, counts);
    benchmark::DoNotOptimize(counts.cells.data());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(pages.size()));
}
BENCHMARK(BM_LayoutCountPages);

}  // namespace
}  // namespace haywire::glass

BENCHMARK_MAIN();
