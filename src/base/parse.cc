#include "haywire/base/parse.h"

#include <cctype>
#include <charconv>
#include <string>

namespace haywire {
namespace {

Result<std::uint64_t> parse_base(std::string_view text, int base, std::string_view what) {
  std::uint64_t value = 0;
  if (text.empty())
    return fail(InvalidArgument{std::string("empty ") + std::string(what)});
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value, base);
  if (ec == std::errc::result_out_of_range)
    return fail(InvalidArgument{std::string(what) + " '" + std::string(text) + "' is too large"});
  if (ec != std::errc() || ptr != text.data() + text.size())
    return fail(InvalidArgument{"not a valid " + std::string(what) + ": '" + std::string(text) + "'"});
  return value;
}

}  // namespace

Result<std::uint64_t> parse_hex(std::string_view text) { return parse_base(text, 16, "hex number"); }

Result<std::uint64_t> parse_u64(std::string_view text) {
  if (text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X'))
    return parse_base(text.substr(2), 16, "number");
  return parse_base(text, 10, "number");
}

Result<std::uint64_t> parse_size(std::string_view text) {
  std::size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits])) != 0)
    ++digits;
  auto number = parse_base(text.substr(0, digits), 10, "size");
  if (!number) return fail(InvalidArgument{"not a valid size: '" + std::string(text) + "' (try 256M or 4G)"});
  std::string unit;
  for (char c : text.substr(digits)) unit += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  unsigned shift = 0;
  if (unit.empty() || unit == "b") shift = 0;
  else if (unit == "k" || unit == "kib" || unit == "kb") shift = 10;
  else if (unit == "m" || unit == "mib" || unit == "mb") shift = 20;
  else if (unit == "g" || unit == "gib" || unit == "gb") shift = 30;
  else if (unit == "t" || unit == "tib" || unit == "tb") shift = 40;
  else return fail(InvalidArgument{"unknown size unit in '" + std::string(text) + "' (use K, M, G or T)"});
  if (shift != 0 && (*number >> (64 - shift)) != 0)
    return fail(InvalidArgument{"size '" + std::string(text) + "' is too large"});
  return *number << shift;
}

}  // namespace haywire
