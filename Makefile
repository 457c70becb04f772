# modeenvoy: the two commands.
#   make run    set up, build, start the example gateway on 127.0.0.1:8080 (offline demo model)
#   make test   set up, build, run every C++ test (ctest) and every Python test (pytest)
# Other targets: setup, build, test-asan (ASan+UBSan build + ctest), test-tsan (the tests of
# the concurrent components under ThreadSanitizer), fuzz (clang libFuzzer targets under
# ASan+UBSan, a fixed number of inputs each), bench, install-check, pip-check (pip install .
# into a scratch venv), clean.

PYTHON    ?= python3
BUILD     ?= build
ASAN_BUILD?= build-asan
TSAN_BUILD?= build-tsan
FUZZ_BUILD?= build-fuzz
JOBS      ?= $(shell nproc)
GENERATOR ?= Ninja

PY_EXE := $(shell $(PYTHON) -c 'import sys; print(sys.executable)' 2>/dev/null)
CMAKE_FLAGS := -G $(GENERATOR) -DPython_EXECUTABLE=$(PY_EXE) -DMODEENVOY_BUILD_PYTHON=ON

.PHONY: all setup configure build test test-cpp test-python test-asan test-tsan fuzz run bench install-check pip-check clean

all: build

setup:
	PYTHON=$(PYTHON) scripts/setup.sh

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS)

configure: setup $(BUILD)/build.ninja

build: configure
	cmake --build $(BUILD) -j $(JOBS)

test-cpp: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 300

test-python: build
	MODEENVOY_BUILD_DIR=$(abspath $(BUILD)) PYTHONPATH=$(abspath $(BUILD))/python \
	  $(PYTHON) -m pytest -q -ra tests/python

test: test-cpp test-python

# Sanitizer build: every C++ test under AddressSanitizer + UndefinedBehaviorSanitizer, then
# the Python tests of the extension module (PY_ASAN_TESTS) with that module built the same
# way. CPython is not instrumented: the module's own libasan (from ldd, so it matches the
# compiler that built it) is preloaded into the interpreter, with its libstdc++ (or ASan
# cannot intercept C++ throws from a module loaded later), and leak detection is off for
# that run (the interpreter keeps its objects until exit).
PY_ASAN_TESTS ?= tests/python/test_protocol.py tests/python/test_tokenizer_parity.py
test-asan: setup
	cmake -S . -B $(ASAN_BUILD) -G $(GENERATOR) -DCMAKE_BUILD_TYPE=Debug \
	  -DMODEENVOY_SANITIZE=address,undefined -DMODEENVOY_BUILD_BENCH=OFF \
	  -DPython_EXECUTABLE=$(PY_EXE) -DMODEENVOY_BUILD_PYTHON=ON
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j $(JOBS) --timeout 600
	LD_PRELOAD="$$(ldd $(ASAN_BUILD)/python/modeenvoy/_modeenvoy*.so | \
	  awk '/libasan/ {a = $$3} /libstdc\+\+/ {s = $$3} END {print a, s}')" \
	  ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  MODEENVOY_BUILD_DIR=$(abspath $(ASAN_BUILD)) PYTHONPATH=$(abspath $(ASAN_BUILD))/python \
	  $(PYTHON) -m pytest -q -ra $(PY_ASAN_TESTS)

# ThreadSanitizer build: the test programs of the components that share state across threads
# (TSAN_TESTS), the example proxy's and emulator's among them (their tests drive a server
# loop on one thread from the test's thread). Debian's Abseil is not instrumented, so every
# absl::Mutex in code TSan runs is taken through lib/core/mutex.h, which tells TSan.
TSAN_TESTS ?= core_test tokenizer_test gateway_test proxy_test emulator_test asio_event_loop_test \
  context_test
TSAN_TESTS += router_test context_gateway_test
TSAN_TESTS += router_gateway_test
empty :=
space := $(empty) $(empty)
test-tsan: setup
	cmake -S . -B $(TSAN_BUILD) -G $(GENERATOR) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DMODEENVOY_SANITIZE=thread -DMODEENVOY_BUILD_BENCH=OFF -DMODEENVOY_BUILD_PYTHON=OFF
	cmake --build $(TSAN_BUILD) -j $(JOBS) --target $(TSAN_TESTS)
	cd $(TSAN_BUILD) && TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
	  ctest --output-on-failure -j $(JOBS) --timeout 600 \
	  -L '^($(subst $(space),|,$(strip $(TSAN_TESTS))))$$'

fuzz: setup
	cmake -S . -B $(FUZZ_BUILD) -G $(GENERATOR) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 \
	  -DMODEENVOY_SANITIZE=address,undefined -DMODEENVOY_BUILD_FUZZERS=ON \
	  -DMODEENVOY_BUILD_BENCH=OFF -DMODEENVOY_BUILD_EXAMPLES=OFF \
	  -DMODEENVOY_BUILD_PYTHON=OFF
	cmake --build $(FUZZ_BUILD) -j $(JOBS) --target tokenizer_fuzzer bpe_fuzzer chat_request_fuzzer framing_fuzzer \
	  anthropic_fuzzer embeddings_fuzzer messages_ingress_fuzzer openai_responses_fuzzer
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  scripts/run_fuzzers.sh $(FUZZ_BUILD)

# The built-in emulator counts usage with the tokenizer, from the rank files set-up installed.
run: build
	MODEENVOY_TOKENIZER_DIR="$${MODEENVOY_TOKENIZER_DIR:-$(abspath .data/tokenizers)}" \
	  $(BUILD)/examples/proxy/modeenvoy-gateway

bench: setup
	cmake -S . -B build-release -G $(GENERATOR) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)
	cmake --build build-release -j $(JOBS)

# Installs into a scratch prefix and builds tests/install/consumer against it.
install-check: build
	scripts/install_check.sh $(BUILD)

# `pip install .` into a throwaway venv, then the installed package checked against tiktoken.
pip-check: setup
	PYTHON=$(PYTHON) scripts/pip_check.sh

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) $(FUZZ_BUILD) build-release
