#!/usr/bin/env bash
# Installs the Debian packages the build, the demo and the tests need, only where they are missing.
# Runs `apt-get update` at most once, and only when something has to be installed.
# Packages given as arguments are wanted too (`make bench` asks for gnuplot-nox this way).
set -euo pipefail

packages=(
  erlang-nox erlang-dev erlang-src rebar3 elixir
  cmake g++ make pkg-config
  libboost-dev libfmt-dev libspdlog-dev libcli11-dev libssl-dev catch2 libbenchmark-dev
  # The openssl CLI: the TLS tests and the TLS figures of `make bench` make their certificates with it.
  openssl
  # Prometheus and promtool: the metrics suite checks the C-node's exposition with promtool and has a real
  # Prometheus scrape it.
  prometheus
  # The fuzz targets (`make fuzz`, a stage of `make test`): clang, libFuzzer, and clang's sanitizer and libFuzzer
  # runtimes (libclang-rt-14-dev, which -fsanitize=fuzzer links, is only a recommendation of clang's).
  clang libfuzzer-14-dev libclang-rt-14-dev
  # ccache: `make build` compiles through it (cache in _build/ccache), so that the dependency stage of `make
  # test`, which builds the C-node again from a copy of the repository, reuses those objects.
  ccache
  "$@"
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

# Node.js runs the Gleam compiler (WebAssembly) where no Gleam CLI is installed. It may come from elsewhere
# than Debian, so the commands are checked, not the packages.
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "ensure_deps: installing ${missing[*]}"
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
  sudo_cmd=(sudo)
fi
"${sudo_cmd[@]}" apt-get update -q
DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
