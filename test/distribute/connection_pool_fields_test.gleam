//// Every field of the records that cross to the Erlang library lands in its place: each setting of a
//// `PoolConfig` reaches the option of its own name, and each field of `PoolStats` and `DetailedStats`
//// holds the library's value of its own name. Values are made distinct where a workload allows, so that
//// two fields read into each other's place would fail here.

import distribute/connection_pool
import distribute/test_support

/// Each setting, given alone a value out of its range, is refused by the library under its own name with
/// that value: a setting sent under another option's name would be refused as that option, or accepted.
pub fn every_config_field_reaches_its_own_option_test() {
  let base = connection_pool.config(2)
  let cases = [
    #(
      connection_pool.PoolConfig(..base, max_connections: 1001),
      "max_connections => 1001:",
    ),
    #(
      connection_pool.PoolConfig(..base, min_connections: 3),
      "min_connections => 3:",
    ),
    #(
      connection_pool.PoolConfig(..base, acquire_timeout_ms: -7),
      "acquire_timeout_ms => -7:",
    ),
    #(
      connection_pool.PoolConfig(..base, connect_timeout_ms: 600_001),
      "connect_timeout_ms => 600001:",
    ),
    #(
      connection_pool.PoolConfig(..base, backoff_min_ms: -11),
      "backoff_min_ms => -11:",
    ),
    #(
      connection_pool.PoolConfig(..base, backoff_max_ms: 600_002),
      "backoff_max_ms => 600002:",
    ),
    #(
      connection_pool.PoolConfig(..base, max_idle_ms: 9),
      "max_idle_ms => 9:",
    ),
    #(
      connection_pool.PoolConfig(..base, max_lifetime_ms: 98),
      "max_lifetime_ms => 98:",
    ),
    #(
      connection_pool.PoolConfig(..base, health_check_interval_ms: 8),
      "health_check_interval_ms => 8:",
    ),
    #(
      connection_pool.PoolConfig(..base, health_check_timeout_ms: 600_003),
      "health_check_timeout_ms => 600003:",
    ),
    #(
      connection_pool.PoolConfig(..base, resize_window_ms: 97),
      "resize_window_ms => 97:",
    ),
    #(
      connection_pool.PoolConfig(..base, max_waiters: 0),
      "max_waiters => 0:",
    ),
    #(
      connection_pool.PoolConfig(..base, max_pending_requests: 1_000_001),
      "max_pending_requests => 1000001:",
    ),
  ]
  let refusals =
    test_support.map(
      cases,
      fn(example) {
        let #(config, _) = example
        connection_pool.new_with_reason("a@127.0.0.1", config)
      },
    )
  let expected =
    test_support.map(
      cases,
      fn(example) {
        let #(_, says) = example
        says
      },
    )
  let assert True = length_equal(refusals, expected)
  let assert True = all_refused_saying(refusals, expected)
  // The defaults themselves are all valid, and so is every setting of `config` left as it is.
  let assert Error(#(connection_pool.ConnectionFailed, _)) =
    connection_pool.new_with_reason(
      "nobody_listens_here@127.0.0.1",
      connection_pool.PoolConfig(..base, connect_timeout_ms: 1000),
    )
}

fn length_equal(a: List(x), b: List(y)) -> Bool {
  test_support.length(a) == test_support.length(b)
}

