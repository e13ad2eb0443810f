#include "test_support.hpp"

#include <algorithm>
#include <chrono>
#include <random>
#include <vector>

#include "pool/deadline_queue.hpp"
#include "pool/scheduler.hpp"

using dpool::pool::Clock;
using dpool::pool::Deadline;
using dpool::pool::DeadlineKind;
using dpool::pool::DeadlineQueue;
using std::chrono::milliseconds;

namespace {

// A fixed origin: the queue never reads the clock, so neither do these tests.
const Clock::time_point t0 = Clock::time_point{} + std::chrono::hours(1);

Deadline at(int ms, std::uint64_t key, DeadlineKind kind = DeadlineKind::waiter, std::uint64_t pool = 1)
{
    return Deadline{t0 + milliseconds(ms), kind, pool, key};
}

} // namespace

TEST_CASE("DeadlineQueue starts empty", "[deadline_queue]")
{
    DeadlineQueue q;
    CHECK(q.empty());
    CHECK(q.size() == 0);
    CHECK_FALSE(q.next().has_value());
    CHECK_FALSE(q.pop_due(Clock::time_point::max()).has_value());
}

TEST_CASE("DeadlineQueue pops in time order whatever the push order", "[deadline_queue]")
{
    DeadlineQueue q;
    q.push(at(30, 3, DeadlineKind::reconnect, 7));
    q.push(at(10, 1, DeadlineKind::waiter, 8));
    q.push(at(40, 4, DeadlineKind::lifetime, 9));
    q.push(at(20, 2, DeadlineKind::request, 10));
    CHECK(q.size() == 4);
    CHECK(q.next() == t0 + milliseconds(10));

    const auto first = q.pop_due(t0 + milliseconds(1000));
    REQUIRE(first.has_value());
    CHECK(first->key == 1);
    CHECK(first->kind == DeadlineKind::waiter);
    CHECK(first->pool == 8);
    CHECK(first->when == t0 + milliseconds(10));

    const auto second = q.pop_due(t0 + milliseconds(1000));
    REQUIRE(second.has_value());
    CHECK(second->key == 2);
    CHECK(second->kind == DeadlineKind::request);
    CHECK(second->pool == 10);

    CHECK(q.pop_due(t0 + milliseconds(1000))->key == 3);
    CHECK(q.pop_due(t0 + milliseconds(1000))->key == 4);
    CHECK(q.empty());
}

TEST_CASE("DeadlineQueue pop_due returns only what is due at now", "[deadline_queue]")
{
    DeadlineQueue q;
    q.push(at(20, 2));
    q.push(at(10, 1));
    q.push(at(30, 3));

    CHECK_FALSE(q.pop_due(t0).has_value());
    CHECK_FALSE(q.pop_due(t0 + milliseconds(9)).has_value());
    CHECK(q.size() == 3);

    const auto now = t0 + milliseconds(20); // a deadline at exactly now is due
    CHECK(q.pop_due(now)->key == 1);
    CHECK(q.pop_due(now)->key == 2);
    CHECK_FALSE(q.pop_due(now).has_value());
    CHECK(q.size() == 1);
    CHECK(q.next() == t0 + milliseconds(30));
}

TEST_CASE("DeadlineQueue keeps time order over many random deadlines", "[deadline_queue]")
{
    std::mt19937 random(5);
    DeadlineQueue q;
    std::vector<int> offsets;
    for (std::uint64_t key = 0; key < 2000; ++key) {
        const int ms = static_cast<int>(random() % 500);
        offsets.push_back(ms);
        q.push(at(ms, key));
    }
    std::sort(offsets.begin(), offsets.end());

    std::vector<int> popped;
    for (int now = 0; now < 500; now += 7) {
        while (const auto d = q.pop_due(t0 + milliseconds(now))) {
            REQUIRE(d->when <= t0 + milliseconds(now));
            popped.push_back(static_cast<int>((d->when - t0) / milliseconds(1)));
        }
        if (const auto next = q.next()) {
            REQUIRE(*next > t0 + milliseconds(now));
        }
    }
    while (const auto d = q.pop_due(Clock::time_point::max())) {
        popped.push_back(static_cast<int>((d->when - t0) / milliseconds(1)));
    }
    CHECK(popped == offsets);
    CHECK(q.empty());
}

// --- Scheduler: one timer for every deadline ---------------------------------------------------------------------

