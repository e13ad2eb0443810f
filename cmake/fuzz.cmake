# The fuzz targets of test/fuzz/: one per decoder of bytes that come from outside (README, "Fuzzing").
#
#   dpool_add_fuzzer(<name> <source> <library>)
#
# <source> defines LLVMFuzzerTestOneInput; <library> is the lowest layer that has the decoder (the target is
# linked with it and what it brings along). A new target is that file and one call in CMakeLists.txt. Its seed
# corpus is test/fuzz/corpus/<name>/ and its regression inputs (crashes once found) test/fuzz/regressions/<name>/.
#
# With DPOOL_FUZZ (clang only): the executable fuzz_<name>, linked with libFuzzer, address and undefined
# behaviour sanitizers (every target of the build is instrumented, see CMakeLists.txt), built by the target
# dpool_fuzzers and run by `make fuzz` (scripts/fuzz.sh).
# With BUILD_TESTING (any compiler): the executable dpool_fuzz_replay_<name>, the same source with a plain main
# (test/fuzz/replay_main.cpp), and the ctest fuzz_corpus_<name>, which replays the corpus and the regression
# inputs through it: a decoder change that crashes on a committed input fails `make test` without clang.

if(DPOOL_FUZZ)
  add_custom_target(dpool_fuzzers)
endif()

# The tool that turns links recorded with the C-node's --record-packets into the targets' seed inputs
# (test/fuzz/corpus_split.cpp; run by distribute_pool_fuzz_corpus_SUITE and scripts/fuzz_corpus.sh).
if(BUILD_TESTING)
  add_executable(dpool_fuzz_split test/fuzz/corpus_split.cpp)
  target_compile_options(dpool_fuzz_split PRIVATE ${DPOOL_WARNINGS})
  target_link_libraries(dpool_fuzz_split PRIVATE dpool_api)
  # The replays' plain main, compiled once for all of them (it is the same file for each).
  add_library(dpool_fuzz_replay_main OBJECT test/fuzz/replay_main.cpp)
  target_compile_options(dpool_fuzz_replay_main PRIVATE ${DPOOL_WARNINGS})
endif()

function(dpool_add_fuzzer name source library)
  if(DPOOL_FUZZ)
    add_executable(fuzz_${name} ${source})
    target_compile_options(fuzz_${name} PRIVATE ${DPOOL_WARNINGS})
    target_link_libraries(fuzz_${name} PRIVATE ${library})
    target_link_options(fuzz_${name} PRIVATE -fsanitize=fuzzer)
    add_dependencies(dpool_fuzzers fuzz_${name})
  endif()
  if(BUILD_TESTING)
    add_executable(dpool_fuzz_replay_${name} ${source} $<TARGET_OBJECTS:dpool_fuzz_replay_main>)
    target_compile_options(dpool_fuzz_replay_${name} PRIVATE ${DPOOL_WARNINGS})
    target_link_libraries(dpool_fuzz_replay_${name} PRIVATE ${library})
    # The regression directory may not exist (yet): the replay skips a missing directory.
    add_test(NAME fuzz_corpus_${name} COMMAND dpool_fuzz_replay_${name} ${PROJECT_SOURCE_DIR}/test/fuzz/corpus/${name}
                                              ${PROJECT_SOURCE_DIR}/test/fuzz/regressions/${name})
  endif()
endfunction()
