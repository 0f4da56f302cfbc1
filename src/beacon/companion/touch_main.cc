// haywire-touch: a test program for the default guest. Maps an anonymous region of N pages,
// writes to a known set of page indices, announces itself on stdout (the serial console), then
// sleeps so the host can compare the camera's pagemap with the pages it touched.
//   haywire-touch [PAGES [i,j,k...]]   (defaults: 64 pages; indices 0,1,5,17,18,19,40,63)
#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  long pages = argc > 1 ? std::strtol(argv[1], nullptr, 10) : 64;
  if (pages <= 0 || pages > (1L << 20)) {
    std::fprintf(stderr, "haywire-touch: PAGES must be 1..1048576\n");
    return 2;
  }
  std::vector<long> touch;
  std::string list = argc > 2 ? argv[2] : "0,1,5,17,18,19,40,63";
  for (char* p = list.data(); *p != '\0';) {
    char* end = nullptr;
    long v = std::strtol(p, &end, 10);
    if (end == p) break;
    if (v >= 0 && v < pages) touch.push_back(v);
    p = *end == ',' ? end + 1 : end;
  }
  std::size_t bytes = static_cast<std::size_t>(pages) * 4096;
  void* region = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (region == MAP_FAILED) {
    std::perror("haywire-touch: mmap");
    return 1;
  }
  ::madvise(region, bytes, MADV_NOHUGEPAGE);  // only the touched 4 KiB pages may be present
  auto* base = static_cast<unsigned char*>(region);
  std::string printed;
  for (long i : touch) {
    std::memset(base + static_cast<std::size_t>(i) * 4096, 0x5A, 64);
    printed += (printed.empty() ? "" : ",") + std::to_string(i);
  }
  // The guest has no swap: the touched pages stay present, the others stay empty.
  std::printf("HAYWIRE-TOUCH pid=%d base=0x%lx region_pages=%ld pages=%s\n", static_cast<int>(::getpid()),
              static_cast<unsigned long>(reinterpret_cast<std::uintptr_t>(region)), pages, printed.c_str());
  std::fflush(stdout);
  for (;;) ::pause();
}
