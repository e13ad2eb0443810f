#include "alloc_failure.hpp"

#include <cstdlib>
#include <new>

namespace {

// Per thread, so that only the test that asks for it sees its allocations fail.
struct Injection {
    std::size_t to_fail = 0;
    std::size_t failed = 0;
};

thread_local Injection injection;

} // namespace

namespace dpool::test {

FailAllocations::FailAllocations(std::size_t count)
{
    injection.failed = 0;
    injection.to_fail = count;
}

FailAllocations::~FailAllocations() { injection.to_fail = 0; }

std::size_t FailAllocations::failed() const { return injection.failed; }

} // namespace dpool::test

// The replaced global allocation functions, every form but the aligned ones (which nothing of ours uses, and
// which keep pairing with each other): one form left to the library (a sanitizer's runtime defines them all)
// would pair its memory with the other side's release.
namespace {

void* allocate(std::size_t bytes)
{
    if (injection.to_fail > 0) {
        --injection.to_fail;
        ++injection.failed;
        return nullptr;
    }
    return std::malloc(bytes == 0 ? 1 : bytes);
}

void* allocate_or_throw(std::size_t bytes)
{
    if (void* p = allocate(bytes)) {
        return p;
    }
    throw std::bad_alloc();
}

} // namespace

void* operator new(std::size_t bytes) { return allocate_or_throw(bytes); }
void* operator new[](std::size_t bytes) { return allocate_or_throw(bytes); }
void* operator new(std::size_t bytes, const std::nothrow_t&) noexcept { return allocate(bytes); }
void* operator new[](std::size_t bytes, const std::nothrow_t&) noexcept { return allocate(bytes); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
