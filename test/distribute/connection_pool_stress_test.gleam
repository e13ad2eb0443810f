//// The stress suite: stress_test and send_batch_parallel under load against a real target node started
//// by each test.

import distribute/connection_pool
import distribute/test_support

pub fn stress_test_does_real_round_trips_test() {
  let target = test_support.start_target("gleam_stress")
  let assert Ok(pool) = connection_pool.new(target.node, 4)
  // Progress lines are printed here: the library itself prints nothing.
  let assert Ok(stats) =
    connection_pool.stress_test_reporting(
      pool,
      ops_per_worker: 250,
      workers: 8,
      report: test_support.println,
    )
  // 8 workers x 250 leases, each with one ping over the leased connection.
  let assert 2000 = stats.successful_operations
  let assert 0 = stats.failed_operations
  let assert 4 = stats.total_connections
  let assert Ok(Nil) = connection_pool.destroy(pool)
  test_support.stop_target(target)
}

pub fn send_batch_parallel_spreads_over_the_pool_in_order_test() {
  let target = test_support.start_target("gleam_parallel")
  let assert Ok(pool) = connection_pool.new(target.node, 4)
  let messages = test_support.range(1, 200)
  let assert Ok(connection_pool.BatchResult(successful: results, failed: [])) =
    connection_pool.send_batch_parallel(
      pool,
      messages,
      fn(conn, i) {
        // A round trip that takes a while, so that the workers overlap.
        let assert Ok(_) =
          connection_pool.call(
            conn,
            module: "timer",
            function: "sleep",
            args: [connection_pool.to_term(5)],
            timeout_ms: 5000,
          )
        #(i, connection_pool.connection_id(conn))
      },
    )
  let assert True = test_support.map(results, fn(r) { r.0 }) == messages
  // Really parallel: every connection of the pool took part.
  let assert 4 =
    test_support.length(test_support.unique(test_support.map(results, fn(r) { r.1 })))
  let assert Ok(stats) = connection_pool.stats(pool)
  let assert 200 = stats.successful_operations
  let assert Ok(Nil) = connection_pool.destroy(pool)
  test_support.stop_target(target)
}

pub fn send_batch_parallel_reports_failed_indices_test() {
  let target = test_support.start_target("gleam_parallel_fail")
  let assert Ok(pool) = connection_pool.new(target.node, 3)
  let assert Ok(connection_pool.BatchResult(successful: successful, failed: failed)) =
    connection_pool.send_batch_parallel(
      pool,
      test_support.range(0, 9),
      fn(conn, i) {
        case i == 3 || i == 7 {
          True -> panic
          False -> #(i, connection_pool.ping(conn))
        }
      },
    )
  let assert [
    #(3, connection_pool.ConnectionFailed),
    #(7, connection_pool.ConnectionFailed),
  ] = failed
  let assert True =
    successful == [
      #(0, True),
      #(1, True),
      #(2, True),
      #(4, True),
      #(5, True),
      #(6, True),
      #(8, True),
      #(9, True),
    ]
  let assert Ok(Nil) = connection_pool.destroy(pool)
  test_support.stop_target(target)
}

pub fn send_batch_parallel_caller_death_leaks_nothing_test() {
  let target = test_support.start_target("gleam_parallel_death")
  let assert Ok(pool) = connection_pool.new(target.node, 3)
  let before = test_support.process_count()
  // The caller is killed while its workers are busy.
  test_support.spawn_and_kill_after(
    fn() {
      connection_pool.send_batch_parallel(
        pool,
        test_support.range(1, 1000),
        fn(conn, _) {
          connection_pool.call(
            conn,
            module: "timer",
            function: "sleep",
            args: [connection_pool.to_term(50)],
            timeout_ms: 5000,
          )
        },
      )
    },
    300,
  )
  test_support.sleep(400)
  test_support.wait_until(
    fn() {
      case connection_pool.stats(pool) {
        Ok(stats) ->
          stats.in_use_connections == 0 && stats.available_connections == 3
        Error(_) -> False
      }
    },
    5000,
  )
  test_support.wait_until(fn() { test_support.process_count() <= before }, 5000)
  let assert Ok(Nil) = connection_pool.destroy(pool)
  test_support.stop_target(target)
}
