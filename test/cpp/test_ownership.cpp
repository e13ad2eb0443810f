// Who a pool belongs to and what it leaves behind: the owners' bookkeeping (api::Owners), the C-node's own names
// (a pool may not target them), and the compaction of the deadline queue under pool churn.
#include "test_support.hpp"

#include <algorithm>
#include <map>
#include <unordered_set>

#include "api/owners.hpp"
#include "api/pool_options.hpp"
#include "loopback.hpp"
#include "pool/connection_names.hpp"
#include "pool/deadline_queue.hpp"
#include "pool/pool.hpp"
#include "pool/scheduler.hpp"
#include "protocol/node_identity.hpp"

using dpool::api::Owners;
using dpool::pool::Clock;
using dpool::pool::Deadline;
using dpool::pool::DeadlineKind;
using dpool::pool::DeadlineQueue;
using std::chrono::milliseconds;

// --- Owners --------------------------------------------------------------------------------------------------------

TEST_CASE("Owners: a node is gone when its last connection closes, with the pools it owns", "[owners]")
{
    Owners o;
    CHECK_FALSE(o.connected("a@h")); // no pools yet: nothing came back
    CHECK_FALSE(o.connected("a@h")); // a second lane
    o.adopt("a@h", 1);
    o.adopt("a@h", 2);
    CHECK_FALSE(o.disconnected("a@h").has_value()); // one lane left
    CHECK(o.orphaned_pools() == 0);
    const auto gone = o.disconnected("a@h");
    REQUIRE(gone.has_value());
    auto pools = gone->pools;
    std::sort(pools.begin(), pools.end());
    CHECK(pools == std::vector<std::uint64_t>{1, 2});
    CHECK(o.orphaned_pools() == 2);
    CHECK(o.still_gone("a@h", gone->absence));
}

TEST_CASE("Owners: a node that comes back cancels its absence, and a later absence has a number of its own",
          "[owners]")
{
    Owners o;
    o.connected("a@h");
    o.adopt("a@h", 7);
    const auto first = o.disconnected("a@h");
    REQUIRE(first.has_value());
    CHECK(o.connected("a@h")); // back in time
    CHECK_FALSE(o.still_gone("a@h", first->absence));
    CHECK(o.orphaned_pools() == 0);
    const auto second = o.disconnected("a@h");
    REQUIRE(second.has_value());
    CHECK(second->absence != first->absence);
    // The grace of the first absence ends now: it must not count, the node came back since.
    CHECK_FALSE(o.still_gone("a@h", first->absence));
    CHECK(o.still_gone("a@h", second->absence));
}

TEST_CASE("Owners: nodes without pools are not tracked once gone, released pools are forgotten", "[owners]")
{
    Owners o;
    o.connected("a@h");
    CHECK_FALSE(o.disconnected("a@h").has_value()); // owned nothing
    CHECK_FALSE(o.disconnected("a@h").has_value()); // an unknown node (a refused duplicate is never counted)
    o.connected("b@h");
    o.adopt("b@h", 3);
    o.release("b@h", 3); // destroyed by hand
    CHECK_FALSE(o.disconnected("b@h").has_value());
    o.connected("c@h");
    o.adopt("c@h", 4);
    const auto gone = o.disconnected("c@h");
    REQUIRE(gone.has_value());
    o.release("c@h", 4); // destroyed when its grace ended
    CHECK(o.orphaned_pools() == 0);
    CHECK_FALSE(o.still_gone("c@h", gone->absence)); // forgotten altogether
}

// --- the options: owner and owner_grace_ms -------------------------------------------------------------------

