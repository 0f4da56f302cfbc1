# Haywire: the two commands are `make demo` and `make test`. Both install what is missing
# (scripts/setup.sh, Debian packages only), build, and build the default guest image.

DEBUG_DIR   ?= build/debug
RELEASE_DIR ?= build/release
FUZZ_DIR    ?= build/fuzz
CMAKE_GEN   := -G Ninja
FUZZ_SECONDS ?= 60

.PHONY: all setup guest build release test unit integration demo bench fuzz tidy clean

all: build

setup:
	@./scripts/setup.sh

# The guest image takes its static programs (haywire-companion, haywire-touch) from GUEST_BUILD:
# build/debug for `make test`, build/release for `make demo`.
GUEST_BUILD ?= $(DEBUG_DIR)
guest: setup
	@HAYWIRE_BUILD_DIR=$(GUEST_BUILD) ./scripts/build-guest.sh >/dev/null

# Debug + AddressSanitizer + UndefinedBehaviorSanitizer, warnings as errors: what tests run.
build: setup
	@cmake $(CMAKE_GEN) -S . -B $(DEBUG_DIR) -DCMAKE_BUILD_TYPE=Debug -DHAYWIRE_SANITIZE=ON -DHAYWIRE_WERROR=ON >/dev/null
	@cmake --build $(DEBUG_DIR)

release: setup
	@cmake $(CMAKE_GEN) -S . -B $(RELEASE_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHAYWIRE_WERROR=ON >/dev/null
	@cmake --build $(RELEASE_DIR)

test: build
	@$(MAKE) --no-print-directory guest GUEST_BUILD=$(DEBUG_DIR)
	@cd $(DEBUG_DIR) && ctest --output-on-failure --timeout 600

unit: build
	@cd $(DEBUG_DIR) && ctest --output-on-failure -L unit

integration: build
	@$(MAKE) --no-print-directory guest GUEST_BUILD=$(DEBUG_DIR)
	@cd $(DEBUG_DIR) && ctest --output-on-failure -L integration

demo: release
	@$(MAKE) --no-print-directory guest GUEST_BUILD=$(RELEASE_DIR)
	@$(RELEASE_DIR)/apps/haywire/haywire demo

bench: release
	@./scripts/run-benchmarks.sh $(RELEASE_DIR)

# libFuzzer builds (clang); runs each target for FUZZ_SECONDS.
fuzz:
	@./scripts/setup.sh fuzz
	@CC=clang-19 CXX=clang++-19 cmake $(CMAKE_GEN) -S . -B $(FUZZ_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DHAYWIRE_FUZZ=ON -DHAYWIRE_SANITIZE=ON -DHAYWIRE_BENCH=OFF >/dev/null
	@cmake --build $(FUZZ_DIR)
	@./scripts/run-fuzzers.sh $(FUZZ_DIR) $(FUZZ_SECONDS)

# clang-tidy 19 over src/ and apps/ (the debug build's compile commands); fails on any finding.
# Not findings: Google Benchmark's `for (auto _ : state)` loop variable (a "dead store"), and
# libstdc++ 12's own use of get_temporary_buffer, deprecated in the C++23 clang 19 parses.
tidy: build
	@./scripts/setup.sh tidy
	@out=$$(run-clang-tidy-19 -clang-tidy-binary clang-tidy-19 -p $(DEBUG_DIR) -quiet \
	  -extra-arg=-Wno-deprecated-declarations 'src/|apps/' 2>/dev/null \
	  | grep -E 'warning:|error:' | grep -v "Value stored to '_' during its initialization" | sort -u); \
	  if [ -n "$$out" ]; then echo "$$out"; exit 1; fi; echo "clang-tidy: clean"

clean:
	rm -rf build
