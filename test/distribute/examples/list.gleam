//// Stand-in for gleam_stdlib's `gleam/list`: the functions the seed examples use.

/// The number of elements.
@external(erlang, "erlang", "length")
pub fn length(of list: List(a)) -> Int

/// The elements whose position (from 0) is in `indices`, in list order.
pub fn at_indices(list: List(a), indices: List(Int)) -> List(a) {
  do_at_indices(list, indices, 0, [])
}

fn do_at_indices(list: List(a), indices: List(Int), index: Int, acc: List(a)) -> List(a) {
  case list {
    [] -> reverse(acc)
    [first, ..rest] ->
      case member(indices, index) {
        True -> do_at_indices(rest, indices, index + 1, [first, ..acc])
        False -> do_at_indices(rest, indices, index + 1, acc)
      }
  }
}

fn member(list: List(Int), item: Int) -> Bool {
  case list {
    [] -> False
    [first, ..rest] ->
      case first == item {
        True -> True
        False -> member(rest, item)
      }
  }
}

fn reverse(list: List(a)) -> List(a) {
  do_reverse(list, [])
}

fn do_reverse(list: List(a), acc: List(a)) -> List(a) {
  case list {
    [] -> acc
    [first, ..rest] -> do_reverse(rest, [first, ..acc])
  }
}
