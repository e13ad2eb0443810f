#!/usr/bin/env bash
# Runs a command with a private epmd on its own port, so tests neither depend on nor disturb a system epmd.
# The epmd is this script's child and is stopped by its pid when the command ends.
set -euo pipefail

pick_port() {
  # A free loopback port in a range no other service here uses, below the kernel's ephemeral ports: a port
  # there may be taken by one end of an outgoing connection (and thousands are open during the tests), which
  # a connect cannot see but which epmd then fails to bind.
  local low=32768
  read -r low _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
  if [ "$low" -lt 12000 ]; then low=47000; fi # an unusual range: back to the old one
  for _ in $(seq 1 50); do
    local p=$(( low - 10000 + RANDOM % 8000 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return 0
    fi
  done
  return 1
}

# Started, then asked for its names until it answers: up to 30 s (a loaded 2-core machine can take seconds to
# run it). An epmd that exits meanwhile (its port taken since pick_port) is started again on another port.
start_epmd() {
  epmd -port "$port" -address 127.0.0.1 &
  epmd_pid=$!
  for _ in $(seq 1 300); do
    if epmd -port "$port" -names >/dev/null 2>&1; then return 0; fi
    kill -0 "$epmd_pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# Stops the epmd started last, by its pid.
stop_epmd() {
  if [ -n "$epmd_pid" ]; then
    kill "$epmd_pid" 2>/dev/null || true
    wait "$epmd_pid" 2>/dev/null || true
    epmd_pid=
  fi
}

epmd_pid=
trap stop_epmd EXIT
for attempt in 1 2 3 4 5 6; do
  port=${ERL_EPMD_PORT_FOR_TESTS:-$(pick_port)}
  if start_epmd; then break; fi
  stop_epmd
  if [ "$attempt" = 6 ]; then
    echo "with_epmd.sh: no epmd answered on 127.0.0.1:$port within 30 s (6 tries)" >&2
    exit 1
  fi
done

export ERL_EPMD_PORT=$port
# Every node started below (peers included) uses this epmd and never spawns a daemon of its own.
export ERL_FLAGS="${ERL_FLAGS:-} -start_epmd false"
"$@"
