# The two commands of the README: `make demo` and `make test`. Both install what is missing first.
BUILD_TYPE ?= RelWithDebInfo
# Warnings are errors in this repository's own build (the rebar3 hook of a dependency build turns that off).
DPOOL_WERROR ?= ON
CMAKE_BUILD_DIR := _build/cmake

.PHONY: all deps build cnode erlang demo test test-sanitize test-cpp test-erlang test-elixir bench fuzz fuzz-corpus clean
# One target at a time, even under `make -j N`: cnode and erlang (rebar3's hook) build in the same CMake
# directory, and each build sets its own parallelism.
.NOTPARALLEL:

all: build

deps:
	@scripts/ensure_deps.sh

build: deps cnode erlang

# The C-node, the C++ unit tests and the layer checks are built in $(CMAKE_BUILD_DIR); the C-node is then copied
# into priv/, where the Erlang application starts it from, by its install component priv (only when it changed,
# see CMakeLists.txt). `rebar3 compile` (the erlang target) does the same through scripts/build_cnode.sh.
# Compiles go through ccache (scripts/ensure_deps.sh installs it) with the settings of scripts/with_ccache.sh,
# so that a copy of the repository under _build (the dependency stage of `make test`, scripts/dep_test.sh)
# gets these objects instead of compiling the C-node a second time.
cnode:
	cmake -S . -B $(CMAKE_BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DBUILD_TESTING=ON \
	  -DDPOOL_WERROR=$(DPOOL_WERROR) -DCMAKE_CXX_COMPILER_LAUNCHER=ccache >/dev/null
	scripts/with_ccache.sh cmake --build $(CMAKE_BUILD_DIR) -j 2
	cmake --install $(CMAKE_BUILD_DIR) --component priv --prefix "$(CURDIR)"

# The application, then its EDoc as documentation chunks (doc/chunks), read by h/2 in erl and h/1 in iex.
# Both look for doc/ next to the application's ebin/, which rebar3 does not link into _build (as it does priv/).
erlang:
	rebar3 compile
	rebar3 edoc
	ln -sfn ../../../../doc _build/default/lib/distribute_pool/doc

demo: build
	scripts/demo.sh

test: build
	scripts/test.sh

# Each fuzz target of test/fuzz/ for FUZZ_SECONDS (default 60), built with clang and libFuzzer in _build/fuzz;
# prints executions and coverage per target, fails on a crash (README, "Fuzzing"). `make test` runs each briefly.
FUZZ_SECONDS ?= 60
fuzz: deps
	scripts/fuzz.sh run $(FUZZ_SECONDS)

# Records real traffic again (distribute_pool_fuzz_corpus_SUITE) and minimises it into test/fuzz/corpus/.
fuzz-corpus: build
	scripts/fuzz_corpus.sh

# The sanitizer stage of `make test` alone (README, "Tests"): ASan + UBSan on the unit tests and on the C-node
# of the Erlang suites. `make test-sanitize TOOLS=thread`: TSan on the unit tests (not in `make test`).
test-sanitize: build
	scripts/sanitize_test.sh $(TOOLS)

# Not part of `make test` nor CI: about 5 minutes of measurements, at most 10 (docs/BENCHMARKS.md).
bench: build
	scripts/bench.sh

clean:
	rm -rf _build priv doc