namespace {

// {max_connections => 1, Key => Value}, Value written by `value`, encoded.
template <class WriteValue>
std::string options_with(std::string_view key, WriteValue value)
{
    dpool::test::EiTerm t;
    t.map(2).atom("max_connections").integer(1).atom(key);
    value(t);
    return t.str();
}

std::string printed(const dpool::api::ConfigError& e)
{
    dpool::ByteBuffer buf;
    dpool::protocol::TermWriter w(buf);
    dpool::api::write_config_error(w, e);
    return dpool::test::print_term(buf.view());
}

// Those options parsed for the target t@h; the config owns what it holds.
template <class WriteValue>
dpool::api::Parsed<dpool::pool::PoolConfig, dpool::api::ConfigError> with_option(std::string_view key,
                                                                                  WriteValue value)
{
    return dpool::api::parse_pool_options("t@h", options_with(key, value));
}

// The error those options are refused with, printed while the options it points into still exist.
template <class WriteValue>
std::string refused(std::string_view key, WriteValue value)
{
    const std::string options = options_with(key, value);
    const auto parsed = dpool::api::parse_pool_options("t@h", options);
    REQUIRE_FALSE(parsed.has_value());
    return printed(parsed.error());
}

} // namespace

TEST_CASE("parse_pool_options: a pool has its creator as owner unless owner => none", "[owners][requests]")
{
    using dpool::test::EiTerm;
    const auto plain = with_option("acquire_timeout_ms", [](EiTerm& t) { t.integer(5000); });
    REQUIRE(plain.has_value());
    CHECK_FALSE(plain->ownerless);
    CHECK(plain->owner_grace_ms == 30000);
    CHECK(plain->owner.empty()); // set by the service, from the caller's node
    CHECK(with_option("owner", [](EiTerm& t) { t.atom("none"); })->ownerless);
    CHECK_FALSE(with_option("owner", [](EiTerm& t) { t.atom("creator"); })->ownerless);
    CHECK(refused("owner", [](EiTerm& t) { t.atom("me@h"); }) ==
          "{bad_value,owner,me@h,<<\"creator (the node that makes the pool) or none\">>}");
    CHECK(with_option("owner_grace_ms", [](EiTerm& t) { t.integer(0); })->owner_grace_ms == 0);
    CHECK(with_option("owner_grace_ms", [](EiTerm& t) { t.integer(86400000); })->owner_grace_ms == 86400000);
    CHECK(refused("owner_grace_ms", [](EiTerm& t) { t.integer(86400001); }) ==
          "{bad_value,owner_grace_ms,86400001,<<\"an integer in 0..86400000\">>}");
    CHECK(refused("owner_grace", [](EiTerm& t) { t.integer(1); }) ==
          "{unknown_option,owner_grace,{did_you_mean,owner_grace_ms}}");
}

TEST_CASE("write_config_error: target_is_self names the target as it came", "[owners][config_error]")
{
    dpool::test::EiTerm target;
    target.binary("cnode@h");
    dpool::api::ConfigError e;
    e.kind = dpool::api::ConfigError::Kind::target_is_self;
    e.term = target.view();
    CHECK(printed(e) == "{target_is_self,<<\"cnode@h\">>}");
}

// --- the C-node's own names -----------------------------------------------------------------------------------

TEST_CASE("same_node compares alive parts exactly and host names without case", "[node_identity]")
{
    using dpool::protocol::same_node;
    CHECK(same_node("cnode@127.0.0.1", "cnode@127.0.0.1"));
    CHECK(same_node("cnode@Host.Example", "cnode@host.example"));
    CHECK_FALSE(same_node("cnode@host", "Cnode@host"));
    CHECK_FALSE(same_node("cnode@host", "cnode2@host"));
    CHECK_FALSE(same_node("cnode@host", "cnode@host2"));
    CHECK_FALSE(same_node("cnode", "cnode"));
}

TEST_CASE("ConnectionNames recognises every name it could hand out, and only those", "[connection_names]")
{
    dpool::pool::ConnectionNames names("dpool", "127.0.0.1");
    const auto given = names.acquire("t@127.0.0.1");
    CHECK(names.is_pooled_name(given.node_name));
    CHECK(names.is_pooled_name("dpool_0@127.0.0.1"));
    CHECK(names.is_pooled_name("dpool_4711@127.0.0.1")); // not handed out yet, but it could be
    CHECK_FALSE(names.is_pooled_name("dpool@127.0.0.1")); // the C-node's own name: a lane, not a pooled name
    CHECK_FALSE(names.is_pooled_name("dpool_lane1@127.0.0.1"));
    CHECK_FALSE(names.is_pooled_name("dpool_@127.0.0.1"));
    CHECK_FALSE(names.is_pooled_name("dpool_1@127.0.0.2"));
    CHECK_FALSE(names.is_pooled_name("dpoolx_1@127.0.0.1"));
    CHECK_FALSE(names.is_pooled_name("other_1@127.0.0.1"));
    CHECK_FALSE(names.is_pooled_name("dpool_1"));
}

