#!/usr/bin/env bash
# Builds the C-node and puts it into priv/dpool_cnode. rebar3 runs it before compiling the Erlang application
# (the pre_hooks of rebar.config), so a project that has distribute_pool as a dependency (rebar3 `_checkouts/`
# or git dependency, Mix `manager: :rebar3`) gets a working C-node from its ordinary compile.
#
# It builds in _build/cmake of the application's own directory (the same directory `make build` uses): CMake
# rebuilds only what changed, so a second compile, or a second project using the same checkout, costs a
# second or two. A fresh build directory is configured without the C++ unit tests (-DBUILD_TESTING=OFF, so
# neither Catch2 nor Google Benchmark is needed) and without -Werror (-DDPOOL_WERROR=OFF: a warning that a newer
# compiler adds must not break the build of someone else's project); an existing one is used as it was
# configured, and only the dpool_cnode target is built. The binary is built in the build directory; then
# `cmake --install <build dir> --component priv` copies it into priv/ of the application's directory, only when
# it changed (a compile without changes leaves priv/dpool_cnode as it was). rebar3 and Mix then see priv/ in the
# application's build output.
#
# Environment: DPOOL_CMAKE_BUILD_DIR (default _build/cmake), DPOOL_BUILD_TYPE (default RelWithDebInfo),
# DPOOL_CMAKE_ARGS (extra arguments for a fresh configure), CMAKE_BUILD_PARALLEL_LEVEL (default: all cores).
# A missing build tool or library stops it before CMake runs, with the Debian packages to install.
set -euo pipefail
cd "$(dirname "$0")/.."

packages="cmake g++ make libboost-dev libfmt-dev libspdlog-dev libcli11-dev libssl-dev erlang-dev"

fail() {
  {
    echo "distribute_pool: cannot build the C-node (priv/dpool_cnode): $1"
    echo "distribute_pool: it needs these Debian packages: $packages"
    echo "distribute_pool: install them with: sudo apt-get install $packages"
  } >&2
  exit 1
}

missing=()
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
command -v make >/dev/null 2>&1 || missing+=(make)

# The C++ compiler CMake will pick: $CXX, else c++ or g++.
cxx=${CXX:-}
if [ -z "$cxx" ]; then
  for candidate in c++ g++; do
    if command -v "$candidate" >/dev/null 2>&1; then
      cxx=$candidate
      break
    fi
  done
fi
if [ -z "$cxx" ] || ! command -v "$cxx" >/dev/null 2>&1; then
  missing+=(g++)
else
  # One preprocessor run asks for every header library at once; a missing one prints its package's name.
  probe=$("$cxx" -std=c++20 -E -P -x c++ - 2>/dev/null <<'EOF' || true
#if !__has_include(<boost/asio.hpp>)
missing libboost-dev
#endif
#if !__has_include(<fmt/format.h>)
missing libfmt-dev
#endif
#if !__has_include(<spdlog/spdlog.h>)
missing libspdlog-dev
#endif
#if !__has_include(<CLI/CLI.hpp>)
missing libcli11-dev
#endif
#if !__has_include(<openssl/evp.h>)
missing libssl-dev
#endif
EOF
)
  while read -r word package; do
    if [ "$word" = missing ]; then
      missing+=("$package")
    fi
  done <<<"$probe"
fi

# erl_interface (ei.h, libei.a) comes with the installed OTP's erlang-dev. rebar3 passes its directory to hooks.
ei_root=${ERLANG_LIB_DIR_erl_interface:-}
if [ -z "$ei_root" ] && command -v erl >/dev/null 2>&1; then
  ei_root=$(erl -noshell -eval 'io:format("~s", [code:lib_dir(erl_interface)]), halt().' 2>/dev/null || true)
fi
if [ ! -f "$ei_root/include/ei.h" ] || [ ! -f "$ei_root/lib/libei.a" ]; then
  missing+=(erlang-dev)
fi

if [ ${#missing[@]} -ne 0 ]; then
  fail "missing ${missing[*]}"
fi

build_dir=${DPOOL_CMAKE_BUILD_DIR:-_build/cmake}
if [ ! -f "$build_dir/CMakeCache.txt" ]; then
  echo "distribute_pool: configuring the C-node build in $build_dir"
  # shellcheck disable=SC2086 # DPOOL_CMAKE_ARGS holds several arguments on purpose
  if ! cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE="${DPOOL_BUILD_TYPE:-RelWithDebInfo}" \
      -DBUILD_TESTING=OFF -DDPOOL_WERROR=OFF ${DPOOL_CMAKE_ARGS:-} >/dev/null; then
    # A half-written cache would make the next run skip the configure step.
    rm -f "$build_dir/CMakeCache.txt"
    fail "CMake could not configure the build (its message is above)"
  fi
fi

# Called from a make (the Makefile's `rebar3 compile`), the inner make would inherit its flags and jobserver;
# the build below sets its own parallelism.
unset MAKEFLAGS MFLAGS MAKELEVEL
jobs=${CMAKE_BUILD_PARALLEL_LEVEL:-$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)}
echo "distribute_pool: building the C-node in $build_dir"
cmake --build "$build_dir" --target dpool_cnode --parallel "$jobs"
# Into priv/ (the install component priv of CMakeLists.txt): "Installing" when it changed, else "Up-to-date".
cmake --install "$build_dir" --component priv --prefix "$PWD"
