// haywire hilbert d2xy | xy2d: the Hilbert-curve mapping glass lays memory out with.
#include <cstdio>
#include <string>

#include "cli.h"
#include "haywire/base/parse.h"
#include "haywire/glass/hilbert.h"

namespace haywire::cli {
namespace {

struct HilbertOptions {
  std::string order, index, x, y;
  bool json = false;
};

// Parses a decimal or 0x number no larger than `max`, naming the argument in the error.
Result<std::uint64_t> parse_bounded(const std::string& text, const char* name, std::uint64_t max,
                                    const std::string& why) {
  auto v = parse_u64(text);
  if (!v) return fail(InvalidArgument{fmt::format("{} '{}': {}", name, text, v.error().message())});
  if (*v > max) return fail(InvalidArgument{fmt::format("{} {} is out of range: {}", name, *v, why)});
  return *v;
}

Result<unsigned> parse_order(const std::string& text) {
  auto v = parse_u64(text);
  if (!v || *v < glass::kMinHilbertOrder || *v > glass::kMaxHilbertOrder) {
    return fail(InvalidArgument{fmt::format("ORDER '{}' must be an integer from {} to {}", text,
                                            glass::kMinHilbertOrder, glass::kMaxHilbertOrder)});
  }
  return static_cast<unsigned>(*v);
}

int run_d2xy(const HilbertOptions& o) {
  auto order = parse_order(o.order);
  if (!order) return report(order.error());
  const std::uint64_t cells = std::uint64_t{1} << (2 * *order);
  auto index = parse_bounded(o.index, "INDEX", cells - 1,
                             fmt::format("order {} has indices 0..{}", *order, cells - 1));
  if (!index) return report(index.error());
  const glass::Cell cell = glass::hilbert_d2xy(*order, *index);
  if (o.json) {
    print_json({{"order", *order}, {"index", *index}, {"x", cell.x}, {"y", cell.y}});
  } else {
    std::printf("%u %u\n", cell.x, cell.y);
  }
  return kOk;
}

int run_xy2d(const HilbertOptions& o) {
  auto order = parse_order(o.order);
  if (!order) return report(order.error());
  const std::uint64_t side = std::uint64_t{1} << *order;
  const std::string why = fmt::format("order {} has coordinates 0..{}", *order, side - 1);
  auto x = parse_bounded(o.x, "X", side - 1, why);
  if (!x) return report(x.error());
  auto y = parse_bounded(o.y, "Y", side - 1, why);
  if (!y) return report(y.error());
  const std::uint64_t d =
      glass::hilbert_xy2d(*order, static_cast<std::uint32_t>(*x), static_cast<std::uint32_t>(*y));
  if (o.json) {
    print_json({{"order", *order}, {"x", *x}, {"y", *y}, {"index", d}});
  } else {
    std::printf("%llu\n", static_cast<unsigned long long>(d));
  }
  return kOk;
}

}  // namespace

void register_hilbert_command(CLI::App& app) {
  auto options = std::make_shared<HilbertOptions>();
  auto* hilbert = app.add_subcommand(
      "hilbert", "Map between a Hilbert-curve index and grid cell (the layout glass draws with)");
  hilbert->require_subcommand(1);

  auto* d2xy = hilbert->add_subcommand("d2xy", "Cell (x y) of index INDEX on the curve of order ORDER");
  d2xy->add_option("order", options->order, "curve order 1-16 (grid side 2^ORDER)")->required();
  d2xy->add_option("index", options->index, "index along the curve, 0 .. 4^ORDER-1")->required();
  d2xy->add_flag("--json", options->json, "print a JSON object");
  d2xy->callback(run([options] { return run_d2xy(*options); }));

  auto* xy2d = hilbert->add_subcommand("xy2d", "Index along the curve of order ORDER of cell (X, Y)");
  xy2d->add_option("order", options->order, "curve order 1-16 (grid side 2^ORDER)")->required();
  xy2d->add_option("x", options->x, "column, 0 .. 2^ORDER-1")->required();
  xy2d->add_option("y", options->y, "row, 0 .. 2^ORDER-1")->required();
  xy2d->add_flag("--json", options->json, "print a JSON object");
  xy2d->callback(run([options] { return run_xy2d(*options); }));
}

}  // namespace haywire::cli
