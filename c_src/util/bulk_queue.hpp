#pragma once

#include <cstddef>
#include <deque>
#include <functional>
#include <utility>

namespace dpool::util {

// Work of low priority on the event loop: the next piece of a big transfer (DistLink). run_event_loop serves
// it when no other handler is ready, and one item after every kFairness other handlers, so that the small
// packets of other links do not queue behind the pieces of big ones, while big ones keep moving under load.
class BulkQueue {
public:
    static constexpr std::size_t kFairness = 16;

    void defer(std::function<void()> work) { items_.push_back(std::move(work)); }
    bool empty() const { return items_.empty(); }
    std::size_t size() const { return items_.size(); }

    // Runs the oldest item; false when there is none.
    bool run_one()
    {
        if (items_.empty()) {
            return false;
        }
        auto work = std::move(items_.front());
        items_.pop_front();
        work();
        return true;
    }

private:
    std::deque<std::function<void()>> items_;
};

} // namespace dpool::util
