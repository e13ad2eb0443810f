//// Stand-in for gleam_stdlib's `gleam/io`, which cannot be fetched here: the seed examples call
//// `io.println` unchanged.

/// Prints a line to standard output.
@external(erlang, "distribute_test_ffi", "println")
pub fn println(text: String) -> Nil
