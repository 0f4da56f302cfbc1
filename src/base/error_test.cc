#include "haywire/base/error.h"

#include <cerrno>

#include <gtest/gtest.h>

namespace haywire {
namespace {

TEST(Error, InvalidAddressMessageNamesTheRangeAndTheEnd) {
  Error e = InvalidAddress{0x1000, 0x20, 0x800};
  EXPECT_TRUE(e.is<InvalidAddress>());
  EXPECT_EQ(e.name(), "InvalidAddress");
  EXPECT_NE(e.message().find("0x1000+0x20"), std::string::npos);
  EXPECT_NE(e.message().find("0x800"), std::string::npos);
  ASSERT_NE(e.as<InvalidAddress>(), nullptr);
  EXPECT_EQ(e.as<InvalidAddress>()->max, 0x800u);
}

TEST(Error, ContextIsPrependedOutermostFirst) {
  Error e = Error(FileNotFound{"/dev/shm/x"}).with_context("mapping guest RAM").with_context("VM 'a'");
  EXPECT_EQ(e.message(), "VM 'a': mapping guest RAM: /dev/shm/x does not exist");
}

TEST(Error, ResultCarriesEitherValueOrError) {
  auto ok = []() -> Result<int> { return 3; }();
  auto bad = []() -> Result<int> { return fail(Timeout{"waiting for QMP", 100}); }();
  ASSERT_TRUE(ok.has_value());
  EXPECT_EQ(*ok, 3);
  ASSERT_FALSE(bad.has_value());
  EXPECT_TRUE(bad.error().is<Timeout>());
  EXPECT_EQ(bad.error().message(), "timed out after 100 ms waiting for QMP");
}

}  // namespace
}  // namespace haywire

namespace haywire {
TEST(Error, UnsupportedAndSystemCallFailedSayWhatAndWhatToDo) {
  Error old(Unsupported{"userfaultfd UFFD_FEATURE_WP_ASYNC", "kernel 6.1.0", "needs Linux 6.7 or later"});
  EXPECT_EQ(old.name(), "Unsupported");
  EXPECT_EQ(old.message(),
            "not supported here: userfaultfd UFFD_FEATURE_WP_ASYNC (found kernel 6.1.0); needs Linux 6.7 or later");
  Error sys(SystemCallFailed{"UFFDIO_REGISTER", EPERM, "run as root"});
  EXPECT_EQ(sys.name(), "SystemCallFailed");
  EXPECT_EQ(sys.message(), "UFFDIO_REGISTER failed: Operation not permitted (run as root)");
}
}  // namespace haywire
