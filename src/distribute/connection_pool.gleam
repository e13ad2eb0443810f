//// Pools of real Erlang distribution connections to a target node, kept by the distribute_pool C-node
//// and leased to callers.
////
//// This module is the typed Gleam face of the Erlang library `distribute_pool`: every function calls
//// that library (through the small adapter `distribute_connection_pool_ffi`, which only converts values
//// between the two languages), so Gleam, Erlang and Elixir callers share one implementation.
////
//// The node running this code must be distributed (started with `--name` or `-sname`, or with
//// `net_kernel:start/1`) and have the Erlang application `distribute_pool` on its code path; `new` starts
//// the application, and with it the C-node, when it is not running yet.
////
//// ```gleam
//// import distribute/connection_pool
////
//// pub fn main() {
////   let assert Ok(pool) = connection_pool.new("worker@127.0.0.1", 4)
////   let assert Ok(True) = connection_pool.with_connection(pool, connection_pool.ping)
////   let assert Ok(Nil) = connection_pool.destroy(pool)
//// }
//// ```

/// A pool of distribution connections to one target node. Created by `new` or `new_with_config`;
/// call `destroy` when it is no longer needed. A pool value can be passed to any process.
pub opaque type Pool {
  Pool(handle: PoolHandle)
}

/// One leased connection of a pool. Only valid inside the `with_connection` (or batch) callback that
/// received it: once the callback returns, operations on it fail with `LeaseEnded`.
pub opaque type Connection {
  Connection(handle: ConnectionHandle)
}

/// The Erlang library's pool handle (`distribute_pool:pool()`).
type PoolHandle

/// The Erlang library's lease handle (`distribute_pool:conn()`).
type ConnectionHandle

/// Statistics about pool usage and health, true at the moment they were taken:
/// `total_connections` is `available_connections + in_use_connections` plus connections still being
/// opened (see `DetailedStats`).
pub type PoolStats {
  PoolStats(
    total_connections: Int,
    available_connections: Int,
    in_use_connections: Int,
    failed_operations: Int,
    successful_operations: Int,
  )
}

/// What can go wrong with a pool:
/// - `PoolExhausted`: no connection became free within the pool's acquire timeout;
/// - `ConnectionFailed`: the target (or the C-node) could not be reached, or an operation failed;
/// - `InvalidConfig`: a bad target name (not `name@host`), size, timeout or other argument;
/// - `InvalidPool`: the pool is unknown or has been destroyed.
///
/// A bound of the C-node that refuses a request (the library's `{limit_reached, {Limit, Text}}`) is one of
/// these too: a full line of waiters is `PoolExhausted`, a pool beyond the C-node's or the caller node's
/// budget of pools and connections `InvalidConfig`, a target that does not read what was sent to it (or too
/// many requests in flight on one connection) `ConnectionFailed`.
///
/// `new_with_reason` also gives the reason of a failed creation as text (which key or value is wrong,
/// whether the target's name is unknown to its host's epmd, its host unreachable, or its cookie another).
pub type PoolError {
  PoolExhausted
  ConnectionFailed
  InvalidConfig
  InvalidPool
}

