#include "alloc_failure.hpp"

#include <cstdlib>
#include <new>

namespace {

// Per thread, so that only the test that asks for it sees its allocations fail.
struct Injection {
    bool failing = false;
    std::size_t failed = 0;
};

thread_local Injection injection;

} // namespace

namespace dpool::test {

FailAllocations::FailAllocations()
{
    injection.failed = 0;
    injection.failing = true;
}

FailAllocations::~FailAllocations() { injection.failing = false; }

std::size_t FailAllocations::failed() const { return injection.failed; }

} // namespace dpool::test

// The replaced global allocation functions (the array, nothrow and sized forms of libstdc++ call these).
void* operator new(std::size_t bytes)
{
    if (injection.failing) {
        ++injection.failed;
        throw std::bad_alloc();
    }
    if (void* p = std::malloc(bytes == 0 ? 1 : bytes)) {
        return p;
    }
    throw std::bad_alloc();
}

void operator delete(void* p) noexcept { std::free(p); }

void operator delete(void* p, std::size_t) noexcept { std::free(p); }
