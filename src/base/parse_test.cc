#include "haywire/base/parse.h"

#include <gtest/gtest.h>

namespace haywire {
namespace {

TEST(ParseSize, AcceptsBinaryUnits) {
  EXPECT_EQ(parse_size("256M").value(), 256ull << 20);
  EXPECT_EQ(parse_size("4G").value(), 4ull << 30);
  EXPECT_EQ(parse_size("4g").value(), 4ull << 30);
  EXPECT_EQ(parse_size("64KiB").value(), 64ull << 10);
  EXPECT_EQ(parse_size("4096").value(), 4096u);
  EXPECT_EQ(parse_size("1T").value(), 1ull << 40);
}

TEST(ParseSize, RejectsJunkAndOverflow) {
  EXPECT_FALSE(parse_size("").has_value());
  EXPECT_FALSE(parse_size("M").has_value());
  EXPECT_FALSE(parse_size("12Q").has_value());
  EXPECT_FALSE(parse_size("-1G").has_value());
  EXPECT_FALSE(parse_size("99999999999999999999").has_value());
  EXPECT_FALSE(parse_size("17179869184G").has_value());  // 2^34 G overflows 64 bits
}

TEST(ParseU64, DecimalAndHex) {
  EXPECT_EQ(parse_u64("0x1000").value(), 0x1000u);
  EXPECT_EQ(parse_u64("0XfFfF").value(), 0xffffu);
  EXPECT_EQ(parse_u64("123").value(), 123u);
  EXPECT_EQ(parse_u64("0xffffffffffffffff").value(), ~0ull);
  EXPECT_FALSE(parse_u64("0x").has_value());
  EXPECT_FALSE(parse_u64("0x1g").has_value());
  EXPECT_FALSE(parse_u64("0x10000000000000000").has_value());
  EXPECT_FALSE(parse_u64("12 ").has_value());
}

TEST(ParseHex, QemuStyle) {
  EXPECT_EQ(parse_hex("00000000bfffffff").value(), 0xbfffffffu);
  EXPECT_FALSE(parse_hex("").has_value());
  EXPECT_FALSE(parse_hex("xyz").has_value());
}

}  // namespace
}  // namespace haywire
