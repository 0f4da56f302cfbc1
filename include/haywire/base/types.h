// Strong address and identifier types. A physical address is not a virtual one, a CR3 is
// not a physical address, and none of them silently becomes a plain integer.
#pragma once

#include <compare>
#include <cstdint>
#include <functional>

namespace haywire {

template <class Tag, class Rep = std::uint64_t>
class Strong {
 public:
  using rep = Rep;
  constexpr Strong() = default;
  constexpr explicit Strong(Rep value) : value_(value) {}
  [[nodiscard]] constexpr Rep value() const { return value_; }
  constexpr auto operator<=>(const Strong&) const = default;

 private:
  Rep value_{};
};

// Addresses add byte offsets; subtracting two addresses of one kind gives a distance.
template <class Tag>
class Address : public Strong<Tag> {
 public:
  using Strong<Tag>::Strong;
  constexpr Address operator+(std::uint64_t bytes) const { return Address(this->value() + bytes); }
  constexpr Address operator-(std::uint64_t bytes) const { return Address(this->value() - bytes); }
  constexpr std::uint64_t operator-(Address other) const { return this->value() - other.value(); }
  constexpr auto operator<=>(const Address&) const = default;
};

struct PhysTag {};
struct VirtTag {};
struct Cr3Tag {};
struct PidTag {};

using PhysAddr = Address<PhysTag>;  // guest-physical address
using VirtAddr = Address<VirtTag>;  // guest- or process-virtual address
using Cr3 = Strong<Cr3Tag>;         // raw CR3 register value (PCID bits included)
using Pid = Strong<PidTag, std::int32_t>;

inline constexpr std::uint64_t kPageSize = 4096;
inline constexpr std::uint64_t kPageShift = 12;

}  // namespace haywire

template <class Tag, class Rep>
struct std::hash<haywire::Strong<Tag, Rep>> {
  std::size_t operator()(const haywire::Strong<Tag, Rep>& s) const noexcept {
    return std::hash<Rep>{}(s.value());
  }
};
template <class Tag>
struct std::hash<haywire::Address<Tag>> {
  std::size_t operator()(const haywire::Address<Tag>& a) const noexcept {
    return std::hash<std::uint64_t>{}(a.value());
  }
};
