//// Unit tests of distribute/connection_pool against a real target node started by each test.

import distribute/connection_pool
import distribute/test_support

type NetKernelRequest {
  IsAuth
}

type NetKernelAnswer {
  Yes
}

pub fn bad_config_is_invalid_config_test() {
  let assert Error(connection_pool.InvalidConfig) =
    connection_pool.new("no_at_sign", 2)
  let assert Error(connection_pool.InvalidConfig) =
    connection_pool.new("", 2)
  let assert Error(connection_pool.InvalidConfig) =
    connection_pool.new("a@127.0.0.1", 0)
  let assert Error(connection_pool.InvalidConfig) =
    connection_pool.new("a@127.0.0.1", -3)
  let assert Error(connection_pool.InvalidConfig) =
    connection_pool.new("a@127.0.0.1", 1_000_000)
  let config = connection_pool.config(2)
  let assert Error(connection_pool.InvalidConfig) =
    connection_pool.new_with_config(
      "a@127.0.0.1",
      connection_pool.PoolConfig(..config, min_connections: 3),
    )
  let assert Error(connection_pool.InvalidConfig) =
    connection_pool.new_with_config(
      "a@127.0.0.1",
      connection_pool.PoolConfig(..config, acquire_timeout_ms: -1),
    )
  let assert Error(connection_pool.InvalidConfig) =
    connection_pool.new_with_config(
      "a@127.0.0.1",
      connection_pool.PoolConfig(..config, connect_timeout_ms: 0),
    )
  let assert Error(connection_pool.InvalidConfig) =
    connection_pool.new_with_config(
      "a@127.0.0.1",
      connection_pool.PoolConfig(..config, health_check_interval_ms: 5),
    )
  let assert Error(connection_pool.InvalidConfig) =
    connection_pool.new_with_config(
      "a@127.0.0.1",
      connection_pool.PoolConfig(..config, backoff_min_ms: 9000),
    )
}

