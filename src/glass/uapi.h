// Kernel uapi definitions that Debian 12's 6.1 headers lack (userfaultfd async write-protect, 6.4+;
// the PAGEMAP_SCAN ioctl, 6.7+). These are fixed ABI (include/uapi/linux/userfaultfd.h and
// include/uapi/linux/fs.h, Documentation/admin-guide/mm/pagemap.rst): values never change once
// released, so defining them here is safe. Every definition is guarded so newer system headers win.
// Private to src/glass: include this instead of <linux/userfaultfd.h> / <linux/fs.h> directly.
#pragma once

#include <linux/fs.h>  // IWYU pragma: export
#include <linux/ioctl.h>
#include <linux/types.h>
#include <linux/userfaultfd.h>  // IWYU pragma: export

// ---- userfaultfd features (struct uffdio_api.features) ----
#ifndef UFFD_FEATURE_EXACT_ADDRESS
#define UFFD_FEATURE_EXACT_ADDRESS (1 << 11)
#endif
#ifndef UFFD_FEATURE_WP_HUGETLBFS_SHMEM
#define UFFD_FEATURE_WP_HUGETLBFS_SHMEM (1 << 12)
#endif
// Write-protect also applies to never-touched (pte_none) anonymous pages: without it a first write
// to an unpopulated page would not be seen.
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#endif
#ifndef UFFD_FEATURE_POISON
#define UFFD_FEATURE_POISON (1 << 14)
#endif
// Write faults on WP-registered ranges are resolved by the kernel (page un-protected, "written"
// bit set) without a message to the monitor; PAGEMAP_SCAN reads and re-arms the bit.
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15)
#endif
#ifndef UFFD_FEATURE_MOVE
#define UFFD_FEATURE_MOVE (1 << 16)
#endif

// userfaultfd(2) flag: handle user-mode faults only (needed without CAP_SYS_PTRACE when
// vm.unprivileged_userfaultfd = 0).
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif

// ---- PAGEMAP_SCAN (ioctl on /proc/PID/pagemap) ----
#ifndef PAGEMAP_SCAN

// Categories: bitmasks in pm_scan_arg masks and reported in page_region.categories.
#define PAGE_IS_WPALLOWED (1 << 0)  // async write-protect is enabled on the page's VMA
#define PAGE_IS_WRITTEN (1 << 1)    // written since it was last write-protected
#define PAGE_IS_FILE (1 << 2)
#define PAGE_IS_PRESENT (1 << 3)
#define PAGE_IS_SWAPPED (1 << 4)
#define PAGE_IS_PFNZERO (1 << 5)
#define PAGE_IS_HUGE (1 << 6)
#define PAGE_IS_SOFT_DIRTY (1 << 7)

struct page_region {
  __u64 start;  // [start, end) page-aligned
  __u64 end;
  __u64 categories;  // PAGE_IS_* restricted to return_mask
};

// Flags.
#define PM_SCAN_WP_MATCHING (1 << 0)    // write-protect (re-arm) the matched pages
#define PM_SCAN_CHECK_WPASYNC (1 << 1)  // fail (EPERM) on a page without async WP enabled

struct pm_scan_arg {
  __u64 size;      // sizeof(struct pm_scan_arg)
  __u64 flags;     // PM_SCAN_*
  __u64 start;     // page-aligned walk range [start, end)
  __u64 end;
  __u64 walk_end;  // out: where the walk stopped (== end when complete)
  __u64 vec;       // struct page_region* output array (may be 0 for WP only)
  __u64 vec_len;   // entries in vec
  __u64 max_pages;  // 0 = no limit
  __u64 category_inverted;    // categories that match when 0
  __u64 category_mask;        // all of these must match
  __u64 category_anyof_mask;  // at least one of these must match
  __u64 return_mask;          // categories reported in page_region.categories
};

#define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)

#endif  // PAGEMAP_SCAN

// Added after PAGEMAP_SCAN itself (6.14); may be absent from headers that do define PAGEMAP_SCAN.
#ifndef PAGE_IS_GUARD
#define PAGE_IS_GUARD (1 << 8)
#endif
