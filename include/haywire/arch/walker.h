// The page walk itself: one virtual address through the guest's own tables, read from guest
// RAM. No cache, no state: what the CPU would do right now (except that A/D bits are never
// written). The guest is hostile: a walk reads at most one entry per level, and a table that
// is not in guest RAM ends the walk with a fault instead of a read past the mapping.
#pragma once

#include <span>

#include "haywire/arch/paging.h"
#include "haywire/base/types.h"
#include "haywire/guest/ram.h"

namespace haywire::arch {

// Walks `cr3`'s tables for `va`. Never fails as a call: an unmapped address is a Translation
// whose `fault` says where and why.
Translation walk(const guest::GuestRam& ram, const PagingMode& mode, Cr3 cr3, VirtAddr va);

// Walks each of `vas` into the matching slot of `out` (sizes must match; extra slots in
// `out` are left alone). Consecutive addresses in one page cost one walk.
void walk_batch(const guest::GuestRam& ram, const PagingMode& mode, Cr3 cr3,
                std::span<const VirtAddr> vas, std::span<Translation> out);

}  // namespace haywire::arch