pub fn new_with_reason_says_why_test() {
  let assert Error(#(connection_pool.InvalidConfig, why)) =
    connection_pool.new_with_reason("a@127.0.0.1", connection_pool.config(0))
  let assert True =
    why == "invalid configuration: max_connections => 0: must be an integer in 1..1000"
  let assert Error(#(connection_pool.InvalidConfig, "invalid configuration: target <<\"no_at_sign\">> is no node name (name@host)")) =
    connection_pool.new_with_reason("no_at_sign", connection_pool.config(1))
  let config =
    connection_pool.PoolConfig(
      ..connection_pool.config(1),
      connect_timeout_ms: 2000,
    )
  let assert Error(#(connection_pool.ConnectionFailed, not_registered)) =
    connection_pool.new_with_reason("nobody_listens_here@127.0.0.1", config)
  let assert True =
    test_support.text_contains(not_registered, "has no node named 'nobody_listens_here'")
  let target = test_support.start_target("gleam_reason")
  let assert Ok(pool) = connection_pool.new_with_reason(target.node, config)
  let assert Ok(Nil) = connection_pool.destroy(pool)
  test_support.stop_target(target)
}

pub fn unreachable_target_is_connection_failed_test() {
  let config =
    connection_pool.PoolConfig(
      ..connection_pool.config(1),
      connect_timeout_ms: 1000,
    )
  let assert Error(connection_pool.ConnectionFailed) =
    connection_pool.new_with_config("nobody_listens_here@127.0.0.1", config)
}

pub fn operations_on_a_lease_test() {
  let target = test_support.start_target("gleam_ops")
  test_support.start_sink(target.node, "gleam_sink")
  let assert Ok(pool) = connection_pool.new(target.node, 2)
  let assert Ok(Nil) =
    connection_pool.with_connection(
      pool,
      fn(conn) {
        let assert True = connection_pool.ping(conn)
        let assert Ok(Nil) =
          connection_pool.send(conn, to: "gleam_sink", message: #("hello", 1))
        let assert Ok(node) =
          connection_pool.call(
            conn,
            module: "erlang",
            function: "node",
            args: [],
            timeout_ms: 5000,
          )
        let assert True = node == test_support.atom(target.node)
        let assert Ok(reversed) =
          connection_pool.call(
            conn,
            module: "lists",
            function: "reverse",
            args: [connection_pool.to_term([1, 2, 3])],
            timeout_ms: 5000,
          )
        let assert True = reversed == connection_pool.to_term([3, 2, 1])
        let assert Error(connection_pool.BadRpc(_)) =
          connection_pool.call(
            conn,
            module: "erlang",
            function: "error",
            args: [connection_pool.to_term("boom")],
            timeout_ms: 5000,
          )
        let assert Error(connection_pool.OperationTimeout) =
          connection_pool.call(
            conn,
            module: "timer",
            function: "sleep",
            args: [connection_pool.to_term(1000)],
            timeout_ms: 50,
          )
        // A gen_server call to a stdlib server: nothing of ours runs on the target.
        let assert Ok(answer) =
          connection_pool.request(
            conn,
            to: "net_kernel",
            request: #(IsAuth, test_support.atom(test_support.self_node())),
            timeout_ms: 5000,
          )
        let assert True = answer == connection_pool.to_term(Yes)
        let assert Error(connection_pool.DestinationDown(_)) =
          connection_pool.request(
            conn,
            to: "no_such_process",
            request: 1,
            timeout_ms: 5000,
          )
        let assert Error(connection_pool.BadDestination) =
          connection_pool.send(conn, to: "", message: 1)
        let assert True = connection_pool.connection_id(conn) >= 0
        let assert True = connection_pool.connection_node(conn) != ""
        Nil
      },
    )
  test_support.wait_until(
    fn() {
      test_support.sink_messages(target.node, "gleam_sink") == [#("hello", 1)]
    },
    5000,
  )
  let assert Ok(Nil) = connection_pool.destroy(pool)
  test_support.stop_target(target)
}

pub fn connection_is_only_valid_inside_its_callback_test() {
  let target = test_support.start_target("gleam_lease_end")
  let assert Ok(pool) = connection_pool.new(target.node, 1)
  let assert Ok(conn) = connection_pool.with_connection(pool, fn(conn) { conn })
  let assert Error(connection_pool.LeaseEnded) =
    connection_pool.send(conn, to: "anyone", message: 1)
  let assert False = connection_pool.ping(conn)
  let assert Ok(Nil) = connection_pool.destroy(pool)
  test_support.stop_target(target)
}

pub fn discarded_connection_is_replaced_test() {
  let target = test_support.start_target("gleam_discard")
  let assert Ok(pool) = connection_pool.new(target.node, 1)
  let assert Ok(Error(connection_pool.LeaseEnded)) =
    connection_pool.with_connection(pool, fn(conn) {
      let assert Ok(Nil) = connection_pool.discard(conn)
      // A second discard of the ended lease says so.
      let assert Error(connection_pool.LeaseEnded) = connection_pool.discard(conn)
      connection_pool.send(conn, to: "anyone", message: 1)
    })
  // The replacement comes up after the reconnect backoff.
  test_support.wait_until(
    fn() {
      case connection_pool.stats(pool) {
        Ok(stats) -> stats.available_connections == 1
        Error(_) -> False
      }
    },
    10_000,
  )
  let assert Ok(True) = connection_pool.with_connection(pool, connection_pool.ping)
  let assert Ok(Nil) = connection_pool.destroy(pool)
  test_support.stop_target(target)
}

pub fn stats_tell_the_truth_test() {
  let target = test_support.start_target("gleam_stats")
  let assert Ok(pool) = connection_pool.new(target.node, 3)
  let assert Ok(connection_pool.PoolStats(
    total_connections: 3,
    available_connections: 3,
    in_use_connections: 0,
    failed_operations: 0,
    successful_operations: 0,
  )) = connection_pool.stats(pool)
  let assert Ok(inside) =
    connection_pool.with_connection(
      pool,
      fn(conn) {
        let assert True = connection_pool.ping(conn)
        connection_pool.stats(pool)
      },
    )
  let assert Ok(connection_pool.PoolStats(
    total_connections: 3,
    available_connections: 2,
    in_use_connections: 1,
    failed_operations: 0,
    successful_operations: 1,
  )) = inside
  test_support.wait_until(
    fn() {
      case connection_pool.stats(pool) {
        Ok(stats) -> stats.in_use_connections == 0
        Error(_) -> False
      }
    },
    5000,
  )
  let assert Ok(detailed) = connection_pool.detailed_stats(pool)
  let assert True = detailed.target_node == target.node
  let assert 3 = detailed.max_connections
  let assert 3 = detailed.total_connections
  let assert 0 = detailed.waiting
  let assert 3 = test_support.length(detailed.connections)
  let assert [connection_pool.ConnectionStats(state: connection_pool.Available, ..), ..] =
    detailed.connections
  let assert Ok(Nil) = connection_pool.destroy(pool)
  test_support.stop_target(target)
}

pub fn full_line_of_waiters_is_pool_exhausted_at_once_test() {
  let target = test_support.start_target("gleam_full_line")
  let config =
    connection_pool.PoolConfig(
      ..connection_pool.config(1),
      acquire_timeout_ms: 60_000,
      max_waiters: 1,
    )
  let assert Ok(pool) = connection_pool.new_with_config(target.node, config)
  let waiting = fn() {
    case connection_pool.detailed_stats(pool) {
      Ok(stats) -> stats.waiting
      Error(_) -> -1
    }
  }
  let assert Ok(Error(connection_pool.PoolExhausted)) =
    connection_pool.with_connection(
      pool,
      fn(conn) {
        // The lease is held first: with_connection sends its checkout without waiting for it, and the caller
        // spawned next (over a lane of its own) could be served before it.
        let _ = connection_pool.connection_id(conn)
        // One caller waits in line (its process is killed after 30 s, long after this case is over)...
        test_support.spawn_and_kill_after(
          fn() { connection_pool.with_connection(pool, fn(_) { Nil }) },
          30_000,
        )
        test_support.wait_until(fn() { waiting() == 1 }, 5000)
        // ...so the C-node refuses the next one at once (limit max_waiters), long before the acquire timeout:
        // the first is still in line when the answer comes.
        let refused = connection_pool.with_connection(pool, fn(_) { Nil })
        let assert 1 = waiting()
        refused
      },
    )
  let assert Ok(Nil) = connection_pool.destroy(pool)
  test_support.stop_target(target)
}

pub fn exhausted_pool_fails_fast_test() {
  let target = test_support.start_target("gleam_exhausted")
  let config =
    connection_pool.PoolConfig(
      ..connection_pool.config(1),
      acquire_timeout_ms: 0,
    )
  let assert Ok(pool) = connection_pool.new_with_config(target.node, config)
  let assert Ok(Error(connection_pool.PoolExhausted)) =
    connection_pool.with_connection(
      pool,
      fn(_) { connection_pool.with_connection(pool, fn(_) { Nil }) },
    )
  let assert Ok(Error(connection_pool.PoolExhausted)) =
    connection_pool.with_connection(
      pool,
      fn(_) {
        connection_pool.send_batch(pool, [1], fn(_, m) { m })
      },
    )
  let assert Ok(Error(connection_pool.PoolExhausted)) =
    connection_pool.with_connection(
      pool,
      fn(_) {
        connection_pool.send_batch_parallel(pool, [1, 2], fn(_, m) { m })
      },
    )
  let assert Ok(Nil) = connection_pool.destroy(pool)
  test_support.stop_target(target)
}

pub fn panic_in_callback_returns_the_lease_test() {
  let target = test_support.start_target("gleam_panic")
  let assert Ok(pool) = connection_pool.new(target.node, 1)
  let assert Error(Nil) =
    test_support.rescue(fn() {
      connection_pool.with_connection(pool, fn(_) { panic })
    })
  // The one connection is back: a fail-fast lease would not get it otherwise.
  test_support.wait_until(
    fn() {
      case connection_pool.stats(pool) {
        Ok(stats) -> stats.available_connections == 1
        Error(_) -> False
      }
    },
    5000,
  )
  let assert Ok(True) = connection_pool.with_connection(pool, connection_pool.ping)
  let assert Ok(Nil) = connection_pool.destroy(pool)
  test_support.stop_target(target)
}

pub fn destroyed_pool_is_invalid_pool_test() {
  let target = test_support.start_target("gleam_destroyed")
  let assert Ok(pool) = connection_pool.new(target.node, 2)
  let assert Ok(Nil) = connection_pool.destroy(pool)
  let assert Error(connection_pool.InvalidPool) = connection_pool.destroy(pool)
  let assert Error(connection_pool.InvalidPool) = connection_pool.stats(pool)
  let assert Error(connection_pool.InvalidPool) =
    connection_pool.detailed_stats(pool)
  let assert Error(connection_pool.InvalidPool) =
    connection_pool.with_connection(pool, fn(_) { Nil })
  let assert Error(connection_pool.InvalidPool) =
    connection_pool.send_batch(pool, [1], fn(_, m) { m })
  let assert Error(connection_pool.InvalidPool) =
    connection_pool.send_batch_parallel(pool, [1], fn(_, m) { m })
  let assert Error(connection_pool.InvalidPool) =
    connection_pool.stress_test(pool, 1, 1)
  test_support.stop_target(target)
}

pub fn send_batch_keeps_order_on_one_lease_test() {
  let target = test_support.start_target("gleam_batch")
  test_support.start_sink(target.node, "gleam_batch_sink")
  let assert Ok(pool) = connection_pool.new(target.node, 3)
  let messages = test_support.range(1, 100)
  let assert Ok(results) =
    connection_pool.send_batch(
      pool,
      messages,
      fn(conn, i) {
        let assert Ok(Nil) =
          connection_pool.send(conn, to: "gleam_batch_sink", message: i)
        #(i, connection_pool.connection_id(conn))
      },
    )
  let assert True = test_support.map(results, fn(r) { r.0 }) == messages
  let assert 1 =
    test_support.length(test_support.unique(test_support.map(results, fn(r) { r.1 })))
  test_support.wait_until(
    fn() { test_support.sink_messages(target.node, "gleam_batch_sink") == messages },
    5000,
  )
  let assert Ok([]) = connection_pool.send_batch(pool, [], fn(_, m) { m })
  let assert Ok(Nil) = connection_pool.destroy(pool)
  test_support.stop_target(target)
}

pub fn send_async_keeps_order_and_reports_an_ended_lease_test() {
  let target = test_support.start_target("gleam_send_async")
  test_support.start_sink(target.node, "gleam_async_sink")
  let assert Ok(pool) = connection_pool.new(target.node, 1)
  // 300 messages: several windows of 64, the last one with send so that all are queued when it returns.
  let sequence = test_support.range(1, 300)
  let assert Ok(conn) =
    connection_pool.with_connection(
      pool,
      fn(conn) {
        let assert True =
          all(
            sequence,
            fn(i) {
              connection_pool.send_async(conn, to: "gleam_async_sink", message: i) == Ok(
                Nil,
              )
            },
          )
        let assert Ok(Nil) =
          connection_pool.send(conn, to: "gleam_async_sink", message: 301)
        conn
      },
    )
  test_support.wait_until(
    fn() {
      test_support.length(test_support.sink_messages(
        target.node,
        "gleam_async_sink",
      ))
      >= 301
    },
    10_000,
  )
  let received: List(Int) =
    test_support.sink_messages(target.node, "gleam_async_sink")
  let assert True = received == test_support.range(1, 301)
  // The lease has ended: every later send_async says so at once, and sends nothing.
  let late =
    test_support.map(
      test_support.range(1, 64),
      fn(_) { connection_pool.send_async(conn, to: "gleam_async_sink", message: 0) },
    )
  let assert True =
    all(late, fn(result) { result == Error(connection_pool.LeaseEnded) })
  let assert Ok(stats) = connection_pool.detailed_stats(pool)
  let assert 0 = stats.dropped_sends
  let assert Error(connection_pool.BadDestination) =
    connection_pool.send_async(conn, to: "", message: 1)
  let assert Ok(Nil) = connection_pool.destroy(pool)
  test_support.stop_target(target)
}

pub fn cast_batch_delivers_every_message_and_keeps_key_order_test() {
  let target = test_support.start_target("gleam_cast_batch")
  test_support.start_sink(target.node, "gleam_cast_sink")
  test_support.start_sink(target.node, "gleam_keyed_sink")
  let assert Ok(pool) = connection_pool.new(target.node, 3)
  // Without a key: every message exactly once, in any order.
  let plain = test_support.range(1, 300)
  let assert Ok(300) =
    connection_pool.cast_batch(pool, to: "gleam_cast_sink", messages: plain)
  test_support.wait_until(
    fn() {
      test_support.length(test_support.sink_messages(
        target.node,
        "gleam_cast_sink",
      ))
      >= 300
    },
    10_000,
  )
  let received: List(Int) =
    test_support.sink_messages(target.node, "gleam_cast_sink")
  let assert 300 = test_support.length(received)
  let assert 300 = test_support.length(test_support.unique(received))
  let assert True = all(plain, fn(i) { test_support.contains(received, i) })
  // With a key: each key's messages arrive in list order.
  let keys = [1, 2, 3, 4, 5]
  let sequence = test_support.range(1, 200)
  let keyed =
    flat_map(sequence, fn(seq) { test_support.map(keys, fn(k) { #(k, seq) }) })
  let assert Ok(1000) =
    connection_pool.cast_batch_by_key(
      pool,
      to: "gleam_keyed_sink",
      messages: keyed,
      key: fn(message: #(Int, Int)) { message.0 },
    )
  test_support.wait_until(
    fn() {
      test_support.length(test_support.sink_messages(
        target.node,
        "gleam_keyed_sink",
      ))
      >= 1000
    },
    10_000,
  )
  let arrived: List(#(Int, Int)) =
    test_support.sink_messages(target.node, "gleam_keyed_sink")
  let assert True =
    all(
      keys,
      fn(k) { sequences_of(arrived, k) == sequence },
    )
  let assert Error(connection_pool.BadDestination) =
    connection_pool.cast_batch(pool, to: "", messages: [1])
  let assert Ok(Nil) = connection_pool.destroy(pool)
  let assert Error(connection_pool.OperationPoolError(connection_pool.InvalidPool)) =
    connection_pool.cast_batch(pool, to: "gleam_cast_sink", messages: [1])
  test_support.stop_target(target)
}

fn all(list: List(a), check: fn(a) -> Bool) -> Bool {
  case list {
    [] -> True
    [first, ..rest] ->
      case check(first) {
        True -> all(rest, check)
        False -> False
      }
  }
}

fn flat_map(list: List(a), func: fn(a) -> List(b)) -> List(b) {
  test_support.reverse(do_flat_map(list, func, []))
}

fn do_flat_map(list: List(a), func: fn(a) -> List(b), acc: List(b)) -> List(b) {
  case list {
    [] -> acc
    [first, ..rest] -> do_flat_map(rest, func, prepend_all(func(first), acc))
  }
}

fn prepend_all(items: List(b), acc: List(b)) -> List(b) {
  case items {
    [] -> acc
    [first, ..rest] -> prepend_all(rest, [first, ..acc])
  }
}

// The sequence numbers of key `key`'s messages, in arrival order.
fn sequences_of(messages: List(#(Int, Int)), key: Int) -> List(Int) {
  test_support.reverse(do_sequences_of(messages, key, []))
}

fn do_sequences_of(
  messages: List(#(Int, Int)),
  key: Int,
  acc: List(Int),
) -> List(Int) {
  case messages {
    [] -> acc
    [#(k, seq), ..rest] if k == key -> do_sequences_of(rest, key, [seq, ..acc])
    [_, ..rest] -> do_sequences_of(rest, key, acc)
  }
}

pub fn stress_test_bad_counts_are_invalid_config_test() {
  let target = test_support.start_target("gleam_stress_bad")
  let assert Ok(pool) = connection_pool.new(target.node, 1)
  let assert Error(connection_pool.InvalidConfig) =
    connection_pool.stress_test(pool, -1, 1)
  let assert Error(connection_pool.InvalidConfig) =
    connection_pool.stress_test(pool, 1, 0)
  let assert Ok(Nil) = connection_pool.destroy(pool)
  test_support.stop_target(target)
}

pub fn lifecycle_options_and_stats_test() {
  let target = test_support.start_target("gleam_lifecycle")
  let config =
    connection_pool.PoolConfig(
      ..connection_pool.config(3),
      min_connections: 1,
      validate_on_checkout: True,
      health_check_interval_ms: 0,
      max_lifetime_ms: 0,
    )
  let assert Ok(pool) = connection_pool.new_with_config(target.node, config)
  let assert Ok(True) = connection_pool.with_connection(pool, connection_pool.ping)
  let assert Ok(True) = connection_pool.with_connection(pool, connection_pool.ping)
  let assert Ok(detailed) = connection_pool.detailed_stats(pool)
  // validate_on_checkout: one round trip per lease of the idle connection.
  let assert 2 = detailed.health_checks
  let assert 2 = detailed.acquire_count
  let assert 2 = detailed.hits
  let assert 0 = detailed.misses
  let assert 1 = detailed.capacity
  let assert 1 = detailed.connections_created
  let assert False = detailed.draining
  let assert connection_pool.ClosedConnections(destroy: 0, health: 0, ..) =
    detailed.connections_closed
  let assert Error(connection_pool.InvalidConfig) =
    connection_pool.destroy_with_drain(pool, -1)
  let assert Ok(Nil) = connection_pool.destroy_with_drain(pool, 0)
  let assert Error(connection_pool.InvalidPool) = connection_pool.detailed_stats(pool)
  test_support.stop_target(target)
}

pub fn pool_cookie_is_checked_and_never_echoed_test() {
  let config =
    connection_pool.PoolConfig(..connection_pool.config(1), cookie: "two words")
  let assert Error(#(connection_pool.InvalidConfig, reason)) =
    connection_pool.new_with_reason("someone@127.0.0.1", config)
  let assert True = test_support.text_contains(reason, "cookie => hidden")
  let assert False = test_support.text_contains(reason, "two words")
}

pub fn pool_tls_password_is_never_echoed_test() {
  let config =
    connection_pool.PoolConfig(
      ..connection_pool.config(1),
      tls: connection_pool.Tls(
        ..connection_pool.tls(connection_pool.Verified),
        certfile: "/nonexistent/dpool_node.pem",
        keyfile: "/nonexistent/dpool_node.key",
        password: "s3cret tls pass",
      ),
    )
  let assert Error(#(connection_pool.InvalidConfig, reason)) =
    connection_pool.new_with_reason("someone@127.0.0.1", config)
  let assert True = test_support.text_contains(reason, "tls")
  let assert False = test_support.text_contains(reason, "s3cret")
}

/// A pool's own TLS mode reaches the C-node: `PlainTcp` to a plain target works, the files of `CNodeTls`
/// without a mode are refused.
pub fn pool_tls_mode_reaches_the_cnode_test() {
  let target = test_support.start_target("gleam_tls")
  let plain =
    connection_pool.PoolConfig(
      ..connection_pool.config(1),
      tls: connection_pool.tls(connection_pool.PlainTcp),
    )
  let assert Ok(pool) = connection_pool.new_with_config(target.node, plain)
  let assert Ok(True) =
    connection_pool.with_connection(pool, connection_pool.ping)
  let assert Ok(Nil) = connection_pool.destroy(pool)
  let files_without_mode =
    connection_pool.PoolConfig(
      ..connection_pool.config(1),
      tls: connection_pool.Tls(
        ..connection_pool.tls(connection_pool.CNodeTls),
        cacertfile: "/etc/ssl/dpool-ca.pem",
      ),
    )
  let assert Error(connection_pool.InvalidConfig) =
    connection_pool.new_with_config(target.node, files_without_mode)
  test_support.stop_target(target)
}
