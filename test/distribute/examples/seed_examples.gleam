//// The code examples of the seed document (docs/connection_pool seed: Quick Start and Usage Patterns),
//// kept as written where Gleam allows, so that the tests prove them. What had to change, and why:
//// - `import distribute/connection_pool.{type Pool, type PoolError}` is refused by Gleam 0.30, so types
////   are written qualified (`connection_pool.Pool`), which both 0.30 and 1.x accept;
//// - `gleam/io`, `gleam/int`, `gleam/list` come from stand-ins next to this file (no gleam_stdlib offline);
//// - `setup_pool` takes the target node instead of "worker@node.example.com" (tests stay on loopback);
//// - the helpers the seed leaves undefined (send_via_connection, forward_request, serialize_and_send,
////   retry_failed, Request, Response, Record) are defined here, over the connection operations;
//// - the request handler's inner function is `handler_for(pool)`, so a test can exhaust its pool.

import distribute/connection_pool
import distribute/examples/int
import distribute/examples/io
import distribute/examples/list

// --- Quick Start: creating a connection pool -----------------------------------------------------------

pub fn setup_pool(
  target_node: String,
) -> Result(connection_pool.Pool, connection_pool.PoolError) {
  let max_connections = 10

  case connection_pool.new(target_node, max_connections) {
    Ok(pool) -> {
      io.println("Pool created with 10 connections")
      Ok(pool)
    }
    Error(connection_pool.InvalidConfig) -> {
      io.println("Invalid pool configuration")
      Error(connection_pool.InvalidConfig)
    }
    Error(connection_pool.ConnectionFailed) -> {
      io.println("Failed to connect to target node")
      Error(connection_pool.ConnectionFailed)
    }
    Error(err) -> Error(err)
  }
}

// --- Quick Start: using connections ----------------------------------------------------------------------

/// The registered process on the target that the examples deliver to.
pub const inbox = "seed_inbox"

pub fn send_via_connection(
  conn: connection_pool.Connection,
  data: a,
) -> Result(Nil, connection_pool.OperationError) {
  connection_pool.send(conn, to: inbox, message: data)
}

pub fn send_request(pool: connection_pool.Pool, data: String) {
  connection_pool.with_connection(pool, fn(conn) {
    // Use the connection
    let result = send_via_connection(conn, data)
    result
  })
}

// --- Quick Start: batch operations ------------------------------------------------------------------------

pub fn send_many_messages(pool: connection_pool.Pool, messages: List(String)) {
  let send_fn = fn(conn, msg) { send_via_connection(conn, msg) }

  case connection_pool.send_batch(pool, messages, send_fn) {
    Ok(results) -> {
      io.println("Sent " <> int.to_string(list.length(results)) <> " messages")
      Ok(results)
    }
    Error(connection_pool.PoolExhausted) -> {
      io.println("Pool exhausted, try again later")
      Error(connection_pool.PoolExhausted)
    }
    Error(err) -> Error(err)
  }
}

// --- Pattern 1: request handler with pooled connections ---------------------------------------------------

pub type Request {
  Request(path: String)
}

pub type Response {
  Response(status: Int, body: String)
}

/// Answers a request by a remote call over the leased connection.
pub fn forward_request(
  conn: connection_pool.Connection,
  request: Request,
) -> Response {
  case
    connection_pool.call(
      conn,
      module: "erlang",
      function: "byte_size",
      args: [connection_pool.to_term(request.path)],
      timeout_ms: 5000,
    )
  {
    Ok(size) -> Response(status: 200, body: connection_pool.inspect(size))
    Error(_) -> Response(status: 502, body: "Bad gateway")
  }
}

pub fn start_request_handler(target_node: String) {
  let assert Ok(pool) = connection_pool.new(target_node, 20)

  // Handler function for incoming requests
  handler_for(pool)
}

pub fn handler_for(pool: connection_pool.Pool) -> fn(Request) -> Response {
  fn(request: Request) -> Response {
    case
      connection_pool.with_connection(pool, fn(conn) {
        forward_request(conn, request)
      })
    {
      Ok(response) -> response
      Error(connection_pool.PoolExhausted) -> {
        Response(status: 503, body: "Service busy")
      }
      Error(_) -> {
        Response(status: 500, body: "Connection error")
      }
    }
  }
}

// --- Pattern 2: bulk data synchronisation -----------------------------------------------------------------

/// A record to sync. `flaky` records fail on their first attempt only (see `first_attempt`).
pub type Record {
  Record(id: Int, flaky: Bool)
}

pub fn serialize_and_send(conn: connection_pool.Connection, record: Record) {
  case record.flaky && first_attempt(record.id) {
    True -> panic
    False -> {
      let assert Ok(Nil) = send_via_connection(conn, #(record.id, record.flaky))
      record.id
    }
  }
}

/// Sends the failed records again, once; `Ok(Nil)` when all of them got through.
pub fn retry_failed(
  pool: connection_pool.Pool,
  records: List(Record),
  failures: List(#(Int, connection_pool.PoolError)),
) -> Result(Nil, connection_pool.PoolError) {
  let indices = indices_of(failures)
  let again = list.at_indices(records, indices)
  case
    connection_pool.send_batch_parallel(pool, again, fn(conn, record) {
      serialize_and_send(conn, record)
    })
  {
    Ok(connection_pool.BatchResult(failed: [], ..)) -> Ok(Nil)
    Ok(_) -> Error(connection_pool.ConnectionFailed)
    Error(err) -> Error(err)
  }
}

fn indices_of(failures: List(#(Int, connection_pool.PoolError))) -> List(Int) {
  case failures {
    [] -> []
    [#(index, _), ..rest] -> [index, ..indices_of(rest)]
  }
}

pub fn sync_records(pool: connection_pool.Pool, records: List(Record)) {
  let send_fn = fn(conn, record) { serialize_and_send(conn, record) }

  case connection_pool.send_batch_parallel(pool, records, send_fn) {
    Ok(batch_result) -> {
      let success_count = list.length(batch_result.successful)
      let failure_count = list.length(batch_result.failed)

      io.println(
        "Synced "
        <> int.to_string(success_count)
        <> " records, "
        <> int.to_string(failure_count)
        <> " failed",
      )

      // Retry failed records
      case batch_result.failed {
        [] -> Ok(Nil)
        failures -> retry_failed(pool, records, failures)
      }
    }
    Error(err) -> Error(err)
  }
}

// --- Pattern 3: pool health monitoring --------------------------------------------------------------------

pub fn monitor_pool_health(pool: connection_pool.Pool) {
  case connection_pool.stats(pool) {
    Ok(stats) -> {
      let utilization =
        int.to_float(stats.in_use_connections)
        /. int.to_float(stats.total_connections)

      case utilization >. 0.8 {
        True -> {
          io.println("Warning: Pool utilization above 80%")
          // Consider scaling or alerting
        }
        False -> Nil
      }

      case stats.failed_operations > 100 {
        True -> {
          io.println("Warning: High failure rate")
          // Investigate connection issues
        }
        False -> Nil
      }
    }
    Error(connection_pool.InvalidPool) -> {
      io.println("Pool has been destroyed")
    }
    Error(_) -> {
      io.println("Failed to get pool stats")
    }
  }
}

/// True the first time it is asked about `id` (kept in persistent_term, so every process sees it).
@external(erlang, "distribute_test_ffi", "first_attempt")
pub fn first_attempt(id: Int) -> Bool
