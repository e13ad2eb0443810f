//// The code of a Gleam project that depends on the package `distribute` (a path dependency in gleam.toml),
//// used as any user would: `connection_pool.new` starts the Erlang application `distribute_pool` (and with it
//// the C-node) when it is not running; that application must be on the code path (scripts/dep_test.sh runs
//// this with ERL_LIBS pointing at the library checkout's _build/default/lib).

import distribute/connection_pool

/// Makes a pool of 2 connections to `target`, asks the target for its node name over a leased connection,
/// destroys the pool and returns the name.
pub fn run(target: String) -> connection_pool.Term {
  let assert Ok(pool) = connection_pool.new(target, 2)
  let assert Ok(Ok(node)) =
    connection_pool.with_connection(pool, fn(conn) {
      connection_pool.call(conn, module: "erlang", function: "node", args: [],
                           timeout_ms: 5000)
    })
  let assert Ok(Nil) = connection_pool.destroy(pool)
  node
}