// --- the deadline queue under pool churn ------------------------------------------------------------------------

namespace {

const Clock::time_point t0 = Clock::time_point{} + std::chrono::hours(1);

} // namespace

TEST_CASE("DeadlineQueue::retain drops what is not kept and stays a heap", "[deadline_queue]")
{
    DeadlineQueue q;
    for (std::uint64_t k = 0; k < 1000; ++k) {
        q.push(Deadline{t0 + milliseconds((k * 7919) % 1000), DeadlineKind::lifetime, k % 3, k});
    }
    CHECK(q.retain([](const Deadline& d) { return d.pool != 1; }) == 333);
    CHECK(q.size() == 667);
    Clock::time_point last{};
    std::size_t popped = 0;
    while (const auto d = q.pop_due(Clock::time_point::max())) {
        CHECK(d->pool != 1);
        CHECK(d->when >= last);
        last = d->when;
        ++popped;
    }
    CHECK(popped == 667);
}

TEST_CASE("Scheduler compacts away the deadlines of forgotten pools: churn keeps the queue bounded",
          "[scheduler][churn]")
{
    dpool::asio::io_context io;
    std::unordered_set<std::uint64_t> live;
    dpool::pool::Scheduler scheduler(
        io.get_executor(), [](const Deadline&) {}, [&](const Deadline& d) { return live.contains(d.pool); });
    // Each pool schedules what a pool of two connections does (lifetimes and health checks, far away) and is
    // forgotten before any of them is due.
    constexpr std::uint64_t kPools = 20'000;
    for (std::uint64_t pool = 1; pool <= kPools; ++pool) {
        live.insert(pool);
        for (std::uint64_t k = 0; k < 4; ++k) {
            scheduler.schedule(Deadline{Clock::now() + std::chrono::minutes(30), DeadlineKind::lifetime, pool, k});
        }
        live.erase(pool);
        REQUIRE(scheduler.queued() <= 2 * dpool::pool::Scheduler::kMinCompaction);
    }
    CHECK(scheduler.dropped() >= 4 * kPools - 2 * dpool::pool::Scheduler::kMinCompaction);
    // What is wanted stays: 500 live pools' deadlines survive every compaction.
    for (std::uint64_t pool = kPools + 1; pool <= kPools + 500; ++pool) {
        live.insert(pool);
        for (std::uint64_t k = 0; k < 4; ++k) {
            scheduler.schedule(Deadline{Clock::now() + std::chrono::minutes(30), DeadlineKind::lifetime, pool, k});
        }
    }
    for (std::uint64_t pool = 1; pool <= 5000; ++pool) {
        scheduler.schedule(Deadline{Clock::now() + std::chrono::minutes(30), DeadlineKind::health, pool, 0});
    }
    CHECK(scheduler.queued() >= 2000);
    CHECK(scheduler.queued() <= 2000 + 2 * dpool::pool::Scheduler::kMinCompaction);
    scheduler.stop();
}

namespace {

// Real pools of two connections, made and destroyed one after the other, on an event loop of their own; their
// connections reach loopback sockets (no handshake). The service's part is played here: the pools live in a
// map, forgotten when they drop themselves, and the scheduler keeps only the deadlines of pools in it.
class Churn {
public:
    Churn()
        : scheduler_(
              io.get_executor(),
              [this](const Deadline& d) {
                  if (const auto it = pools_.find(d.pool); it != pools_.end()) {
                      it->second->on_deadline(d);
                  }
              },
              [this](const Deadline& d) { return pools_.contains(d.pool); }),
          context_(io.get_executor(), "cnode", "127.0.0.1")
    {
        context_.scheduler = &scheduler_;
        context_.answers = &answers_;
        context_.drop_pool = [this](std::uint64_t id) { pools_.erase(id); };
        context_.connect = [this](const std::string&, dpool::transport::HandshakeIdentity,
                                  std::chrono::milliseconds) { return attempt(); };
    }
    ~Churn()
    {
        scheduler_.stop();
        pools_.clear();
    }