fn all_refused_saying(
  refusals: List(Result(connection_pool.Pool, #(connection_pool.PoolError, String))),
  expected: List(String),
) -> Bool {
  case refusals, expected {
    [], [] -> True
    [Error(#(connection_pool.InvalidConfig, why)), ..rest], [says, ..more] ->
      case test_support.text_contains(why, "invalid configuration: " <> says) {
        True -> all_refused_saying(rest, more)
        False -> {
          test_support.println("expected \"" <> says <> "\" in: " <> why)
          False
        }
      }
    _, _ -> False
  }
}

/// A known workload on a pool that grows: every field of `DetailedStats` and `PoolStats` is the value it
/// should be, and (same_as_library) the library's own value under the field's name.
pub fn detailed_stats_fields_hold_their_own_values_test() {
  let target = test_support.start_target("gleam_fields")
  test_support.start_sink(target.node, "gleam_fields_sink")
  let config =
    connection_pool.PoolConfig(
      ..connection_pool.config(6),
      min_connections: 2,
      acquire_timeout_ms: 3000,
      validate_on_checkout: True,
      health_check_interval_ms: 0,
      max_lifetime_ms: 0,
      max_idle_ms: 0,
      resize_window_ms: 86_400_000,
    )
  let assert Ok(pool) = connection_pool.new_with_config(target.node, config)
  // A discarded connection (closed as broken, then reopened), and 64 pipelined sends on its ended lease:
  // dropped, and counted as failed operations.
  let assert Ok(Nil) =
    connection_pool.with_connection(
      pool,
      fn(conn) {
        let assert Ok(Nil) = connection_pool.discard(conn)
        let late =
          test_support.map(
            test_support.range(1, 64),
            fn(i) {
              connection_pool.send_async(conn, to: "gleam_fields_sink", message: i)
            },
          )
        let assert True = test_support.contains(late, Error(connection_pool.LeaseEnded))
        Nil
      },
    )
  test_support.wait_until(
    fn() {
      case connection_pool.stats(pool) {
        Ok(stats) -> stats.available_connections == 2
        Error(_) -> False
      }
    },
    10_000,
  )
  // Four leases at once: two served by idle connections (validated first), two that wait while the pool
  // opens a connection for each. Seven operations succeed; the fourth lease is returned before the stats
  // are read, inside the third.
  let send = fn(conn, message) {
    let assert Ok(Nil) =
      connection_pool.send(conn, to: "gleam_fields_sink", message: message)
    Nil
  }
  let assert Ok(Ok(Ok(#(detailed, stats)))) =
    connection_pool.with_connection(
      pool,
      fn(a) {
        send(a, 1)
        send(a, 2)
        connection_pool.with_connection(
          pool,
          fn(b) {
            send(b, 3)
            send(b, 4)
            connection_pool.with_connection(
              pool,
              fn(c) {
                let assert True = connection_pool.ping(c)
                let assert Ok(Nil) =
                  connection_pool.with_connection(
                    pool,
                    fn(d) {
                      send(d, 5)
                      send(d, 6)
                    },
                  )
                let assert Ok(detailed) = connection_pool.detailed_stats(pool)
                let assert Ok(stats) = connection_pool.stats(pool)
                same_as_library(detailed, stats)
                #(detailed, stats)
              },
            )
          },
        )
      },
    )
  // Settings.
  let assert True = detailed.target_node == target.node
  let assert 6 = detailed.max_connections
  let assert 2 = detailed.min_connections
  // Connections: 2 opened by new, 1 replacing the discarded one, 2 for the waiting leases.
  let assert 4 = detailed.total_connections
  let assert 1 = detailed.available_connections
  let assert 3 = detailed.in_use_connections
  let assert 0 = detailed.connecting_connections
  let assert 0 = detailed.waiting
  let assert 4 = detailed.capacity
  let assert 5 = detailed.connections_created
  let assert 1 = detailed.reconnect_attempts
  let assert False = detailed.draining
  // Operations: 6 sends and a ping succeeded; the 64 dropped sends failed.
  let assert 7 = detailed.successful_operations
  let assert 64 = detailed.failed_operations
  let assert 64 = detailed.dropped_sends
  // Checkouts: 5 leases, 3 served at once by an idle connection after its health round trip, 2 waited.
  let assert 5 = detailed.acquire_count
  let assert 3 = detailed.hits
  let assert 2 = detailed.misses
  let assert 0 = detailed.acquire_timeouts
  let assert 3 = detailed.health_checks
  // Waits are timings: besides the library's values (same_as_library), only how they compare.
  let assert True = detailed.acquire_wait_avg_us > 0
  let assert True = detailed.acquire_wait_avg_us < detailed.acquire_wait_max_us
  // Requests to the target: only the ping is timed (health round trips are not callers' requests), so
  // p50 and p99 are its time in whole microseconds and the mean the same to the nearest one.
  let assert True = detailed.request_rtt_p50_us > 0
  let assert True = detailed.request_rtt_p50_us == detailed.request_rtt_p99_us
  let rounding = detailed.request_rtt_avg_us - detailed.request_rtt_p50_us
  let assert True = rounding == 0 || rounding == 1
  // Closes, by reason: only the discarded connection.
  let assert connection_pool.ClosedConnections(
    idle: 0,
    lifetime: 0,
    broken: 1,
    health: 0,
    destroy: 0,
    target_down: 0,
  ) = detailed.connections_closed
  // Three connections leased, one idle, each under its own node name.
  let assert 3 =
    test_support.length(filter(
      detailed.connections,
      fn(c: connection_pool.ConnectionStats) { c.state == connection_pool.InUse },
    ))
  let assert 1 =
    test_support.length(filter(
      detailed.connections,
      fn(c: connection_pool.ConnectionStats) { c.state == connection_pool.Available },
    ))
  let assert 4 =
    test_support.length(test_support.unique(test_support.map(
      detailed.connections,
      fn(c: connection_pool.ConnectionStats) { c.node },
    )))
  // PoolStats, read at the same moment, by name.
  let assert connection_pool.PoolStats(
    total_connections: 4,
    available_connections: 1,
    in_use_connections: 3,
    failed_operations: 64,
    successful_operations: 7,
  ) = stats
  let assert Ok(Nil) = connection_pool.destroy(pool)
  test_support.stop_target(target)
}

/// A fail-fast pool, both connections leased: the refused checkouts are `acquire_timeouts`, `misses` and
/// failed operations, each read from the field of its name.
pub fn exhausted_checkouts_are_counted_in_their_fields_test() {
  let target = test_support.start_target("gleam_fields_exhausted")
  let config =
    connection_pool.PoolConfig(
      ..connection_pool.config(2),
      acquire_timeout_ms: 0,
      health_check_interval_ms: 0,
    )
  let assert Ok(pool) = connection_pool.new_with_config(target.node, config)
  let assert Ok(Ok(detailed)) =
    connection_pool.with_connection(
      pool,
      fn(_) {
        connection_pool.with_connection(
          pool,
          fn(_) {
            let assert Error(connection_pool.PoolExhausted) =
              connection_pool.with_connection(pool, fn(_) { Nil })
            let assert Error(connection_pool.PoolExhausted) =
              connection_pool.with_connection(pool, fn(_) { Nil })
            let assert Error(connection_pool.PoolExhausted) =
              connection_pool.with_connection(pool, fn(_) { Nil })
            let assert Ok(detailed) = connection_pool.detailed_stats(pool)
            let assert Ok(stats) = connection_pool.stats(pool)
            same_as_library(detailed, stats)
            detailed
          },
        )
      },
    )
  let assert 5 = detailed.acquire_count
  let assert 2 = detailed.hits
  let assert 3 = detailed.misses
  let assert 3 = detailed.acquire_timeouts
  let assert 3 = detailed.failed_operations
  let assert 0 = detailed.successful_operations
  let assert 0 = detailed.health_checks
  let assert 2 = detailed.in_use_connections
  let assert 0 = detailed.available_connections
  let assert Ok(Nil) = connection_pool.destroy(pool)
  test_support.stop_target(target)
}

/// The reasons carried by `DestinationDown` and `BadRpc` are the library's, untouched.
pub fn operation_errors_carry_the_library_reason_test() {
  let target = test_support.start_target("gleam_fields_errors")
  let assert Ok(pool) = connection_pool.new(target.node, 1)
  let assert Ok(Nil) =
    connection_pool.with_connection(
      pool,
      fn(conn) {
        let assert Error(connection_pool.DestinationDown(reason: down)) =
          connection_pool.request(
            conn,
            to: "no_such_process",
            request: 1,
            timeout_ms: 5000,
          )
        let assert True = down == test_support.atom("noproc")
        let assert Error(connection_pool.BadRpc(reason: bad_name)) =
          connection_pool.call(
            conn,
            module: "",
            function: "node",
            args: [],
            timeout_ms: 5000,
          )
        let assert True =
          bad_name == connection_pool.to_term(#(test_support.atom("bad_name"), "", "node"))
        Nil
      },
    )
  let assert Ok(Nil) = connection_pool.destroy(pool)
  test_support.stop_target(target)
}

/// Every field of `detailed` and `stats` equals the value the library's own stats map holds, now, under
/// the field's name (`target_node` under `target`, `draining` from `state`). Called while nothing changes
/// the pool, so the three reads see the same moment.
fn same_as_library(
  detailed: connection_pool.DetailedStats,
  stats: connection_pool.PoolStats,
) -> Nil {
  let id = detailed.pool_id
  let library = fn(key) { test_support.library_int(id, [key]) }
  let closed = fn(key) { test_support.library_int(id, ["connections_closed", key]) }
  let assert True = detailed.target_node == test_support.library_name(id, "target")
  let assert True =
    detailed.draining == { test_support.library_name(id, "state") == "draining" }
  let assert True = detailed.max_connections == library("max_connections")
  let assert True = detailed.min_connections == library("min_connections")
  let assert True = detailed.total_connections == library("total_connections")
  let assert True =
    detailed.available_connections == library("available_connections")
  let assert True = detailed.in_use_connections == library("in_use_connections")
  let assert True =
    detailed.connecting_connections == library("connecting_connections")
  let assert True = detailed.waiting == library("waiting")
  let assert True =
    detailed.successful_operations == library("successful_operations")
  let assert True = detailed.failed_operations == library("failed_operations")
  let assert True = detailed.capacity == library("capacity")
  let assert True = detailed.connections_created == library("connections_created")
  let assert True = detailed.reconnect_attempts == library("reconnect_attempts")
  let assert True = detailed.health_checks == library("health_checks")
  let assert True = detailed.acquire_count == library("acquire_count")
  let assert True = detailed.acquire_timeouts == library("acquire_timeouts")
  let assert True = detailed.hits == library("hits")
  let assert True = detailed.misses == library("misses")
  let assert True = detailed.acquire_wait_avg_us == library("acquire_wait_avg_us")
  let assert True = detailed.acquire_wait_max_us == library("acquire_wait_max_us")
  let assert True = detailed.acquire_wait_p99_us == library("acquire_wait_p99_us")
  let assert True = detailed.request_rtt_avg_us == library("request_rtt_avg_us")
  let assert True = detailed.request_rtt_p50_us == library("request_rtt_p50_us")
  let assert True = detailed.request_rtt_p99_us == library("request_rtt_p99_us")
  let assert True = detailed.dropped_sends == library("dropped_sends")
  let assert True = detailed.connections_closed.idle == closed("idle")
  let assert True = detailed.connections_closed.lifetime == closed("lifetime")
  let assert True = detailed.connections_closed.broken == closed("broken")
  let assert True = detailed.connections_closed.health == closed("health")
  let assert True = detailed.connections_closed.destroy == closed("destroy")
  let assert True =
    detailed.connections_closed.target_down == closed("target_down")
  let assert True =
    test_support.map(detailed.connections, connection_triple)
    == test_support.library_connections(id)
  let assert True = stats.total_connections == library("total_connections")
  let assert True =
    stats.available_connections == library("available_connections")
  let assert True = stats.in_use_connections == library("in_use_connections")
  let assert True = stats.failed_operations == library("failed_operations")
  let assert True =
    stats.successful_operations == library("successful_operations")
  Nil
}

fn connection_triple(
  connection: connection_pool.ConnectionStats,
) -> #(Int, String, String) {
  let state = case connection.state {
    connection_pool.Available -> "available"
    connection_pool.InUse -> "in_use"
    connection_pool.Connecting -> "connecting"
  }
  #(connection.id, connection.node, state)
}

fn filter(list: List(a), keep: fn(a) -> Bool) -> List(a) {
  case list {
    [] -> []
    [first, ..rest] ->
      case keep(first) {
        True -> [first, ..filter(rest, keep)]
        False -> filter(rest, keep)
      }
  }
}
