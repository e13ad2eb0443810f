// Pool through its public interface: leases, waiters, deadlines, cancels, lost callers and destroy, with
// connections to an in-test "target" (loopback sockets, no handshake) and answers recorded as the pool gives them.
#include "test_support.hpp"

#include <map>

#include "loopback.hpp"
#include "pool/pool.hpp"

namespace asio = boost::asio;
using tcp = boost::asio::ip::tcp;
using dpool::pool::CallerView;
using dpool::pool::Pool;
using dpool::pool::PoolConfig;
using dpool::pool::PoolStats;

namespace {

// Each answer as "<caller>: <what>", the caller named by its tag's text.
class RecordingAnswers final : public dpool::pool::Answers {
public:
    void ok(const CallerView& c) const override { add(c, "ok"); }
    void error(const CallerView& c, const dpool::pool::Failure& f) const override
    {
        add(c, "error " + std::string(f.error) + (f.kind.empty() ? "" : " " + std::string(f.kind)));
    }
    void pool_started(const CallerView& c, std::uint64_t pool) const override
    {
        add(c, "started " + std::to_string(pool));
    }
    void granted(const CallerView& c, std::uint32_t conn, std::uint64_t lease, std::string_view) const override
    {
        add(c, "granted " + std::to_string(conn));
        leases[std::string(c.tag)] = {conn, lease};
    }
    void batch_queued(const CallerView& c, std::int64_t count) const override
    {
        add(c, "queued " + std::to_string(count));
    }
    void answered(const CallerView& c, std::string_view) const override { add(c, "answered"); }
    void destination_down(const CallerView& c, std::string_view) const override { add(c, "down"); }
    void call_ended(const CallerView& c, const dpool::protocol::CallExit&) const override { add(c, "call ended"); }
    void call_not_spawned(const CallerView& c, std::string_view) const override { add(c, "not spawned"); }
    void stats(const CallerView& c, const PoolStats&) const override { add(c, "stats"); }

    bool has(const std::string& line) const
    {
        return std::find(lines.begin(), lines.end(), line) != lines.end();
    }

    mutable std::vector<std::string> lines;
    mutable std::map<std::string, std::pair<std::uint32_t, std::uint64_t>> leases; // by caller

private:
    void add(const CallerView& c, const std::string& what) const { lines.push_back(std::string(c.tag) + ": " + what); }
};

// One pool on an event loop of its own. Its connections reach a "target" that is the test: each connect attempt
// gets one end of a loopback pair (or fails, while `refuse` is set).
class PoolHarness {
public:
    explicit PoolHarness(PoolConfig config, dpool::transport::LinkLimits links = {})
        : scheduler_(io.get_executor(),
                     [this](const dpool::pool::Deadline& d) {
                         if (pool) {
                             pool->on_deadline(d);
                         }
                     }),
          context_(io.get_executor(), "cnode", "127.0.0.1"), identity_("cnode@127.0.0.1", 1, 7)
    {
        context_.scheduler = &scheduler_;
        context_.answers = &answers;
        context_.link_limits = std::move(links);
        context_.connect = [this](const std::string&, dpool::transport::HandshakeIdentity,
                                  std::chrono::milliseconds) { return attempt(); };
        config.target = "target@127.0.0.1";
        config.health_check_interval_ms = 0;
        config.max_lifetime_ms = 0;
        config.max_idle_ms = 0;
        pool = std::make_shared<Pool>(context_, 1, std::move(config));
    }
    ~PoolHarness()
    {
        scheduler_.stop();
        pool.reset();
        callers_.clear();
    }

