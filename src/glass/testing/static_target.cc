// A statically linked program: the dynamic loader never runs, so LD_PRELOAD (the glass agent)
// is ignored. The launch test expects a clear timeout; the inject test attaches to it instead.
#include <time.h>
#include <unistd.h>

int main(int argc, char**) {
  if (argc > 1) return 3;  // "exit before anyone could look"
  const char text[] = "static main\n";
  if (write(STDOUT_FILENO, text, sizeof(text) - 1) < 0) return 1;
  timespec pause{3, 0};
  nanosleep(&pause, nullptr);
  return 0;
}
