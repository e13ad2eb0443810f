//// Entry point of the Gleam tests: `gleam test` runs `distribute_test.main()`. It needs the Erlang
//// library built first (`make build`) and an epmd to register with; `make test` provides both.

/// Makes this node distributed, starts the distribute_pool application, runs every `*_test` function of
/// the test modules with EUnit and halts the VM with 0 when all passed, 1 otherwise.
pub fn main() -> Nil {
  run_all_tests()
}

@external(erlang, "distribute_test_ffi", "main")
fn run_all_tests() -> Nil