    // A caller on a node of its own (its own link), named `tag`.
    CallerView caller(const std::string& tag)
    {
        auto& c = callers_[tag];
        if (!c.link) {
            c.link = std::make_unique<dpool::test::LoopbackLink>(io);
            c.tag = tag;
            c.from = "pid of " + tag;
        }
        return CallerView{c.link->link, nullptr, c.from, c.tag};
    }
    // A caller with a real pid and the C-node identity it came in on, so that the pool can monitor it: the
    // MONITOR_P and DEMONITOR_P packets arrive on its link (monitor_packets).
    CallerView watchable_caller(const std::string& tag)
    {
        auto& c = callers_[tag];
        if (!c.link) {
            c.link = std::make_unique<dpool::test::LoopbackLink>(io);
            c.tag = tag;
            dpool::test::EiTerm pid;
            pid.pid("caller@127.0.0.1", static_cast<unsigned>(callers_.size()), 0, 1);
            c.from = pid.str();
        }
        return CallerView{c.link->link, &identity_, c.from, c.tag};
    }
    // The monitors set on the caller so far and those taken back, each with its number.
    struct MonitorPackets {
        std::vector<std::uint64_t> set;
        std::vector<std::uint64_t> taken_back;
    };
    MonitorPackets monitor_packets(const std::string& tag)
    {
        MonitorPackets out;
        for (const auto& packet : callers_.at(tag).link->packets()) {
            const auto control = dpool::protocol::parse_packet(packet);
            if (!control || (control->op != dpool::protocol::ControlOp::monitor_p &&
                             control->op != dpool::protocol::ControlOp::demonitor_p)) {
                continue;
            }
            dpool::protocol::TermReader r(control->ref);
            const auto ref = r.ref();
            REQUIRE(ref);
            const auto number = identity_.ref_number(*ref);
            REQUIRE(number);
            (control->op == dpool::protocol::ControlOp::monitor_p ? out.set : out.taken_back).push_back(*number);
        }
        return out;
    }

    // The caller's node goes away.
    void lose_caller(const std::string& tag)
    {
        auto& c = callers_.at(tag);
        c.link->link->close("caller node gone");
        pool->on_client_gone(c.link->link.get());
    }

    void checkin(const std::string& tag)
    {
        const auto [conn, lease] = answers.leases.at(tag);
        CHECK(pool->checkin(conn, lease));
    }

    bool wait_for(const std::string& line)
    {
        return dpool::test::run_until(io, [&] { return answers.has(line); });
    }

    // Runs the loop for a while, for the absence of an answer (bounded: the pool's own deadlines are far).
    void settle() { dpool::test::run_until(io, [] { return false; }, std::chrono::milliseconds(50)); }

    // What the limits of every pool of the context refused.
    const dpool::pool::LimitCounts& refusals() const { return context_.limit_refusals; }

    asio::io_context io;
    RecordingAnswers answers;
    bool refuse = false;
    std::shared_ptr<Pool> pool;

private:
    struct TestCaller {
        std::unique_ptr<dpool::test::LoopbackLink> link;
        std::string tag;
        std::string from;
    };

    asio::awaitable<dpool::transport::ConnectOutcome> attempt()
    {
        dpool::transport::ConnectOutcome out;
        if (refuse) {
            out.kind = dpool::transport::ConnectError::unreachable;
            out.error = "refused by the test";
            co_return out;
        }
        auto pair = dpool::test::socket_pair(io);
        targets_.push_back(std::move(pair.far));
        out.stream.emplace(std::move(pair.near));
        co_return out;
    }

    dpool::pool::Scheduler scheduler_;
    dpool::pool::PoolContext context_;
    dpool::protocol::NodeIdentity identity_;
    std::vector<tcp::socket> targets_;
    std::map<std::string, TestCaller> callers_;
};

// A started pool of one connection, leased to caller "a".
void start_and_lease_to_a(PoolHarness& h)
{
    h.pool->start(dpool::pool::Caller(h.caller("creator")));
    REQUIRE(h.wait_for("creator: started 1"));
    h.pool->checkout(h.caller("a"), std::nullopt);
    REQUIRE(h.wait_for("a: granted 0"));
}

PoolConfig config(std::uint32_t max, std::uint32_t min)
{
    PoolConfig c;
    c.max_connections = max;
    c.min_connections = min;
    return c;
}

} // namespace

TEST_CASE("Pool starts with min_connections up, leases idle connections and refuses when none is left",
          "[pool]")
{
    PoolHarness h(config(2, 2));
    h.pool->start(dpool::pool::Caller(h.caller("creator")));
    REQUIRE(h.wait_for("creator: started 1"));
    CHECK(h.pool->live_connections() == 2);

    h.pool->checkout(h.caller("a"), std::nullopt);
    h.pool->checkout(h.caller("b"), std::nullopt);
    REQUIRE(dpool::test::run_until(h.io, [&] { return h.answers.leases.size() == 2; }));
    CHECK(h.answers.leases["a"].first != h.answers.leases["b"].first);
    // Nothing idle and no wait allowed: refused at once.
    h.pool->checkout(h.caller("c"), 0);
    CHECK(h.wait_for("c: error pool_exhausted"));

    const PoolStats s = h.pool->snapshot();
    CHECK(s.in_use_connections == 2);
    CHECK(s.available_connections == 0);
    CHECK(s.counters.acquires == 3);
    CHECK(s.counters.hits == 2);
    CHECK(s.counters.misses == 1);
    CHECK(s.counters.acquire_timeouts == 1);
    CHECK(s.counters.connections_created == 2);

    // A lease ends once; the second checkin of it is stale.
    const auto [conn, lease] = h.answers.leases["a"];
    CHECK(h.pool->checkin(conn, lease));
    CHECK_FALSE(h.pool->checkin(conn, lease));
    CHECK(h.pool->snapshot().available_connections == 1);
}

