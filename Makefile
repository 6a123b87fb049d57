# Thin wrapper over CMake: make, make run, make test, make bench, make format, make fuzz.
JOBS    ?= $(shell nproc)
PYTHON  ?= /usr/bin/python3
BUILD   := build
ASAN    := build-asan
FUZZ    := build-fuzz

.PHONY: all deps build asan run test unit integration bench format format-check fuzz install clean

all: build

deps:
	@./scripts/deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

asan: deps
	@cmake -S . -B $(ASAN) -DCMAKE_BUILD_TYPE=Debug -DTG_SANITIZE=ON >/dev/null
	@cmake --build $(ASAN) -j $(JOBS)

run: build
	./$(BUILD)/tlsgate run

# Every test: unit and fuzz-corpus replays on the normal and the sanitized build, then the
# integration suite against both binaries; then how many of each ran (tests/summary.py fails if a
# kind ran none). Under CI=true (.ci/run) an integration test that would skip fails instead.
test: build asan format-check
	@rm -rf $(BUILD)/test-results $(ASAN)/test-results
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --test-output-size-passed 1000000 --output-junit $(CURDIR)/$(BUILD)/test-results/ctest.xml
	cd $(ASAN) && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j $(JOBS) --test-output-size-passed 1000000 --output-junit $(CURDIR)/$(ASAN)/test-results/ctest.xml
	TLSGATE_BIN=$(CURDIR)/$(BUILD)/tlsgate $(PYTHON) -m pytest -q -p no:cacheprovider --junitxml=$(CURDIR)/$(BUILD)/test-results/integration.xml tests/integration
	TLSGATE_BIN=$(CURDIR)/$(ASAN)/tlsgate TLSGATE_SANITIZED=1 $(PYTHON) -m pytest -q -p no:cacheprovider --junitxml=$(CURDIR)/$(ASAN)/test-results/integration.xml tests/integration
	@$(PYTHON) tests/summary.py $(BUILD) $(ASAN)

unit: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

integration: build
	TLSGATE_BIN=$(CURDIR)/$(BUILD)/tlsgate $(PYTHON) -m pytest -q -p no:cacheprovider tests/integration

bench: build
	./bench/run-bench

fuzz: deps
	@CC=clang cmake -S . -B $(FUZZ) -DTG_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
	@cmake --build $(FUZZ) -j $(JOBS)
	@echo "fuzzers are in $(FUZZ)/: e.g. $(FUZZ)/fuzz_http1 tests/fuzz/corpus/http1 -max_total_time=60"

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

format-check: deps
	clang-format --dry-run -Werror $$(git ls-files '*.c' '*.h')

install: build
	cmake --install $(BUILD) --prefix /usr/local

clean:
	rm -rf $(BUILD) $(ASAN) $(FUZZ)
