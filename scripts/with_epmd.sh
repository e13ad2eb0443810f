#!/usr/bin/env bash
# Runs a command with a private epmd on its own port, so tests neither depend on nor disturb a system epmd.
# The epmd is this script's child and is stopped by its pid when the command ends.
set -euo pipefail

pick_port() {
  # A free loopback port in a range no other service here uses.
  for _ in $(seq 1 50); do
    local p=$(( 43000 + RANDOM % 2000 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return 0
    fi
  done
  return 1
}

port=${ERL_EPMD_PORT_FOR_TESTS:-$(pick_port)}
epmd -port "$port" -address 127.0.0.1 &
epmd_pid=$!
trap 'kill "$epmd_pid" 2>/dev/null || true; wait "$epmd_pid" 2>/dev/null || true' EXIT

for _ in $(seq 1 100); do
  if epmd -port "$port" -names >/dev/null 2>&1; then break; fi
  sleep 0.05
done
epmd -port "$port" -names >/dev/null

export ERL_EPMD_PORT=$port
# Every node started below (peers included) uses this epmd and never spawns a daemon of its own.
export ERL_FLAGS="${ERL_FLAGS:-} -start_epmd false"
"$@"