TEST_CASE("Pool serves waiters first come first served as leases come back", "[pool]")
{
    PoolHarness h(config(1, 1));
    start_and_lease_to_a(h);
    h.pool->checkout(h.caller("b"), 60'000);
    h.pool->checkout(h.caller("c"), 60'000);
    h.settle();
    CHECK(h.pool->snapshot().waiting == 2);
    CHECK_FALSE(h.answers.has("b: granted 0"));

    h.checkin("a");
    REQUIRE(h.wait_for("b: granted 0"));
    CHECK_FALSE(h.answers.has("c: granted 0"));
    h.checkin("b");
    REQUIRE(h.wait_for("c: granted 0"));
    CHECK(h.pool->snapshot().waiting == 0);
}

TEST_CASE("Pool answers pool_exhausted when a waiter's acquire timeout passes", "[pool]")
{
    PoolHarness h(config(1, 1));
    start_and_lease_to_a(h);
    h.pool->checkout(h.caller("b"), 30);
    REQUIRE(h.wait_for("b: error pool_exhausted"));
    CHECK(h.pool->snapshot().waiting == 0);
    // The lease that comes back later stays idle: nobody waits for it any more.
    h.checkin("a");
    CHECK(h.pool->snapshot().available_connections == 1);
}

TEST_CASE("Pool lets a cancelled waiter leave the line", "[pool]")
{
    PoolHarness h(config(1, 1));
    start_and_lease_to_a(h);
    h.pool->checkout(h.caller("b"), 60'000);
    h.pool->checkout(h.caller("c"), 60'000);
    h.pool->cancel("pid of b", "b");
    h.checkin("a");
    REQUIRE(h.wait_for("c: granted 0"));
    CHECK_FALSE(h.answers.has("b: granted 0"));
}

TEST_CASE("Pool monitors no caller whose wait and lease end within the watch delay", "[pool]")
{
    PoolHarness h(config(1, 1));
    start_and_lease_to_a(h);
    // In line, granted and returned before the event loop runs again: before any deadline can come due.
    h.pool->checkout(h.watchable_caller("b"), 60'000);
    CHECK(h.pool->snapshot().waiting == 1);
    h.checkin("a");
    REQUIRE(h.answers.has("b: granted 0"));
    h.checkin("b");
    h.settle(); // the watch deadlines come due with nothing left to watch
    const auto packets = h.monitor_packets("b");
    CHECK(packets.set.empty());
    CHECK(packets.taken_back.empty());
}

TEST_CASE("Pool monitors a caller still in line after the watch delay, and its exit ends its wait", "[pool]")
{
    PoolHarness h(config(1, 1));
    start_and_lease_to_a(h);
    h.pool->checkout(h.watchable_caller("b"), 60'000);
    h.pool->checkout(h.watchable_caller("c"), 60'000);
    REQUIRE(dpool::test::run_until(h.io, [&] { return h.monitor_packets("b").set.size() == 1; }));
    REQUIRE(dpool::test::run_until(h.io, [&] { return h.monitor_packets("c").set.size() == 1; }));

    // b exits: its monitor fires and b leaves the line; the lease that comes back goes to c.
    h.pool->on_monitor_down(h.monitor_packets("b").set.front());
    CHECK(h.pool->snapshot().waiting == 1);
    h.checkin("a");
    REQUIRE(h.wait_for("c: granted 0"));
    CHECK_FALSE(h.answers.has("b: granted 0"));
    // c's grant takes back the monitor of its wait.
    const auto c_packets = h.monitor_packets("c");
    REQUIRE(dpool::test::run_until(h.io, [&] { return h.monitor_packets("c").taken_back.size() == 1; }));
    CHECK(h.monitor_packets("c").taken_back.front() == c_packets.set.front());
    h.checkin("c");
}

TEST_CASE("Pool finds a pipelined lease by its checkout's tag: granted, still in line, or none", "[pool]")
{
    PoolHarness h(config(1, 1));
    start_and_lease_to_a(h);
    // Granted: the ids of the lease the checkout tagged "a" got, whoever asks.
    const auto ids = h.pool->leased_by_checkout(h.caller("x"), "a");
    REQUIRE(ids);
    CHECK(ids->ids.conn == h.answers.leases["a"].first);
    CHECK(ids->ids.lease == h.answers.leases["a"].second);
    CHECK_FALSE(ids->untold_node); // answered when granted
    h.pool->lease_of(h.caller("y"), "a");
    CHECK(h.answers.has("y: granted 0"));

    // In line: lease_pending, not counted as a failed operation; a tag no checkout had: invalid_connection.
    h.pool->checkout(h.caller("b"), 60'000);
    const auto failed_before = h.pool->snapshot().counters.failed_operations;
    CHECK_FALSE(h.pool->leased_by_checkout(h.caller("z"), "b"));
    CHECK(h.answers.has("z: error lease_pending"));
    CHECK(h.pool->snapshot().counters.failed_operations == failed_before);
    CHECK_FALSE(h.pool->leased_by_checkout(h.caller("w"), "nobody"));
    CHECK(h.answers.has("w: error invalid_connection"));
    CHECK(h.pool->snapshot().counters.failed_operations == failed_before + 1);

    // Once b is granted, its tag names its lease; a's, whose lease ended, names none.
    h.checkin("a");
    REQUIRE(h.wait_for("b: granted 0"));
    const auto b = h.pool->leased_by_checkout(h.caller("v"), "b");
    REQUIRE(b);
    CHECK(b->ids.lease == h.answers.leases["b"].second);
    h.pool->lease_of(h.caller("u"), "a");
    CHECK(h.answers.has("u: error invalid_connection"));
}

TEST_CASE("Pool grants a quiet checkout without an answer, and its holder's first operation by the tag is told",
          "[pool]")
{
    PoolHarness h(config(1, 1));
    h.pool->start(dpool::pool::Caller(h.caller("creator")));
    REQUIRE(h.wait_for("creator: started 1"));
    h.pool->checkout(h.caller("q"), std::nullopt, nullptr, {}, true);
    h.settle();
    CHECK_FALSE(h.answers.has("q: granted 0"));
    REQUIRE(std::holds_alternative<Pool::LeaseIds>(h.pool->find_checkout("q")));
    // Another process naming the lease by the tag is not the one to tell.
    const auto other = h.pool->leased_by_checkout(h.caller("x"), "q");
    REQUIRE(other);
    CHECK_FALSE(other->untold_node);
    // The holder's first operation is told the ids (with the node), once.
    const auto first = h.pool->leased_by_checkout(h.caller("q"), "q");
    REQUIRE(first);
    REQUIRE(first->untold_node);
    CHECK(*first->untold_node == h.pool->snapshot().connections.at(0).node);
    const auto second = h.pool->leased_by_checkout(h.caller("q"), "q");
    REQUIRE(second);
    CHECK_FALSE(second->untold_node);
    // A quiet checkout that waits in line is answered when it is granted, as any; one that may not wait gets
    // its error.
    h.pool->checkout(h.caller("w"), 60'000, nullptr, {}, true);
    h.pool->checkout(h.caller("f"), 0, nullptr, {}, true);
    CHECK(h.wait_for("f: error pool_exhausted"));
    CHECK_FALSE(h.answers.has("w: granted 0"));
    CHECK(h.pool->checkin(first->ids.conn, first->ids.lease));
    REQUIRE(h.wait_for("w: granted 0"));
    const auto w = h.pool->leased_by_checkout(h.caller("w"), "w");
    REQUIRE(w);
    CHECK_FALSE(w->untold_node);
}

TEST_CASE("Pool takes back the leases and waiters of a caller node that went away", "[pool]")
{
    PoolHarness h(config(1, 1));
    start_and_lease_to_a(h);
    h.pool->checkout(h.caller("b"), 60'000);
    h.settle();
    h.lose_caller("a");
    REQUIRE(h.wait_for("b: granted 0"));
    CHECK(h.pool->snapshot().in_use_connections == 1);
}

TEST_CASE("Pool grows towards max_connections while callers wait", "[pool]")
{
    PoolHarness h(config(3, 0));
    h.pool->start(dpool::pool::Caller(h.caller("creator")));
    REQUIRE(h.wait_for("creator: started 1"));
    CHECK(h.pool->snapshot().total_connections == 0);
    for (const char* c : {"a", "b", "c"}) {
        h.pool->checkout(h.caller(c), 60'000);
    }
    REQUIRE(dpool::test::run_until(h.io, [&] { return h.answers.leases.size() == 3; }));
    CHECK(h.pool->snapshot().total_connections == 3);
    CHECK(h.pool->snapshot().counters.misses == 3);
}

TEST_CASE("Pool fails its start with the cause of the connect failure", "[pool]")
{
    PoolHarness h(config(2, 2));
    h.refuse = true;
    h.pool->start(dpool::pool::Caller(h.caller("creator")));
    REQUIRE(h.wait_for("creator: error connection_failed unreachable"));
    CHECK(h.pool->failed());
    CHECK(h.pool->snapshot().last_failure_text == "refused by the test");
}

TEST_CASE("Pool destroy waits for the leases still out, then answers ok", "[pool]")
{
    PoolHarness h(config(2, 2));
    h.pool->start(dpool::pool::Caller(h.caller("creator")));
    REQUIRE(h.wait_for("creator: started 1"));
    h.pool->checkout(h.caller("a"), std::nullopt);
    REQUIRE(dpool::test::run_until(h.io, [&] { return h.answers.leases.count("a") == 1; }));
    h.pool->checkout(h.caller("b"), std::nullopt);
    REQUIRE(dpool::test::run_until(h.io, [&] { return h.answers.leases.count("b") == 1; }));
    h.checkin("b");
    h.pool->destroy(dpool::pool::Caller(h.caller("destroyer")), 60'000);
    // New checkouts are refused at once; the idle connection is closed, the leased one waited for.
    h.pool->checkout(h.caller("new"), std::nullopt);
    CHECK(h.wait_for("new: error invalid_pool"));
    CHECK(h.pool->draining());
    h.settle();
    CHECK_FALSE(h.answers.has("destroyer: ok"));
    CHECK(h.pool->snapshot().counters.closed[static_cast<std::size_t>(dpool::pool::CloseReason::destroy)] == 1);

    h.checkin("a");
    REQUIRE(h.wait_for("destroyer: ok"));
    CHECK(h.pool->live_connections() == 0);
}

namespace {

using dpool::pool::Limit;

const std::string kSink = dpool::test::small_atom_utf8_ext("sink");
const dpool::pool::Destination kToSink{true, kSink};

std::uint64_t refused_by(const PoolStats& s, Limit limit) { return s.counters.limit_refusals[limit]; }

} // namespace

TEST_CASE("Pool refuses a checkout at once when max_waiters callers are in line, and counts it", "[pool][limits]")
{
    PoolConfig c = config(1, 1);
    c.max_waiters = 2;
    PoolHarness h(c);
    start_and_lease_to_a(h);
    h.pool->checkout(h.caller("b"), 60'000);
    h.pool->checkout(h.caller("c"), 60'000);
    h.pool->checkout(h.caller("d"), 60'000);
    REQUIRE(h.wait_for("d: error limit_reached max_waiters"));
    CHECK(h.pool->snapshot().waiting == 2);
    CHECK(refused_by(h.pool->snapshot(), Limit::max_waiters) == 1);
    CHECK(h.refusals()[Limit::max_waiters] == 1);
    // A place freed in line is taken again.
    h.pool->cancel("pid of b", "b");
    h.pool->checkout(h.caller("e"), 60'000);
    h.settle();
    CHECK_FALSE(h.answers.has("e: error limit_reached max_waiters"));
    CHECK(h.pool->snapshot().waiting == 2);
}

TEST_CASE("Pool gives back the memory of a long line once it is short again", "[pool][limits]")
{
    PoolHarness h(config(1, 1));
    start_and_lease_to_a(h);
    for (int i = 0; i < 5000; ++i) {
        h.pool->checkout(h.caller("w"), 60'000);
    }
    CHECK(h.pool->snapshot().waiting == 5000);
    h.lose_caller("w");
    CHECK(h.pool->snapshot().waiting == 0);
    // The line works as before.
    h.pool->checkout(h.caller("b"), 60'000);
    h.checkin("a");
    REQUIRE(h.wait_for("b: granted 0"));
}

TEST_CASE("Pool refuses a request on a connection with max_pending_requests in flight", "[pool][limits]")
{
    PoolConfig c = config(1, 1);
    c.max_pending_requests = 2;
    PoolHarness h(c);
    start_and_lease_to_a(h);
    const auto [conn, lease] = h.answers.leases.at("a");
    const std::string request = dpool::test::small_atom_utf8_ext("hello");
    for (const char* tag : {"r1", "r2", "r3"}) {
        h.pool->request(h.caller(tag), conn, lease, kToSink, std::nullopt, request);
    }
    REQUIRE(h.wait_for("r3: error limit_reached max_pending_requests"));
    CHECK_FALSE(h.answers.has("r1: error limit_reached max_pending_requests"));
    CHECK_FALSE(h.answers.has("r2: error limit_reached max_pending_requests"));
    CHECK(refused_by(h.pool->snapshot(), Limit::max_pending_requests) == 1);
    // The lease is still the caller's: only the request was refused.
    h.pool->send(h.caller("a"), conn, lease, kToSink, request);
    CHECK(h.wait_for("a: ok"));
}

TEST_CASE("Pool refuses a caller's data beyond the connection's queue, and keeps the connection", "[pool][limits]")
{
    dpool::transport::LinkLimits links;
    links.max_queued_bytes = 64 * 1024;
    PoolHarness h(config(1, 1), links);
    start_and_lease_to_a(h);
    const auto [conn, lease] = h.answers.leases.at("a");
    const std::string message = "\x6d" + dpool::test::be32(40 * 1024) + std::string(40 * 1024, 'x'); // a binary
    // Nothing is written while the loop does not run: the two messages pile up in the connection's queue.
    h.pool->send(h.caller("s1"), conn, lease, kToSink, message);
    h.pool->send(h.caller("s2"), conn, lease, kToSink, message);
    CHECK(h.answers.has("s2: error limit_reached max_link_queue_bytes"));
    CHECK(refused_by(h.pool->snapshot(), Limit::max_link_queue_bytes) == 1);
    CHECK(h.pool->live_connections() == 1);
    // A cast batch whose share for the connection does not fit is refused whole: nothing of it is queued.
    const dpool::pool::BatchMessage batch[] = {{0, message}, {0, message}};
    h.pool->cast_batch(h.caller("b"), kToSink, {std::begin(batch), std::end(batch)}, false);
    CHECK(h.answers.has("b: error limit_reached max_link_queue_bytes"));
    CHECK(h.pool->snapshot().counters.dropped_sends == 2);
    // Once the queue is written, the same send goes.
    h.settle();
    h.pool->send(h.caller("s3"), conn, lease, kToSink, message);
    CHECK(h.wait_for("s3: ok"));
}

TEST_CASE("Pool refuses a caller's data beyond the output of all links together", "[pool][limits]")
{
    dpool::transport::LinkLimits links;
    links.output = std::make_shared<dpool::transport::OutputBudget>(100 * 1024);
    PoolHarness h(config(2, 2), links);
    h.pool->start(dpool::pool::Caller(h.caller("creator")));
    REQUIRE(h.wait_for("creator: started 1"));
    const std::string message = "\x6d" + dpool::test::be32(30 * 1024) + std::string(30 * 1024, 'x');
    const std::vector<dpool::pool::BatchMessage> batch(3, dpool::pool::BatchMessage{0, message});
    h.pool->cast_batch(h.caller("b1"), kToSink, batch, false); // 90 KiB over two connections
    CHECK(h.answers.has("b1: queued 3"));
    CHECK(links.output->queued() > 90 * 1024);
    h.pool->cast_batch(h.caller("b2"), kToSink, batch, false);
    CHECK(h.answers.has("b2: error limit_reached max_output_queue_bytes"));
    CHECK(h.pool->snapshot().counters.dropped_sends == 3);
    CHECK(h.refusals()[Limit::max_output_queue_bytes] == 1);
    // Written out, the budget is free again.
    REQUIRE(dpool::test::run_until(h.io, [&] { return links.output->queued() == 0; }));
    CHECK(links.output->peak() > 90 * 1024);
    h.pool->cast_batch(h.caller("b3"), kToSink, batch, false);
    CHECK(h.wait_for("b3: queued 3"));
}