    // Makes a pool with the default lifetimes and health checks, waits until its connections are up, destroys
    // it and waits until it is forgotten.
    void cycle(std::uint64_t id)
    {
        dpool::pool::PoolConfig config;
        config.target = "target@127.0.0.1";
        config.max_connections = 2;
        config.min_connections = 2;
        const auto pool = std::make_shared<dpool::pool::Pool>(context_, id, config);
        pools_.emplace(id, pool);
        pool->start(dpool::pool::Caller(caller()));
        REQUIRE(dpool::test::run_until(io, [&] { return pool->live_connections() == 2 || pool->failed(); }));
        REQUIRE_FALSE(pool->failed());
        pool->destroy(std::nullopt, 0);
        REQUIRE(dpool::test::run_until(io, [&] { return !pools_.contains(id); }));
        targets_.clear();
    }

    std::size_t queued() const { return scheduler_.queued(); }

    dpool::asio::io_context io;

private:
    class NoAnswers final : public dpool::pool::Answers {
    public:
        void ok(const dpool::pool::CallerView&) const override {}
        void error(const dpool::pool::CallerView&, const dpool::pool::Failure&) const override {}
        void pool_started(const dpool::pool::CallerView&, std::uint64_t) const override {}
        void granted(const dpool::pool::CallerView&, std::uint32_t, std::uint64_t, std::string_view) const override
        {
        }
        void batch_queued(const dpool::pool::CallerView&, std::int64_t) const override {}
        void answered(const dpool::pool::CallerView&, std::string_view) const override {}
        void destination_down(const dpool::pool::CallerView&, std::string_view) const override {}
        void call_ended(const dpool::pool::CallerView&, const dpool::protocol::CallExit&) const override {}
        void call_not_spawned(const dpool::pool::CallerView&, std::string_view) const override {}
        void stats(const dpool::pool::CallerView&, const dpool::pool::PoolStats&) const override {}
    };

    dpool::pool::CallerView caller()
    {
        if (!creator_) {
            creator_ = std::make_unique<dpool::test::LoopbackLink>(io);
        }
        return dpool::pool::CallerView{creator_->link, nullptr, "creator", "creator"};
    }

    dpool::asio::awaitable<dpool::transport::ConnectOutcome> attempt()
    {
        dpool::transport::ConnectOutcome out;
        auto pair = dpool::test::socket_pair(io);
        targets_.push_back(std::move(pair.far));
        out.stream.emplace(std::move(pair.near));
        co_return out;
    }

    NoAnswers answers_;
    dpool::pool::Scheduler scheduler_;
    dpool::pool::PoolContext context_;
    std::map<std::uint64_t, std::shared_ptr<dpool::pool::Pool>> pools_;
    std::vector<dpool::tcp::socket> targets_;
    std::unique_ptr<dpool::test::LoopbackLink> creator_;
};

} // namespace

TEST_CASE("Pools made and destroyed in a loop leave no deadlines behind beyond one compaction's worth",
          "[pool][churn]")
{
    // Each pool of two connections queues two lifetimes (30 minutes) and two health checks (30 s): without
    // compaction the queue would hold 4 per pool ever made, 12,000 here.
    Churn churn;
    constexpr std::uint64_t kCycles = 3000;
    std::size_t most = 0;
    for (std::uint64_t id = 1; id <= kCycles; ++id) {
        churn.cycle(id);
        most = std::max(most, churn.queued());
    }
    CHECK(most <= 2 * dpool::pool::Scheduler::kMinCompaction);
}