TEST_CASE("Scheduler serves every deadline, none early, and coalesces close ones into few firings", "[scheduler]")
{
    dpool::asio::io_context io;
    std::vector<std::pair<Deadline, Clock::time_point>> served;
    dpool::pool::Scheduler scheduler(io.get_executor(),
                                     [&](const Deadline& d) { served.emplace_back(d, Clock::now()); });
    // 200 deadlines 50 us apart, in scrambled order: 10 ms of them, which one by one would be 200 firings. And
    // one more, 500 ms after them: it is not due when the first of them are (unless this thread is held up for
    // half a second), so it needs a firing of its own, whatever the machine's load.
    const auto start = Clock::now() + milliseconds(5);
    constexpr std::uint64_t kClose = 200;
    std::vector<std::uint64_t> keys(kClose + 1);
    for (std::uint64_t i = 0; i < keys.size(); ++i) {
        keys[i] = i;
    }
    std::shuffle(keys.begin(), keys.end(), std::mt19937(7));
    for (const auto k : keys) {
        const auto when = k < kClose ? start + std::chrono::microseconds(50 * k) : start + milliseconds(510);
        scheduler.schedule(Deadline{when, DeadlineKind::request, 1, k});
    }
    while (served.size() < keys.size() && io.run_one_for(std::chrono::seconds(5)) > 0) {
    }
    REQUIRE(served.size() == keys.size());
    for (std::size_t i = 0; i < served.size(); ++i) {
        const auto& [d, at] = served[i];
        CHECK(at >= d.when); // never early
        if (i > 0) {
            CHECK(served[i - 1].first.when <= d.when); // in order
        }
    }
    // A firing every kCoalesce at most (2 ms): the 10 ms of close deadlines take a handful, not 200 (a busy
    // machine only makes them fewer), and the far one one more.
    CHECK(scheduler.firings() <= 10);
    CHECK(scheduler.firings() >= 2);

    // A deadline earlier than the armed one re-arms the timer for it.
    served.clear();
    io.restart();
    scheduler.schedule(Deadline{Clock::now() + std::chrono::seconds(60), DeadlineKind::health, 1, 1});
    const auto soon = Clock::now() + milliseconds(3);
    scheduler.schedule(Deadline{soon, DeadlineKind::waiter, 1, 2});
    while (served.empty() && io.run_one_for(std::chrono::seconds(5)) > 0) {
    }
    REQUIRE(served.size() == 1);
    CHECK(served[0].first.key == 2);
    CHECK(served[0].second >= soon);
    scheduler.stop();
}

TEST_CASE("Scheduler: deadlines added from inside due handlers, near and far interleaved, each fire on time",
          "[scheduler]")
{
    // Every handler of a near deadline schedules a far one (as a health check schedules its next round) and,
    // for the first ones, another near one. A far deadline added while handlers run must not hold back the near
    // ones already queued, nor those added after it.
    dpool::asio::io_context io;
    std::vector<std::pair<Deadline, Clock::time_point>> served;
    constexpr std::uint64_t kFar = 1'000'000;
    constexpr std::size_t kChained = 20;
    std::uint64_t next_key = 100;
    dpool::pool::Scheduler* self = nullptr;
    dpool::pool::Scheduler scheduler(io.get_executor(), [&](const Deadline& d) {
        const auto now = Clock::now();
        served.emplace_back(d, now);
        if (d.key >= kFar) {
            return;
        }
        self->schedule(Deadline{now + std::chrono::seconds(30), DeadlineKind::health, 1, kFar + d.key});
        if (served.size() < kChained) {
            self->schedule(Deadline{now + milliseconds(7), DeadlineKind::waiter, 1, next_key++});
        }
    });
    self = &scheduler;
    const auto start = Clock::now();
    // Near deadlines queued up front, 13 ms apart, plus one far deadline of the kind that caused the bug.
    for (std::uint64_t k = 0; k < 15; ++k) {
        scheduler.schedule(Deadline{start + milliseconds(5 + 13 * k), DeadlineKind::waiter, 1, k});
    }
    scheduler.schedule(Deadline{start + std::chrono::seconds(20), DeadlineKind::lifetime, 1, kFar - 1});
    const std::size_t near_total = 15 + (kChained - 1);
    const auto near_served = [&] {
        return static_cast<std::size_t>(std::count_if(served.begin(), served.end(),
                                                      [&](const auto& s) { return s.first.key < kFar - 1; }));
    };
    // Bounded: without the fix the timer sleeps until a far deadline, and this gives up after 5 s.
    const auto give_up = Clock::now() + std::chrono::seconds(5);
    while (near_served() < near_total && Clock::now() < give_up && io.run_one_for(std::chrono::seconds(5)) > 0) {
    }
    REQUIRE(near_served() == near_total);
    std::vector<double> late_ms;
    for (const auto& [d, at] : served) {
        CHECK(at >= d.when); // never early
        late_ms.push_back(std::chrono::duration<double, std::milli>(at - d.when).count());
    }
    // Within a few ms of its time: the coalescing window (2 ms) plus a busy machine's scheduling delay.
    std::sort(late_ms.begin(), late_ms.end());
    CHECK(late_ms[late_ms.size() / 2] <= 5.0);
    CHECK(late_ms.back() <= 30.0);
    scheduler.stop();
}

TEST_CASE("Scheduler: after stop, a deadline scheduled (by a handler re-arming itself) is neither queued nor served",
          "[scheduler]")
{
    dpool::asio::io_context io;
    std::size_t served = 0;
    dpool::pool::Scheduler scheduler(io.get_executor(), [&](const Deadline&) { ++served; });
    scheduler.schedule(Deadline{Clock::now() + milliseconds(1), DeadlineKind::maintenance, 1, 1});
    CHECK(scheduler.queued() == 1);
    scheduler.stop();
    scheduler.schedule(Deadline{Clock::now() + milliseconds(1), DeadlineKind::maintenance, 1, 2});
    CHECK(scheduler.queued() == 1); // the one from before only
    // Nothing is left for the loop to run: the timer was cancelled and not armed again.
    io.run_for(std::chrono::milliseconds(50));
    CHECK(served == 0);
    CHECK(scheduler.firings() == 0);
}
