//// Exercises the seed document's examples (test/distribute/examples/seed_examples.gleam) against a real
//// target node: every branch a test can reach on loopback.

import distribute/connection_pool
import distribute/examples/seed_examples
import distribute/test_support

pub fn quick_start_test() {
  let target = test_support.start_target("gleam_seed_quick")
  test_support.start_sink(target.node, seed_examples.inbox)
  let #(created, printed) =
    test_support.capture_output(fn() { seed_examples.setup_pool(target.node) })
  let assert Ok(pool) = created
  let assert "Pool created with 10 connections\n" = printed
  let assert Ok(Ok(Nil)) = seed_examples.send_request(pool, "one")
  let #(sent, printed) =
    test_support.capture_output(fn() {
      seed_examples.send_many_messages(pool, ["two", "three"])
    })
  let assert Ok([Ok(Nil), Ok(Nil)]) = sent
  let assert "Sent 2 messages\n" = printed
  test_support.wait_until(
    fn() {
      test_support.sink_messages(target.node, seed_examples.inbox)
      == ["one", "two", "three"]
    },
    5000,
  )
  let assert Ok(Nil) = connection_pool.destroy(pool)
  test_support.stop_target(target)
}

pub fn quick_start_errors_test() {
  let #(bad, printed) =
    test_support.capture_output(fn() { seed_examples.setup_pool("not a node") })
  let assert Error(connection_pool.InvalidConfig) = bad
  let assert "Invalid pool configuration\n" = printed
  let #(unreachable, printed) =
    test_support.capture_output(fn() {
      seed_examples.setup_pool("nobody_listens_here@127.0.0.1")
    })
  let assert Error(connection_pool.ConnectionFailed) = unreachable
  let assert "Failed to connect to target node\n" = printed
}

pub fn send_many_messages_when_exhausted_test() {
  let target = test_support.start_target("gleam_seed_exhausted")
  let config =
    connection_pool.PoolConfig(
      ..connection_pool.config(1),
      acquire_timeout_ms: 0,
    )
  let assert Ok(pool) = connection_pool.new_with_config(target.node, config)
  let assert Ok(#(Error(connection_pool.PoolExhausted), printed)) =
    connection_pool.with_connection(pool, fn(_) {
      test_support.capture_output(fn() {
        seed_examples.send_many_messages(pool, ["x"])
      })
    })
  let assert "Pool exhausted, try again later\n" = printed
  let assert Ok(Nil) = connection_pool.destroy(pool)
  test_support.stop_target(target)
}

pub fn request_handler_answers_and_sheds_load_test() {
  let target = test_support.start_target("gleam_seed_handler")
  let handle = seed_examples.start_request_handler(target.node)
  let assert seed_examples.Response(status: 200, body: "5") =
    handle(seed_examples.Request(path: "/ping"))

  // A pool with one connection and no waiting: while it is leased, the handler answers 503.
  let config =
    connection_pool.PoolConfig(
      ..connection_pool.config(1),
      acquire_timeout_ms: 0,
    )
  let assert Ok(small) = connection_pool.new_with_config(target.node, config)
  let busy = seed_examples.handler_for(small)
  let assert Ok(seed_examples.Response(status: 503, body: "Service busy")) =
    connection_pool.with_connection(small, fn(_) {
      busy(seed_examples.Request(path: "/x"))
    })
  let assert seed_examples.Response(status: 200, body: "2") =
    busy(seed_examples.Request(path: "/x"))
  let assert Ok(Nil) = connection_pool.destroy(small)
  let assert seed_examples.Response(status: 500, body: "Connection error") =
    busy(seed_examples.Request(path: "/x"))
  test_support.stop_target(target)
}

pub fn bulk_sync_retries_failed_indices_test() {
  let target = test_support.start_target("gleam_seed_sync")
  test_support.start_sink(target.node, seed_examples.inbox)
  test_support.forget_attempts()
  let assert Ok(pool) = connection_pool.new(target.node, 4)
  let records =
    test_support.map(test_support.range(1, 20), fn(id) {
      seed_examples.Record(id: id, flaky: id == 5 || id == 13)
    })
  let #(synced, printed) =
    test_support.capture_output(fn() { seed_examples.sync_records(pool, records) })
  let assert Ok(Nil) = synced
  let assert "Synced 18 records, 2 failed\n" = printed
  // Every record arrived once: 18 on the first pass, the two flaky ones on the retry.
  test_support.wait_until(
    fn() {
      test_support.length(test_support.sink_messages(
        target.node,
        seed_examples.inbox,
      ))
      >= 20
    },
    5000,
  )
  let messages: List(#(Int, Bool)) =
    test_support.sink_messages(target.node, seed_examples.inbox)
  // Anything but the 20 records shows itself in the failure.
  let assert [] = test_support.strays(messages, 1, 20)
  let ids = test_support.map(messages, fn(m: #(Int, Bool)) { m.0 })
  let assert 20 = test_support.length(test_support.unique(ids))
  let assert 20 = test_support.length(ids)
  test_support.forget_attempts()
  let assert Ok(Nil) = connection_pool.destroy(pool)
  test_support.stop_target(target)
}

pub fn health_monitoring_test() {
  let target = test_support.start_target("gleam_seed_health")
  let assert Ok(pool) = connection_pool.new(target.node, 1)
  let #(Nil, quiet) =
    test_support.capture_output(fn() { seed_examples.monitor_pool_health(pool) })
  let assert "" = quiet
  // The lease is pipelined: `connection_id` returns once it is granted. Without it the stats read, made by
  // capture_output's own process (another lane of the C-node), could overtake the checkout.
  let assert Ok(#(Nil, busy)) =
    connection_pool.with_connection(pool, fn(conn) {
      let assert True = connection_pool.connection_id(conn) >= 0
      test_support.capture_output(fn() {
        seed_examples.monitor_pool_health(pool)
      })
    })
  let assert "Warning: Pool utilization above 80%\n" = busy
  let assert Ok(Nil) = connection_pool.destroy(pool)
  let #(Nil, gone) =
    test_support.capture_output(fn() { seed_examples.monitor_pool_health(pool) })
  let assert "Pool has been destroyed\n" = gone
  test_support.stop_target(target)
}
