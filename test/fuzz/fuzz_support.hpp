#pragma once

// What every fuzz target of test/fuzz/ shares. A target is one file that defines LLVMFuzzerTestOneInput; it
// is linked with libFuzzer in the fuzz build (DPOOL_FUZZ, clang) and with replay_main.cpp in every build with
// tests, where ctest replays the committed corpus through it (cmake/fuzz.cmake).

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

// A property of a decoder that must hold for every input: when it does not, the run stops here (abort), and
// libFuzzer saves the input that broke it.
#define DPOOL_FUZZ_CHECK(condition) \
    ((condition) ? void(0) : ::dpool::fuzz::check_failed(#condition, __FILE__, __LINE__))

namespace dpool::fuzz {

[[noreturn]] inline void check_failed(const char* condition, const char* file, int line)
{
    std::fprintf(stderr, "%s:%d: fuzz check failed: %s\n", file, line, condition);
    std::abort();
}

inline std::string_view bytes(const std::uint8_t* data, std::size_t size)
{
    return {reinterpret_cast<const char*>(data), size};
}

// True when `part` lies within `whole` (an empty view anywhere counts: it reads nothing).
inline bool within(std::string_view part, std::string_view whole)
{
    return part.empty() || (part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size());
}

} // namespace dpool::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);
