//// The typed face of pool groups (connection_pool.new_group and friends) against real target nodes.

import distribute/connection_pool
import distribute/test_support

/// The node a call over a connection of `pool` runs on, as `inspect` writes it.
fn node_of(pool: connection_pool.Pool) -> String {
  let assert Ok(Ok(node)) =
    connection_pool.with_connection(pool, fn(conn) {
      connection_pool.call(conn, "erlang", "node", [], 5000)
    })
  connection_pool.inspect(node)
}

pub fn group_spreads_keys_and_changes_targets_test() {
  let t1 = test_support.start_target("gleam_group1")
  let t2 = test_support.start_target("gleam_group2")
  let t3 = test_support.start_target("gleam_group3")
  let assert Ok(group) =
    connection_pool.new_group(
      [
        connection_pool.GroupTarget(t1.node),
        connection_pool.GroupTargetWithConfig(t2.node, connection_pool.config(1)),
      ],
      connection_pool.config(2),
      connection_pool.RoundRobin,
    )
  // Round robin: both targets run calls.
  let nodes = test_support.unique(test_support.map(test_support.range(1, 4), fn(_) { node_of(group) }))
  let assert 2 = test_support.length(nodes)
  // A key keeps its target.
  let keyed = connection_pool.keyed(group, #("user", 42))
  let first = node_of(keyed)
  let assert True = node_of(keyed) == first
  let assert True = node_of(keyed) == first
  let assert Ok(stats) = connection_pool.group_stats(group)
  let assert connection_pool.RoundRobin = stats.strategy
  let assert 3 = stats.total_connections
  let assert [m1, m2] = stats.members
  let assert True = m1.target_node == t1.node
  let assert True = m1.up
  let assert 2 = m1.total_connections
  let assert 1 = m2.total_connections
  let assert 0 = stats.retries
  // Targets added and removed while the group runs.
  let assert Ok(Nil) =
    connection_pool.add_target(group, connection_pool.GroupTarget(t3.node))
  let assert Error(connection_pool.InvalidConfig) =
    connection_pool.add_target(group, connection_pool.GroupTarget(t3.node))
  let assert Ok(Nil) = connection_pool.remove_target(group, t1.node)
  let assert Error(connection_pool.InvalidConfig) =
    connection_pool.remove_target(group, t1.node)
  let after = test_support.unique(test_support.map(test_support.range(1, 6), fn(_) { node_of(group) }))
  let assert 2 = test_support.length(after)
  let assert False =
    test_support.contains(after, connection_pool.inspect(test_support.atom(t1.node)))
  let assert Ok(stats) = connection_pool.group_stats(group)
  let assert [_, _] = stats.members
  // A lease through the group.
  let assert Ok(True) = connection_pool.with_connection(group, connection_pool.ping)
  let assert Ok(Nil) = connection_pool.destroy(group)
  let assert Error(connection_pool.InvalidPool) = connection_pool.group_stats(group)
  test_support.stop_target(t1)
  test_support.stop_target(t2)
  test_support.stop_target(t3)
}

pub fn bad_groups_are_invalid_config_test() {
  let config = connection_pool.config(1)
  let assert Error(connection_pool.InvalidConfig) =
    connection_pool.new_group([], config, connection_pool.LeastInUse)
  let assert Error(connection_pool.InvalidConfig) =
    connection_pool.new_group(
      [connection_pool.GroupTarget("a@127.0.0.1"), connection_pool.GroupTarget("a@127.0.0.1")],
      config,
      connection_pool.RoundRobin,
    )
  let assert Error(connection_pool.InvalidConfig) =
    connection_pool.new_group(
      [connection_pool.GroupTarget("no_host")],
      config,
      connection_pool.RoundRobin,
    )
  let assert Error(connection_pool.InvalidConfig) =
    connection_pool.new_group(
      [connection_pool.GroupTarget("a@127.0.0.1")],
      connection_pool.config(0),
      connection_pool.RoundRobin,
    )
  // A plain pool is no group.
  let target = test_support.start_target("gleam_group_plain")
  let assert Ok(pool) = connection_pool.new(target.node, 1)
  let assert Error(connection_pool.InvalidPool) = connection_pool.group_stats(pool)
  let assert True = node_of(connection_pool.keyed(pool, "ignored")) == node_of(pool)
  let assert Ok(Nil) = connection_pool.destroy(pool)
  test_support.stop_target(target)
}
