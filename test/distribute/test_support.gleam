//// Helpers shared by the Gleam tests: real target nodes started with OTP's peer module, and a few
//// Erlang functions the prelude does not have.

import distribute/connection_pool

/// A running target node: the peer process that controls it and its node name.
pub type Target {
  Target(peer: Peer, node: String)
}

/// The OTP peer process of a target node.
pub type Peer

/// Starts a target node named after `prefix` on 127.0.0.1 with this node's cookie and none of our code.
pub fn start_target(prefix: String) -> Target {
  let #(peer, node) = ffi_start_target(prefix)
  Target(peer, node)
}

/// Stops a target node started by `start_target`.
pub fn stop_target(target: Target) -> Nil {
  ffi_stop_target(target.peer)
}

@external(erlang, "distribute_test_ffi", "start_target")
fn ffi_start_target(prefix: String) -> #(Peer, String)

@external(erlang, "distribute_test_ffi", "stop_target")
fn ffi_stop_target(peer: Peer) -> Nil

/// Registers, on `node`, a process under `name` that keeps every message it is sent.
@external(erlang, "distribute_test_ffi", "start_sink")
pub fn start_sink(node: String, name: String) -> Nil

/// The messages the sink `name` on `node` holds, oldest first.
@external(erlang, "distribute_test_ffi", "sink_messages")
pub fn sink_messages(node: String, name: String) -> List(a)

/// The messages that are not a tuple whose first element is an Int in `from`..`to`, whatever they are.
@external(erlang, "distribute_test_ffi", "strays")
pub fn strays(messages: List(a), from: Int, to: Int) -> List(a)

/// Waits `ms` milliseconds.
@external(erlang, "distribute_test_ffi", "sleep")
pub fn sleep(ms: Int) -> Nil

/// This node's name.
@external(erlang, "distribute_test_ffi", "self_node")
pub fn self_node() -> String

/// Runs `func` in a new process that is killed after `ms` milliseconds.
@external(erlang, "distribute_test_ffi", "spawn_and_kill_after")
pub fn spawn_and_kill_after(func: fn() -> a, ms: Int) -> Nil

/// How many processes this node runs.
@external(erlang, "distribute_test_ffi", "process_count")
pub fn process_count() -> Int

/// Prints a line.
@external(erlang, "distribute_test_ffi", "println")
pub fn println(text: String) -> Nil

/// Whether `text` contains `part`.
@external(erlang, "distribute_test_ffi", "contains")
pub fn text_contains(text: String, part: String) -> Bool

/// Polls `check` every 20 ms until it is True; panics after `timeout_ms`.
pub fn wait_until(check: fn() -> Bool, timeout_ms: Int) -> Nil {
  case check() {
    True -> Nil
    False ->
      case timeout_ms <= 0 {
        True -> panic
        False -> {
          sleep(20)
          wait_until(check, timeout_ms - 20)
        }
      }
  }
}

/// The length of a list.
pub fn length(list: List(a)) -> Int {
  do_length(list, 0)
}

fn do_length(list: List(a), acc: Int) -> Int {
  case list {
    [] -> acc
    [_, ..rest] -> do_length(rest, acc + 1)
  }
}

/// The integers from `from` to `to`, both included.
pub fn range(from: Int, to: Int) -> List(Int) {
  do_range(from, to, [])
}

fn do_range(from: Int, to: Int, acc: List(Int)) -> List(Int) {
  case to < from {
    True -> acc
    False -> do_range(from, to - 1, [to, ..acc])
  }
}

/// `func` applied to every element, in order.
pub fn map(list: List(a), func: fn(a) -> b) -> List(b) {
  case list {
    [] -> []
    [first, ..rest] -> [func(first), ..map(rest, func)]
  }
}

/// The elements without repeats, in first-seen order.
pub fn unique(list: List(a)) -> List(a) {
  do_unique(list, [])
}

fn do_unique(list: List(a), seen: List(a)) -> List(a) {
  case list {
    [] -> reverse(seen)
    [first, ..rest] ->
      case contains(seen, first) {
        True -> do_unique(rest, seen)
        False -> do_unique(rest, [first, ..seen])
      }
  }
}

/// Whether `item` is in `list`.
pub fn contains(list: List(a), item: a) -> Bool {
  case list {
    [] -> False
    [first, ..rest] ->
      case first == item {
        True -> True
        False -> contains(rest, item)
      }
  }
}

/// The list backwards.
pub fn reverse(list: List(a)) -> List(a) {
  do_reverse(list, [])
}

fn do_reverse(list: List(a), acc: List(a)) -> List(a) {
  case list {
    [] -> acc
    [first, ..rest] -> do_reverse(rest, [first, ..acc])
  }
}

/// The atom named `name`, as a term (names in tests are ours, never untrusted input).
@external(erlang, "distribute_test_ffi", "binary_to_term_atom")
pub fn atom(name: String) -> connection_pool.Term

/// Runs `func`; `Error(Nil)` when it panicked.
@external(erlang, "distribute_test_ffi", "rescue")
pub fn rescue(func: fn() -> a) -> Result(a, Nil)

/// Runs `func` and returns its result with everything it printed.
@external(erlang, "distribute_test_ffi", "capture_output")
pub fn capture_output(func: fn() -> a) -> #(a, String)

/// Forgets which flaky records of the seed examples were tried already.
@external(erlang, "distribute_test_ffi", "forget_attempts")
pub fn forget_attempts() -> Nil

/// The integer the Erlang library's own stats map of pool `pool_id` holds under `keys` (a path:
/// `["hits"]`, `["connections_closed", "idle"]`), read now.
@external(erlang, "distribute_test_ffi", "library_int")
pub fn library_int(pool_id: Int, keys: List(String)) -> Int

/// The name the library's stats map of pool `pool_id` holds under `key` (`"target"`, `"state"`), as text.
@external(erlang, "distribute_test_ffi", "library_name")
pub fn library_name(pool_id: Int, key: String) -> String

/// The connections of the library's stats map of pool `pool_id` as `#(id, node, state)`, in its order.
@external(erlang, "distribute_test_ffi", "library_connections")
pub fn library_connections(pool_id: Int) -> List(#(Int, String, String))
