#pragma once

#include <cstddef>

namespace dpool::test {

// While one lives, the next `count` allocations of the calling thread through the global operator new fail:
// std::bad_alloc, or a null pointer from the nothrow forms, as with the memory gone. For the paths that must
// survive that (a link that cannot start a write ends itself, never the process). alloc_failure.cpp replaces
// operator new and delete in the unit tests' binary (with malloc and free, so the sanitizers see matching pairs);
// other threads, and this one once it is gone, allocate as usual. Catch2's assertions allocate: check after its
// scope.
class FailAllocations {
public:
    explicit FailAllocations(std::size_t count);
    ~FailAllocations();
    FailAllocations(const FailAllocations&) = delete;
    FailAllocations& operator=(const FailAllocations&) = delete;

    // How many allocations failed while this lived: a test checks that the failure it meant to cause happened.
    std::size_t failed() const;
};

} // namespace dpool::test
