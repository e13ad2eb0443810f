#pragma once

#include <cstddef>

namespace dpool::test {

// While one lives, every allocation of the calling thread through the global operator new fails (std::bad_alloc,
// or a null pointer from the nothrow forms), as it would with the memory gone: for the paths that must survive that (a link that could not
// start a write must still write later). alloc_failure.cpp replaces operator new and delete in the unit tests'
// binary (with malloc and free, so the sanitizers see matching pairs); other threads, and this one once it is
// gone, allocate as usual.
class FailAllocations {
public:
    FailAllocations();
    ~FailAllocations();
    FailAllocations(const FailAllocations&) = delete;
    FailAllocations& operator=(const FailAllocations&) = delete;

    // How many allocations failed while this lived: a test checks that the failure it meant to cause happened.
    std::size_t failed() const;
};

} // namespace dpool::test