/// The outcome of `send_batch_parallel`: the results of the elements that succeeded, in input order, and
/// for each element that failed its index (counting from 0) and why.
pub type BatchResult(r) {
  BatchResult(successful: List(r), failed: List(#(Int, PoolError)))
}

/// How a pool is set up. Start from `config(max_connections)` and change what you need:
/// `PoolConfig(..connection_pool.config(10), acquire_timeout_ms: 0)`.
/// - `max_connections`: how many connections the pool holds at most (1..1000);
/// - `min_connections`: how many are opened at once by `new` (0..max);
/// - `acquire_timeout_ms`: how long `with_connection` waits for a free connection (0 = fail at once);
/// - `connect_timeout_ms`: how long opening one connection may take;
/// - `backoff_min_ms`, `backoff_max_ms`: a lost connection is reopened after a delay that doubles from
///   the first to the second after each failed attempt (with jitter);
/// - `max_idle_ms`: idle connections above `min_connections` are closed after this long (0 = never);
/// - `max_lifetime_ms`: a connection is replaced after this long, less up to 1/8 of jitter; the
///   replacement is opened before the old one is closed (0 = never);
/// - `health_check_interval_ms`: idle connections get a round trip to the target's `net_kernel` this
///   often, and one that fails or takes longer than `health_check_timeout_ms` is replaced (0 = never);
/// - `validate_on_checkout`: a round trip before every lease of an idle connection;
/// - `resize_window_ms`: between `min_connections` and `max_connections` the pool grows when callers
///   waited or fewer than 20% of its connections sat idle over this window, and shrinks when more than
///   80% did;
/// - `max_waiters`: how many callers may wait in line for a connection (one more gets `PoolExhausted` at
///   once);
/// - `max_pending_requests`: how many requests and calls may be in flight on one connection;
/// - `cookie`: the cookie of this pool's handshakes with its target, for a target in another cookie domain
///   (printable ASCII without spaces, 1..255 characters); `""` (the default) uses the C-node's. Never
///   logged, never in stats or errors;
/// - `tls`: TLS of this pool's connections, for a target that runs TLS distribution (`-proto_dist
///   inet_tls`) or one that does not; `tls(CNodeTls)` (the default) uses the C-node's mode and files.
pub type PoolConfig {
  PoolConfig(
    max_connections: Int,
    min_connections: Int,
    acquire_timeout_ms: Int,
    connect_timeout_ms: Int,
    backoff_min_ms: Int,
    backoff_max_ms: Int,
    max_idle_ms: Int,
    max_lifetime_ms: Int,
    health_check_interval_ms: Int,
    health_check_timeout_ms: Int,
    validate_on_checkout: Bool,
    resize_window_ms: Int,
    max_waiters: Int,
    max_pending_requests: Int,
    cookie: String,
    tls: Tls,
  )
}

/// How a pool's connections use TLS (README, "TLS distribution"): in `mode`, with these files and the key's
/// password, each one `""` the C-node's. The password is never logged, never in stats or errors.
/// `tls(mode)` gives one with the C-node's files: `Tls(..connection_pool.tls(connection_pool.Verified),
/// cacertfile: "/etc/ssl/cluster-ca.pem")`. With the mode `CNodeTls` no file may be given (`InvalidConfig`).
pub type Tls {
  Tls(
    mode: TlsMode,
    certfile: String,
    keyfile: String,
    cacertfile: String,
    password: String,
  )
}

/// The TLS modes: `CNodeTls`, the C-node's mode and files (the default); `PlainTcp`, no TLS;
/// `Unverified`, TLS that accepts any certificate (self-signed clusters); `Verified`, TLS that checks the
/// target's certificate chain against the CA file and its host name against the target's.
pub type TlsMode {
  CNodeTls
  PlainTcp
  Unverified
  Verified
}

/// `Tls` in `mode` with the C-node's files.
pub fn tls(mode: TlsMode) -> Tls {
  Tls(mode: mode, certfile: "", keyfile: "", cacertfile: "", password: "")
}

/// The state of one pooled connection.
pub type ConnectionState {
  Available
  InUse
  Connecting
}

/// One pooled connection as `detailed_stats` reports it: its id (stable for its life), the hidden node
/// name it has on the target, and its state.
pub type ConnectionStats {
  ConnectionStats(id: Int, node: String, state: ConnectionState)
}

/// Everything the C-node knows about a pool. `dropped_sends` counts the messages of `send_async` that the
/// C-node could not queue (their lease had ended, or the connection was down) and dropped. The
/// `acquire_wait_*` fields time checkouts (from the request to the lease); the `request_rtt_*` fields time
/// the requests and calls made for callers from the C-node to the target and back (the target's share of a
/// round trip). Means and maxima are to the nearest microsecond; p50 and p99 come from a histogram,
/// within 6.25%.
pub type DetailedStats {
  DetailedStats(
    pool_id: Int,
    target_node: String,
    max_connections: Int,
    min_connections: Int,
    total_connections: Int,
    available_connections: Int,
    in_use_connections: Int,
    connecting_connections: Int,
    waiting: Int,
    successful_operations: Int,
    failed_operations: Int,
    connections: List(ConnectionStats),
    draining: Bool,
    capacity: Int,
    connections_created: Int,
    connections_closed: ClosedConnections,
    reconnect_attempts: Int,
    health_checks: Int,
    acquire_count: Int,
    acquire_timeouts: Int,
    hits: Int,
    misses: Int,
    acquire_wait_avg_us: Int,
    acquire_wait_max_us: Int,
    acquire_wait_p99_us: Int,
    request_rtt_avg_us: Int,
    request_rtt_p50_us: Int,
    request_rtt_p99_us: Int,
    dropped_sends: Int,
  )
}

/// How many connections the pool closed, by reason: idle (above the minimum, or not needed), lifetime
/// (replaced after `max_lifetime_ms`), broken (returned with `discard`), health (failed a round trip),
/// destroy, and target_down (closed by the target or lost).
pub type ClosedConnections {
  ClosedConnections(
    idle: Int,
    lifetime: Int,
    broken: Int,
    health: Int,
    destroy: Int,
    target_down: Int,
  )
}

/// Any Erlang term: what a remote call or request answers. Compare it with `to_term(value)`, print it
/// with `inspect`, or hand it to a decoder (with gleam_stdlib, `dynamic.from(term)`).
pub type Term

/// What can go wrong with an operation on a leased connection:
/// - `OperationTimeout`: no reply within the timeout;
/// - `DestinationDown(reason)`: the process asked does not exist, or died before it answered;
/// - `BadRpc(reason)`: the remote call raised, or the target could not run it;
/// - `LeaseEnded`: the connection was used after its `with_connection` callback returned;
/// - `BadDestination`: a name that cannot be a registered name (empty, or longer than 255 characters);
/// - `OperationPoolError(error)`: the pool or its connection failed (`ConnectionFailed`, `InvalidPool`).
pub type OperationError {
  OperationTimeout
  DestinationDown(reason: Term)
  BadRpc(reason: Term)
  LeaseEnded
  BadDestination
  OperationPoolError(error: PoolError)
}

/// The defaults for a pool of `max_connections`: all of them opened at once, a 5 s acquire timeout, a
/// 5 s connect timeout, reconnect delays from 100 ms to 5 s, idle connections above the minimum closed
/// after 10 minutes, connections replaced after 30 minutes, a health check every 30 s (5 s timeout), no
/// validation on checkout, a 10 s resize window, at most 10,000 callers in line and 1000 requests in flight
/// per connection, and the C-node's own cookie and TLS.
pub fn config(max_connections: Int) -> PoolConfig {
  PoolConfig(
    max_connections: max_connections,
    min_connections: max_connections,
    acquire_timeout_ms: 5000,
    connect_timeout_ms: 5000,
    backoff_min_ms: 100,
    backoff_max_ms: 5000,
    max_idle_ms: 600_000,
    max_lifetime_ms: 1_800_000,
    health_check_interval_ms: 30_000,
    health_check_timeout_ms: 5000,
    validate_on_checkout: False,
    resize_window_ms: 10_000,
    max_waiters: 10_000,
    max_pending_requests: 1000,
    cookie: "",
    tls: tls(CNodeTls),
  )
}

/// Creates a pool of `max_connections` connections to `target_node` (`"name@host"`), each a real
/// distribution connection under its own hidden node name, and returns once they are up.
///
/// ```gleam
/// let assert Ok(pool) = connection_pool.new("app@server.local", 5)
/// ```
pub fn new(target_node: String, max_connections: Int) -> Result(Pool, PoolError) {
  new_with_config(target_node, config(max_connections))
}

/// Creates a pool set up by `config`; see `PoolConfig`.
pub fn new_with_config(
  target_node: String,
  config: PoolConfig,
) -> Result(Pool, PoolError) {
  case ffi_new(target_node, options(config)) {
    Ok(handle) -> Ok(Pool(handle))
    Error(reason) -> Error(pool_error(reason))
  }
}

/// `new_with_config`, and when it fails, why, in words: the same reason the Erlang library returns, as
/// `distribute_pool:format_error/1` writes it. The `PoolError` is the one `new_with_config` would give.
///
/// ```gleam
/// case connection_pool.new_with_reason("app@server.local", connection_pool.config(5)) {
///   Ok(pool) -> Ok(pool)
///   Error(#(error, why)) -> {
///     // e.g. #(ConnectionFailed, "epmd on 10.0.0.7 has no node named 'app' (is app@server.local running, ...)")
///     // or #(InvalidConfig, "invalid configuration: max_connections => 0: must be an integer in 1..1000")
///     io.println(why)
///     Error(error)
///   }
/// }
/// ```
pub fn new_with_reason(
  target_node: String,
  config: PoolConfig,
) -> Result(Pool, #(PoolError, String)) {
  case ffi_new(target_node, options(config)) {
    Ok(handle) -> Ok(Pool(handle))
    Error(reason) -> Error(#(pool_error(reason), ffi_format_error(reason)))
  }
}

/// Leases a connection, runs `func` with it in the calling process and returns the connection to the
/// pool, also when `func` panics (the panic then goes on). Waiters are served first come, first served;
/// `PoolExhausted` after the pool's acquire timeout.
///
/// The lease is pipelined: `func` runs at once and its first operation on the connection follows the
/// checkout, so a lease and one call cost one round trip to the C-node. When no connection could be
/// leased, `func` has run, each of its operations on the connection returned that error
/// (`PoolExhausted`, `ConnectionFailed`, `InvalidPool`), and `with_connection` returns it, dropping
/// `func`'s result. Work that must not start before the lease is granted (another process that should see
/// it in `stats`, say) waits for it first: `connection_id` and `connection_node` return once it is.
///
/// ```gleam
/// connection_pool.with_connection(pool, fn(conn) {
///   connection_pool.send(conn, to: "logger", message: "Hello")
/// })
/// ```
pub fn with_connection(
  pool: Pool,
  func: fn(Connection) -> a,
) -> Result(a, PoolError) {
  ffi_with_connection(pool.handle, fn(handle) { func(Connection(handle)) })
  |> pool_result
}

/// The pool's statistics now.
pub fn stats(pool: Pool) -> Result(PoolStats, PoolError) {
  ffi_stats(pool.handle)
  |> pool_result
  |> then(fn(stats) { decoded(pool_stats_from(stats)) })
}

/// The pool's statistics now, with its settings, waiting callers and every connection.
pub fn detailed_stats(pool: Pool) -> Result(DetailedStats, PoolError) {
  ffi_stats(pool.handle)
  |> pool_result
  |> then(fn(stats) { decoded(detailed_stats_from(stats)) })
}

/// Destroys the pool: new leases are refused at once, connections still leased are waited for up to 5 s
/// (see `destroy_with_drain`), then every connection is closed. Any later use of the pool, a second
/// `destroy` included, gives `InvalidPool`.
pub fn destroy(pool: Pool) -> Result(Nil, PoolError) {
  destroy_with_drain(pool, 5000)
}

/// `destroy`, waiting up to `drain_timeout_ms` (0..600000) for leased connections to come back.
pub fn destroy_with_drain(
  pool: Pool,
  drain_timeout_ms: Int,
) -> Result(Nil, PoolError) {
  ffi_destroy(pool.handle, drain_timeout_ms)
  |> pool_result
}

/// Runs `send_fn` for every message, in order, over one leased connection, and returns the results in
/// order. `PoolExhausted` when no connection comes within the acquire timeout.
pub fn send_batch(
  pool: Pool,
  messages: List(msg),
  send_fn: fn(Connection, msg) -> result,
) -> Result(List(result), PoolError) {
  ffi_send_batch(
    pool.handle,
    messages,
    fn(handle, message) { send_fn(Connection(handle), message) },
  )
  |> pool_result
}

/// Runs `send_fn` for every message on up to the pool's `max_connections` processes at once, each holding
/// its own lease. Results of the elements that succeeded come in input order; an element whose `send_fn`
/// panicked, or whose process died, is in `failed` with its index and `ConnectionFailed`; elements that
/// never got a connection have the lease error. The batch as a whole fails only when no connection could
/// be leased at all. No lease or process outlives the call, even if the caller dies.
pub fn send_batch_parallel(
  pool: Pool,
  messages: List(msg),
  send_fn: fn(Connection, msg) -> result,
) -> Result(BatchResult(result), PoolError) {
  ffi_send_batch_parallel(
    pool.handle,
    messages,
    fn(handle, message) { send_fn(Connection(handle), message) },
  )
  |> pool_result
  |> then(fn(batch) { decoded(batch_result_from(batch)) })
}

/// Runs `workers` concurrent processes, each doing `ops_per_worker` leases with a round trip to the target
/// (a ping over the leased connection), and returns the pool's statistics afterwards. Its progress goes to
/// Erlang's `logger` at info level (see `stress_test_reporting` to see it). `InvalidConfig` for
/// `workers < 1` or `ops_per_worker < 0`.
pub fn stress_test(
  pool: Pool,
  ops_per_worker: Int,
  workers: Int,
) -> Result(PoolStats, PoolError) {
  ffi_stress_test(pool.handle, ops_per_worker, workers)
  |> pool_result
  |> then(fn(stats) { decoded(pool_stats_from(stats)) })
}

/// `stress_test`, handing a progress line to `report` every second and once at the end, e.g.
/// `"stress_test: 1200/5000 ops (24%), 0 failed, 6000 ops/s, 0.2 s"`.
///
/// ```gleam
/// connection_pool.stress_test_reporting(pool, ops_per_worker: 250, workers: 8, report: io.println)
/// ```
pub fn stress_test_reporting(
  pool: Pool,
  ops_per_worker ops_per_worker: Int,
  workers workers: Int,
  report report: fn(String) -> Nil,
) -> Result(PoolStats, PoolError) {
  ffi_stress_test_reporting(pool.handle, ops_per_worker, workers, report)
  |> pool_result
  |> then(fn(stats) { decoded(pool_stats_from(stats)) })
}

/// Casts every message of `messages` to the process registered as `name` on the target, in one request to
/// the C-node, which spreads them over the pool's live connections (round robin; leased connections too,
/// since each message is one packet and a holder's own messages keep their order). `Ok(count)` once all
/// are queued and no connection is over its busy limit. Like Erlang's `!`, delivery is not confirmed, and
/// messages may arrive in any order; see `cast_batch_by_key` for an order. Errors: `BadDestination`,
/// `OperationPoolError(InvalidPool)`, `OperationPoolError(ConnectionFailed)` (no live connection, or one
/// failed before everything was queued: some messages may have gone out), `OperationTimeout`.
///
/// ```gleam
/// let assert Ok(3) = connection_pool.cast_batch(pool, to: "logger", messages: ["a", "b", "c"])
/// ```
pub fn cast_batch(
  pool: Pool,
  to name: String,
  messages messages: List(msg),
) -> Result(Int, OperationError) {
  ffi_cast_batch(pool.handle, name, messages)
  |> operation_result
}

/// `cast_batch`, where messages with the same `key(message)` travel over one connection and so arrive in
/// list order (also across batches while the pool's live connections stay the same). `key` runs in the
/// calling process.
pub fn cast_batch_by_key(
  pool: Pool,
  to name: String,
  messages messages: List(msg),
  key key: fn(msg) -> k,
) -> Result(Int, OperationError) {
  ffi_cast_batch_by_key(pool.handle, name, messages, key)
  |> operation_result
}

/// Sends `message` to the process registered as `name` on the target, over this connection. `Ok(Nil)`
/// once it is on its way; like Erlang's `!`, delivery is not confirmed. The name becomes an atom: pass
/// names from your code, never from untrusted input.
pub fn send(
  conn: Connection,
  to name: String,
  message message: a,
) -> Result(Nil, OperationError) {
  ffi_send(conn.handle, name, message)
  |> operation_result
}

/// `send` without waiting for the C-node, for pipelined sends: `Ok(Nil)` once the message is handed to
/// the calling process's pipe for this lease, which passes what piles up to the C-node in one request. The
/// messages are queued on this connection in the order the process sent them, and its `send`, `request`,
/// `call` and `ping` on the connection come after them. Every 64th message (or the one that brings the
/// bytes since the last wait to 64 KiB) waits until the connection is not busy (back-pressure) and returns
/// the first error since the last wait. So an ended lease shows as `LeaseEnded` within 64 calls; its
/// messages are dropped and counted in the pool's `dropped_sends` (`detailed_stats`). End a series with
/// `send` to know that every message of it was queued. The name becomes an atom: pass names from your code,
/// never from untrusted input.
///
/// ```gleam
/// let assert Ok(Nil) = connection_pool.send_async(conn, to: "logger", message: "line")
/// ```
pub fn send_async(
  conn: Connection,
  to name: String,
  message message: a,
) -> Result(Nil, OperationError) {
  ffi_send_async(conn.handle, name, message)
  |> operation_result
}

/// A `gen_server:call` to the process registered as `name` on the target, over this connection: the
/// server gets `request` in `handle_call` and its reply comes back as a `Term`.
pub fn request(
  conn: Connection,
  to name: String,
  request request: a,
  timeout_ms timeout_ms: Int,
) -> Result(Term, OperationError) {
  ffi_request(conn.handle, name, request, timeout_ms)
  |> operation_result
}

/// Runs `module:function(args...)` on the target (through its `rex` server, as `rpc:call` does) over this
/// connection and returns its result. Build `args` with `to_term`. Module and function names become
/// atoms: pass names from your code, never from untrusted input.
pub fn call(
  conn: Connection,
  module module: String,
  function function: String,
  args args: List(Term),
  timeout_ms timeout_ms: Int,
) -> Result(Term, OperationError) {
  ffi_call(conn.handle, module, function, args, timeout_ms)
  |> operation_result
}

/// `True` when the target's `net_kernel` answers over this connection.
pub fn ping(conn: Connection) -> Bool {
  ffi_ping(conn.handle)
}

/// Returns this connection as broken: the pool closes it and opens a fresh one in its place. The lease ends
/// at once, so later operations on `conn` give `LeaseEnded`; `with_connection` still returns the callback's
/// result. `Error(LeaseEnded)` when the lease had already ended (nothing is closed then).
pub fn discard(conn: Connection) -> Result(Nil, OperationError) {
  ffi_discard(conn.handle)
  |> operation_result
}

/// The id of the pooled connection behind this lease, as `detailed_stats` lists it (-1 once the lease has
/// ended).
pub fn connection_id(conn: Connection) -> Int {
  case int_field(ffi_connection_info(conn.handle), "id") {
    Ok(id) -> id
    Error(Nil) -> -1
  }
}

/// The hidden node name this connection has on the target (the sender's node its processes see; `""`
/// once the lease has ended).
pub fn connection_node(conn: Connection) -> String {
  case name_field(ffi_connection_info(conn.handle), "node") {
    Ok(node) -> node
    Error(Nil) -> ""
  }
}

/// Any value as a `Term`, for `call` arguments and for comparing results.
@external(erlang, "distribute_connection_pool_ffi", "identity")
pub fn to_term(value: a) -> Term

/// A term printed the way Erlang prints it, for logs.
@external(erlang, "distribute_connection_pool_ffi", "inspect")
pub fn inspect(term: Term) -> String


// --- From Gleam values to the library's arguments, and its answers back ------------------------------
// The adapter passes the Erlang library's answers on as they are (maps, atoms, tagged tuples); the
// functions below read them by key or tag and build every Gleam value by its labels, and the settings of a
// `PoolConfig` go out as named options. So the order of a type's fields matters only in its declaration.

/// The library's options (`distribute_pool:new/2`) for `config`, by name.
fn options(config: PoolConfig) -> List(#(String, Term)) {
  let own_cookie = case config.cookie {
    "" -> []
    cookie -> [#("cookie", to_term(cookie))]
  }
  let files =
    given([
      #("certfile", config.tls.certfile),
      #("keyfile", config.tls.keyfile),
      #("cacertfile", config.tls.cacertfile),
      #("password", config.tls.password),
    ])
  let own_tls = case config.tls.mode, files {
    CNodeTls, [] -> []
    mode, _ -> [#("tls", ffi_tls_option(tls_mode_name(mode), files))]
  }
  [
    #("max_connections", to_term(config.max_connections)),
    #("min_connections", to_term(config.min_connections)),
    #("acquire_timeout_ms", to_term(config.acquire_timeout_ms)),
    #("connect_timeout_ms", to_term(config.connect_timeout_ms)),
    #("backoff_min_ms", to_term(config.backoff_min_ms)),
    #("backoff_max_ms", to_term(config.backoff_max_ms)),
    #("max_idle_ms", to_term(config.max_idle_ms)),
    #("max_lifetime_ms", to_term(config.max_lifetime_ms)),
    #("health_check_interval_ms", to_term(config.health_check_interval_ms)),
    #("health_check_timeout_ms", to_term(config.health_check_timeout_ms)),
    #("validate_on_checkout", to_term(config.validate_on_checkout)),
    #("resize_window_ms", to_term(config.resize_window_ms)),
    #("max_waiters", to_term(config.max_waiters)),
    #("max_pending_requests", to_term(config.max_pending_requests)),
    ..list_append(own_cookie, own_tls)
  ]
}

/// The mode's name in the library's `tls` option; `""` for the C-node's, which the option cannot name.
fn tls_mode_name(mode: TlsMode) -> String {
  case mode {
    CNodeTls -> ""
    PlainTcp -> "none"
    Unverified -> "unverified"
    Verified -> "verified"
  }
}

/// The pairs whose value is not `""`.
fn given(pairs: List(#(String, String))) -> List(#(String, String)) {
  case pairs {
    [] -> []
    [#(_, ""), ..rest] -> given(rest)
    [pair, ..rest] -> [pair, ..given(rest)]
  }
}

fn list_append(first: List(a), second: List(a)) -> List(a) {
  case first {
    [] -> second
    [head, ..rest] -> [head, ..list_append(rest, second)]
  }
}

/// `PoolStats` from the library's stats map.
fn pool_stats_from(stats: Term) -> Result(PoolStats, Nil) {
  use total_connections <- then(int_field(stats, "total_connections"))
  use available_connections <- then(int_field(stats, "available_connections"))
  use in_use_connections <- then(int_field(stats, "in_use_connections"))
  use failed_operations <- then(int_field(stats, "failed_operations"))
  use successful_operations <- then(int_field(stats, "successful_operations"))
  Ok(PoolStats(
    total_connections: total_connections,
    available_connections: available_connections,
    in_use_connections: in_use_connections,
    failed_operations: failed_operations,
    successful_operations: successful_operations,
  ))
}

/// `DetailedStats` from the library's stats map (docs/PROTOCOL.md, "Stats map").
fn detailed_stats_from(stats: Term) -> Result(DetailedStats, Nil) {
  use pool_id <- then(int_field(stats, "pool_id"))
  use target_node <- then(name_field(stats, "target"))
  use max_connections <- then(int_field(stats, "max_connections"))
  use min_connections <- then(int_field(stats, "min_connections"))
  use total_connections <- then(int_field(stats, "total_connections"))
  use available_connections <- then(int_field(stats, "available_connections"))
  use in_use_connections <- then(int_field(stats, "in_use_connections"))
  use connecting_connections <- then(int_field(stats, "connecting_connections"))
  use waiting <- then(int_field(stats, "waiting"))
  use successful_operations <- then(int_field(stats, "successful_operations"))
  use failed_operations <- then(int_field(stats, "failed_operations"))
  use connection_maps <- then(list_field(stats, "connections"))
  use connections <- then(all_decoded(connection_maps, connection_stats_from))
  use state <- then(name_field(stats, "state"))
  use capacity <- then(int_field(stats, "capacity"))
  use connections_created <- then(int_field(stats, "connections_created"))
  use closed <- then(ffi_field(stats, "connections_closed"))
  use connections_closed <- then(closed_connections_from(closed))
  use reconnect_attempts <- then(int_field(stats, "reconnect_attempts"))
  use health_checks <- then(int_field(stats, "health_checks"))
  use acquire_count <- then(int_field(stats, "acquire_count"))
  use acquire_timeouts <- then(int_field(stats, "acquire_timeouts"))
  use hits <- then(int_field(stats, "hits"))
  use misses <- then(int_field(stats, "misses"))
  use acquire_wait_avg_us <- then(int_field(stats, "acquire_wait_avg_us"))
  use acquire_wait_max_us <- then(int_field(stats, "acquire_wait_max_us"))
  use acquire_wait_p99_us <- then(int_field(stats, "acquire_wait_p99_us"))
  use request_rtt_avg_us <- then(int_field(stats, "request_rtt_avg_us"))
  use request_rtt_p50_us <- then(int_field(stats, "request_rtt_p50_us"))
  use request_rtt_p99_us <- then(int_field(stats, "request_rtt_p99_us"))
  use dropped_sends <- then(int_field(stats, "dropped_sends"))
  Ok(DetailedStats(
    pool_id: pool_id,
    target_node: target_node,
    max_connections: max_connections,
    min_connections: min_connections,
    total_connections: total_connections,
    available_connections: available_connections,
    in_use_connections: in_use_connections,
    connecting_connections: connecting_connections,
    waiting: waiting,
    successful_operations: successful_operations,
    failed_operations: failed_operations,
    connections: connections,
    draining: state == "draining",
    capacity: capacity,
    connections_created: connections_created,
    connections_closed: connections_closed,
    reconnect_attempts: reconnect_attempts,
    health_checks: health_checks,
    acquire_count: acquire_count,
    acquire_timeouts: acquire_timeouts,
    hits: hits,
    misses: misses,
    acquire_wait_avg_us: acquire_wait_avg_us,
    acquire_wait_max_us: acquire_wait_max_us,
    acquire_wait_p99_us: acquire_wait_p99_us,
    request_rtt_avg_us: request_rtt_avg_us,
    request_rtt_p50_us: request_rtt_p50_us,
    request_rtt_p99_us: request_rtt_p99_us,
    dropped_sends: dropped_sends,
  ))
}

/// `ClosedConnections` from the stats map's `connections_closed` map.
fn closed_connections_from(closed: Term) -> Result(ClosedConnections, Nil) {
  use idle <- then(int_field(closed, "idle"))
  use lifetime <- then(int_field(closed, "lifetime"))
  use broken <- then(int_field(closed, "broken"))
  use health <- then(int_field(closed, "health"))
  use destroy <- then(int_field(closed, "destroy"))
  use target_down <- then(int_field(closed, "target_down"))
  Ok(ClosedConnections(
    idle: idle,
    lifetime: lifetime,
    broken: broken,
    health: health,
    destroy: destroy,
    target_down: target_down,
  ))
}

/// `ConnectionStats` from one map of the stats map's `connections`.
fn connection_stats_from(connection: Term) -> Result(ConnectionStats, Nil) {
  use id <- then(int_field(connection, "id"))
  use node <- then(name_field(connection, "node"))
  use state <- then(name_field(connection, "state"))
  Ok(ConnectionStats(id: id, node: node, state: connection_state(state)))
}

fn connection_state(state: String) -> ConnectionState {
  case state {
    "available" -> Available
    "in_use" -> InUse
    _ -> Connecting
  }
}

/// `BatchResult` from the library's `#{successful => Results, failed => [{Index, Reason}]}`. The results
/// are what the caller's `send_fn` returned, so they have its type.
fn batch_result_from(batch: Term) -> Result(BatchResult(r), Nil) {
  use successful <- then(list_field(batch, "successful"))
  use failures <- then(list_field(batch, "failed"))
  use failed <- then(all_decoded(failures, batch_failure_from))
  Ok(BatchResult(successful: ffi_unsafe_coerce(successful), failed: failed))
}

fn batch_failure_from(failure: Term) -> Result(#(Int, PoolError), Nil) {
  use elements <- then(ffi_pair(failure))
  let #(index, reason) = elements
  use index <- then(ffi_as_int(index))
  Ok(#(index, pool_error(reason)))
}

/// The `PoolError` for a reason of the library: its four lease errors, a limit of the C-node as the error
/// closest to it, and any other failure (a C-node that does not answer, a send function that raised, a
/// worker that died) as `ConnectionFailed`.
fn pool_error(reason: Term) -> PoolError {
  case ffi_atom_name(reason) {
    Ok("pool_exhausted") -> PoolExhausted
    Ok("invalid_pool") -> InvalidPool
    Ok("badarg") -> InvalidConfig
    Ok(_) -> ConnectionFailed
    Error(Nil) ->
      case tag(reason) {
        Ok("invalid_config") -> InvalidConfig
        Ok("already_started") -> InvalidConfig
        Ok("limit_reached") -> limit_error(reason)
        _ -> ConnectionFailed
      }
  }
}

/// The `OperationError` for a reason of the library's operations on a lease.
fn operation_error(reason: Term) -> OperationError {
  case ffi_atom_name(reason) {
    Ok("timeout") -> OperationTimeout
    Ok("invalid_connection") -> LeaseEnded
    Ok("badarg") -> BadDestination
    Ok(_) -> OperationPoolError(error: pool_error(reason))
    Error(Nil) ->
      case tagged(reason) {
        Ok(#("down", why)) -> DestinationDown(reason: why)
        Ok(#("badrpc", why)) -> BadRpc(reason: why)
        _ -> OperationPoolError(error: pool_error(reason))
      }
  }
}

/// The `PoolError` of `{limit_reached, {Limit, Text}}`, by the limit it names.
fn limit_error(reason: Term) -> PoolError {
  let limit = case tagged(reason) {
    Ok(#(_, detail)) ->
      case tag(detail) {
        Ok(name) -> name
        Error(Nil) -> ""
      }
    Error(Nil) -> ""
  }
  case limit {
    "max_waiters" -> PoolExhausted
    "max_total_connections" | "max_pools_per_caller" | "max_connections_per_caller" -> InvalidConfig
    _ -> ConnectionFailed
  }
}

fn pool_result(result: Result(a, Term)) -> Result(a, PoolError) {
  case result {
    Ok(value) -> Ok(value)
    Error(reason) -> Error(pool_error(reason))
  }
}

fn operation_result(result: Result(a, Term)) -> Result(a, OperationError) {
  case result {
    Ok(value) -> Ok(value)
    Error(reason) -> Error(operation_error(reason))
  }
}

/// An answer of the library that does not have the shape it documents is a failure of the connection
/// to the C-node (not expected to happen).
fn decoded(result: Result(a, Nil)) -> Result(a, PoolError) {
  case result {
    Ok(value) -> Ok(value)
    Error(Nil) -> Error(ConnectionFailed)
  }
}

fn then(result: Result(a, e), next: fn(a) -> Result(b, e)) -> Result(b, e) {
  case result {
    Ok(value) -> next(value)
    Error(error) -> Error(error)
  }
}

/// Every element decoded, in order; `Error(Nil)` when one cannot be.
fn all_decoded(
  items: List(Term),
  decode: fn(Term) -> Result(a, Nil),
) -> Result(List(a), Nil) {
  case items {
    [] -> Ok([])
    [first, ..rest] -> {
      use head <- then(decode(first))
      use tail <- then(all_decoded(rest, decode))
      Ok([head, ..tail])
    }
  }
}

fn int_field(map: Term, key: String) -> Result(Int, Nil) {
  ffi_field(map, key)
  |> then(ffi_as_int)
}

fn name_field(map: Term, key: String) -> Result(String, Nil) {
  ffi_field(map, key)
  |> then(ffi_as_name)
}

fn list_field(map: Term, key: String) -> Result(List(Term), Nil) {
  ffi_field(map, key)
  |> then(ffi_as_list)
}

/// The tag of a 2-tuple whose first element is an atom, e.g. `invalid_config` for
/// `{invalid_config, Why}`, with its second element.
fn tagged(reason: Term) -> Result(#(String, Term), Nil) {
  use elements <- then(ffi_pair(reason))
  let #(first, second) = elements
  use name <- then(ffi_atom_name(first))
  Ok(#(name, second))
}

fn tag(reason: Term) -> Result(String, Nil) {
  use found <- then(tagged(reason))
  Ok(found.0)
}

@external(erlang, "distribute_connection_pool_ffi", "new")
fn ffi_new(
  target: String,
  options: List(#(String, Term)),
) -> Result(PoolHandle, Term)

/// The library's `tls` option: `#{mode => Mode}` (no mode for `""`) with the files given.
@external(erlang, "distribute_connection_pool_ffi", "tls_option")
fn ffi_tls_option(mode: String, files: List(#(String, String))) -> Term

@external(erlang, "distribute_connection_pool_ffi", "format_error")
fn ffi_format_error(reason: Term) -> String

@external(erlang, "distribute_connection_pool_ffi", "with_connection")
fn ffi_with_connection(
  pool: PoolHandle,
  func: fn(ConnectionHandle) -> a,
) -> Result(a, Term)

@external(erlang, "distribute_connection_pool_ffi", "stats")
fn ffi_stats(pool: PoolHandle) -> Result(Term, Term)

@external(erlang, "distribute_connection_pool_ffi", "destroy")
fn ffi_destroy(pool: PoolHandle, drain_timeout_ms: Int) -> Result(Nil, Term)

@external(erlang, "distribute_connection_pool_ffi", "send_batch")
fn ffi_send_batch(
  pool: PoolHandle,
  messages: List(msg),
  send_fn: fn(ConnectionHandle, msg) -> result,
) -> Result(List(result), Term)

@external(erlang, "distribute_connection_pool_ffi", "send_batch_parallel")
fn ffi_send_batch_parallel(
  pool: PoolHandle,
  messages: List(msg),
  send_fn: fn(ConnectionHandle, msg) -> result,
) -> Result(Term, Term)

@external(erlang, "distribute_connection_pool_ffi", "stress_test")
fn ffi_stress_test(
  pool: PoolHandle,
  ops_per_worker: Int,
  workers: Int,
) -> Result(Term, Term)

@external(erlang, "distribute_connection_pool_ffi", "stress_test_reporting")
fn ffi_stress_test_reporting(
  pool: PoolHandle,
  ops_per_worker: Int,
  workers: Int,
  report: fn(String) -> Nil,
) -> Result(Term, Term)

@external(erlang, "distribute_connection_pool_ffi", "cast_batch")
fn ffi_cast_batch(
  pool: PoolHandle,
  name: String,
  messages: List(msg),
) -> Result(Int, Term)

@external(erlang, "distribute_connection_pool_ffi", "cast_batch_by_key")
fn ffi_cast_batch_by_key(
  pool: PoolHandle,
  name: String,
  messages: List(msg),
  key: fn(msg) -> k,
) -> Result(Int, Term)

@external(erlang, "distribute_connection_pool_ffi", "send")
fn ffi_send(
  conn: ConnectionHandle,
  name: String,
  message: a,
) -> Result(Nil, Term)

@external(erlang, "distribute_connection_pool_ffi", "send_async")
fn ffi_send_async(
  conn: ConnectionHandle,
  name: String,
  message: a,
) -> Result(Nil, Term)

@external(erlang, "distribute_connection_pool_ffi", "request")
fn ffi_request(
  conn: ConnectionHandle,
  name: String,
  request: a,
  timeout_ms: Int,
) -> Result(Term, Term)

@external(erlang, "distribute_connection_pool_ffi", "call")
fn ffi_call(
  conn: ConnectionHandle,
  module: String,
  function: String,
  args: List(Term),
  timeout_ms: Int,
) -> Result(Term, Term)

@external(erlang, "distribute_connection_pool_ffi", "ping")
fn ffi_ping(conn: ConnectionHandle) -> Bool

@external(erlang, "distribute_connection_pool_ffi", "discard")
fn ffi_discard(conn: ConnectionHandle) -> Result(Nil, Term)

/// The library's map about a lease (`id`, `node`, ...), or its error.
@external(erlang, "distribute_connection_pool_ffi", "connection_info")
fn ffi_connection_info(conn: ConnectionHandle) -> Term

/// A value the library handed back that Gleam code gave it, as the type it had: only for the results of
/// a caller's function, which the library returns untouched.
@external(erlang, "distribute_connection_pool_ffi", "identity")
fn ffi_unsafe_coerce(term: a) -> b

@external(erlang, "distribute_connection_pool_ffi", "field")
fn ffi_field(map: Term, key: String) -> Result(Term, Nil)

@external(erlang, "distribute_connection_pool_ffi", "as_int")
fn ffi_as_int(term: Term) -> Result(Int, Nil)

@external(erlang, "distribute_connection_pool_ffi", "as_name")
fn ffi_as_name(term: Term) -> Result(String, Nil)

@external(erlang, "distribute_connection_pool_ffi", "as_list")
fn ffi_as_list(term: Term) -> Result(List(Term), Nil)

@external(erlang, "distribute_connection_pool_ffi", "atom_name")
fn ffi_atom_name(term: Term) -> Result(String, Nil)

@external(erlang, "distribute_connection_pool_ffi", "pair")
fn ffi_pair(term: Term) -> Result(#(Term, Term), Nil)

// --- Pool groups ------------------------------------------------------------------------------------------

/// How a pool group picks the member of an operation that carries no key: `RoundRobin` (the members that
/// are up in turn) or `LeastInUse` (the member with the fewest leases out plus callers in line).
pub type Strategy {
  RoundRobin
  LeastInUse
}

/// A target of a pool group: its node (`"name@host"`) with the group's pool config, or with a config of its
/// own, which goes over the group's key by key as in Erlang: every numeric setting of a `PoolConfig` is
/// given, so each replaces the group's, while an empty `cookie` and the `CNodeTls` mode give nothing and
/// keep the group's.
pub type GroupTarget {
  GroupTarget(node: String)
  GroupTargetWithConfig(node: String, config: PoolConfig)
}

/// A pool group's statistics now: its totals over the members, how it picked (`retries`: operations that
/// failed with `ConnectionFailed` before anything reached a target and ran on another member;
/// `skipped_down`: operations the strategy or key alone would have sent to a member that is down), and
/// each member.
pub type GroupStats {
  GroupStats(
    pool_id: Int,
    strategy: Strategy,
    total_connections: Int,
    available_connections: Int,
    in_use_connections: Int,
    successful_operations: Int,
    failed_operations: Int,
    retries: Int,
    skipped_down: Int,
    members: List(MemberStats),
  )
}

/// One member of a pool group: its target, its own pool's id and counts, whether it is up (a connection
/// up, or none failed since the last came up) and how many operations the group sent it.
pub type MemberStats {
  MemberStats(
    target_node: String,
    pool_id: Int,
    up: Bool,
    picked: Int,
    total_connections: Int,
    available_connections: Int,
    in_use_connections: Int,
    successful_operations: Int,
    failed_operations: Int,
  )
}

/// Creates a pool group: one pool per target, each set up by `config` (or its target's own), under one
/// `Pool` that every function of this module takes; each operation goes to one member picked by
/// `strategy` among those up, and one that fails with `ConnectionFailed` before anything reached its
/// target runs once more on another member (README, "Pool groups"). Returns once each member has a
/// connection up or failed its first attempt: `Ok` when one is up, `ConnectionFailed` when none is.
/// `InvalidConfig` for no target, more than 64, a target given twice, or a bad config.
///
/// ```gleam
/// let assert Ok(group) =
///   connection_pool.new_group(
///     [connection_pool.GroupTarget("w1@10.0.0.1"), connection_pool.GroupTarget("w2@10.0.0.2")],
///     connection_pool.config(4),
///     connection_pool.RoundRobin,
///   )
/// ```
pub fn new_group(
  targets: List(GroupTarget),
  config: PoolConfig,
  strategy: Strategy,
) -> Result(Pool, PoolError) {
  ffi_new_group(
    group_targets(targets),
    options(config),
    strategy_name(strategy),
  )
  |> pool_result
  |> then(fn(handle) { Ok(Pool(handle)) })
}

/// The group `group` with `key`: its checkouts, one-shot operations and cast batches go to the member the
/// key maps to by rendezvous hashing, so a key keeps its target while that target is up, and only a lost
/// target's keys move. `key` is any value. Given a plain pool, the key changes nothing.
pub fn keyed(group: Pool, key: a) -> Pool {
  Pool(ffi_keyed(group.handle, key))
}

/// Adds `target` to a running group: `Ok(Nil)` once its first connection is up (the group picks it from
/// then on), `ConnectionFailed` when it could not connect, `InvalidConfig` for a target the group has or a
/// 65th one.
pub fn add_target(group: Pool, target: GroupTarget) -> Result(Nil, PoolError) {
  let #(node, own) = group_target(target)
  ffi_add_target(group.handle, node, own)
  |> pool_result
}

/// Removes the target `node` from a running group: it is no longer picked, its callers in line go to other
/// members, and its leases finish (up to 5 s); `Ok(Nil)` once it has closed. `InvalidConfig` for a node the
/// group does not have, or its last one.
pub fn remove_target(group: Pool, node: String) -> Result(Nil, PoolError) {
  ffi_remove_target(group.handle, node)
  |> pool_result
}

/// A group's statistics now; `InvalidPool` for a plain pool's.
pub fn group_stats(group: Pool) -> Result(GroupStats, PoolError) {
  ffi_stats(group.handle)
  |> pool_result
  |> then(fn(stats) {
    case group_stats_from(stats) {
      Ok(decoded) -> Ok(decoded)
      Error(Nil) -> Error(InvalidPool)
    }
  })
}

fn strategy_name(strategy: Strategy) -> String {
  case strategy {
    RoundRobin -> "round_robin"
    LeastInUse -> "least_in_use"
  }
}

fn group_targets(
  targets: List(GroupTarget),
) -> List(#(String, List(#(String, Term)))) {
  case targets {
    [] -> []
    [target, ..rest] -> [group_target(target), ..group_targets(rest)]
  }
}

fn group_target(target: GroupTarget) -> #(String, List(#(String, Term))) {
  case target {
    GroupTarget(node) -> #(node, [])
    GroupTargetWithConfig(node, config) -> #(node, options(config))
  }
}

/// `GroupStats` from the library's stats map of a group (docs/PROTOCOL.md, "Pool groups").
fn group_stats_from(stats: Term) -> Result(GroupStats, Nil) {
  use pool_id <- then(int_field(stats, "pool_id"))
  use strategy <- then(name_field(stats, "strategy"))
  use totals <- then(pool_stats_from(stats))
  use retries <- then(int_field(stats, "retries"))
  use skipped_down <- then(int_field(stats, "skipped_down"))
  use members <- then(list_field(stats, "members"))
  use members <- then(all_decoded(members, member_stats_from))
  Ok(GroupStats(
    pool_id: pool_id,
    strategy: case strategy {
      "least_in_use" -> LeastInUse
      _ -> RoundRobin
    },
    total_connections: totals.total_connections,
    available_connections: totals.available_connections,
    in_use_connections: totals.in_use_connections,
    successful_operations: totals.successful_operations,
    failed_operations: totals.failed_operations,
    retries: retries,
    skipped_down: skipped_down,
    members: members,
  ))
}

fn member_stats_from(member: Term) -> Result(MemberStats, Nil) {
  use target_node <- then(name_field(member, "target"))
  use pool_id <- then(int_field(member, "pool_id"))
  use up <- then(name_field(member, "up"))
  use picked <- then(int_field(member, "picked"))
  use counts <- then(pool_stats_from(member))
  Ok(MemberStats(
    target_node: target_node,
    pool_id: pool_id,
    up: up == "true",
    picked: picked,
    total_connections: counts.total_connections,
    available_connections: counts.available_connections,
    in_use_connections: counts.in_use_connections,
    successful_operations: counts.successful_operations,
    failed_operations: counts.failed_operations,
  ))
}

@external(erlang, "distribute_connection_pool_ffi", "new_group")
fn ffi_new_group(
  targets: List(#(String, List(#(String, Term)))),
  options: List(#(String, Term)),
  strategy: String,
) -> Result(PoolHandle, Term)

@external(erlang, "distribute_connection_pool_ffi", "keyed")
fn ffi_keyed(pool: PoolHandle, key: a) -> PoolHandle

@external(erlang, "distribute_connection_pool_ffi", "add_target")
fn ffi_add_target(
  pool: PoolHandle,
  node: String,
  options: List(#(String, Term)),
) -> Result(Nil, Term)

@external(erlang, "distribute_connection_pool_ffi", "remove_target")
fn ffi_remove_target(pool: PoolHandle, node: String) -> Result(Nil, Term)
