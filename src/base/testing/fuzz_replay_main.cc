// Replay driver for fuzz targets when libFuzzer is not available (g++ builds).
// Runs every file named on the command line (or found in a named directory), then a fixed
// number of deterministic mutations of each (bit flips, truncations, splices, random bytes),
// so `make test` exercises every parser with hostile input on every build.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {

std::vector<std::vector<std::uint8_t>> load(int argc, char** argv) {
  std::vector<std::vector<std::uint8_t>> inputs;
  auto add = [&](const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    inputs.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  };
  for (int i = 1; i < argc; ++i) {
    std::filesystem::path p(argv[i]);
    if (std::filesystem::is_directory(p)) {
      std::vector<std::filesystem::path> files;
      for (const auto& e : std::filesystem::directory_iterator(p))
        if (e.is_regular_file()) files.push_back(e.path());
      std::sort(files.begin(), files.end());
      for (const auto& f : files) add(f);
    } else {
      add(p);
    }
  }
  if (inputs.empty()) inputs.emplace_back();
  return inputs;
}

}  // namespace

int main(int argc, char** argv) {
  auto inputs = load(argc, argv);
  std::mt19937_64 rng(0x4a7e5eed);
  constexpr int kMutationsPerInput = 2000;
  std::size_t runs = 0;
  for (const auto& input : inputs) {
    LLVMFuzzerTestOneInput(input.data(), input.size());
    ++runs;
    for (int m = 0; m < kMutationsPerInput; ++m) {
      std::vector<std::uint8_t> data = input;
      switch (rng() % 5) {
        case 0:  // flip a few bits
          for (int k = 0; k < 4 && !data.empty(); ++k)
            data[rng() % data.size()] ^= static_cast<std::uint8_t>(1u << (rng() % 8));
          break;
        case 1:  // truncate
          if (!data.empty()) data.resize(rng() % data.size());
          break;
        case 2: {  // splice with another input
          const auto& other = inputs[rng() % inputs.size()];
          if (!other.empty()) {
            std::size_t cut = data.empty() ? 0 : rng() % data.size();
            std::size_t from = rng() % other.size();
            data.resize(cut);
            data.insert(data.end(), other.begin() + static_cast<std::ptrdiff_t>(from), other.end());
          }
          break;
        }
        case 3:  // overwrite a span with random bytes
          for (std::size_t k = 0, n = rng() % 64; k < n && !data.empty(); ++k)
            data[rng() % data.size()] = static_cast<std::uint8_t>(rng());
          break;
        default:  // duplicate a chunk (grows lines, repeats structure)
          if (!data.empty()) {
            std::size_t a = rng() % data.size();
            std::size_t b = a + rng() % (data.size() - a);
            std::vector<std::uint8_t> chunk(data.begin() + static_cast<std::ptrdiff_t>(a),
                                            data.begin() + static_cast<std::ptrdiff_t>(b));
            data.insert(data.begin() + static_cast<std::ptrdiff_t>(b), chunk.begin(), chunk.end());
          }
      }
      LLVMFuzzerTestOneInput(data.data(), data.size());
      ++runs;
    }
  }
  std::printf("fuzz replay: %zu inputs, %zu runs, no crash\n", inputs.size(), runs);
  return 0;
}
