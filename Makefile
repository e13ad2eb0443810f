# The two commands of the README: `make demo` and `make test`. Both install what is missing first.
BUILD_TYPE ?= RelWithDebInfo
CMAKE_BUILD_DIR := _build/cmake

.PHONY: all deps build cnode erlang demo test test-cpp test-erlang test-elixir bench clean

all: build

deps:
	@scripts/ensure_deps.sh

build: deps cnode erlang

cnode:
	cmake -S . -B $(CMAKE_BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DDPOOL_BUILD_TESTS=ON >/dev/null
	cmake --build $(CMAKE_BUILD_DIR) -j 2

erlang:
	rebar3 compile

demo: build
	scripts/demo.sh

test: build
	scripts/test.sh

# Not part of `make test` nor CI: about 5 minutes of measurements (docs/BENCHMARKS.md).
bench: build
	scripts/bench.sh

clean:
	rm -rf _build priv
