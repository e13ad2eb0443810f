//// Stand-in for gleam_stdlib's `gleam/int`: the two functions the seed examples use.

/// The decimal text of an integer.
@external(erlang, "erlang", "integer_to_binary")
pub fn to_string(value: Int) -> String

/// The integer as a float.
@external(erlang, "erlang", "float")
pub fn to_float(value: Int) -> Float
