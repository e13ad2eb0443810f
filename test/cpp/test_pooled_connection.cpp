#include "test_support.hpp"

#include "loopback.hpp"
#include "pool/pooled_connection.hpp"
#include "protocol/control.hpp"
#include "protocol/dist_header.hpp"

namespace asio = boost::asio;
using tcp = boost::asio::ip::tcp;
using dpool::pool::Destination;
using dpool::pool::MessageHeads;
using dpool::pool::PendingRequests;
using dpool::pool::Purpose;
using dpool::test::EiTerm;
using dpool::test::small_atom_utf8_ext;

TEST_CASE("PendingRequests finds requests by reference and reuses finished entries", "[pooled_connection]")
{
    PendingRequests pending;
    const auto now = dpool::pool::Clock::now();
    pending.add(1, Purpose::caller, false, now);
    pending.add(2, Purpose::health, false, now);
    pending.add(3, Purpose::group_leader, true, now);
    CHECK(pending.size() == 3);
    REQUIRE(pending.find(2) != nullptr);
    CHECK(pending.find(2)->purpose == Purpose::health);
    CHECK(pending.find(3)->spawned);
    CHECK(pending.find(4) == nullptr);
    CHECK(pending.find(0) == nullptr); // the mark of a free entry names no request

    auto* first = pending.find(1);
    first->destination = "dest";
    first->one_shot_lease = 9;
    pending.finish(*first);
    CHECK(pending.size() == 2);
    CHECK(pending.find(1) == nullptr);
    // The freed entry comes back cleared, for the next request.
    auto& reused = pending.add(4, Purpose::caller, false, now);
    CHECK(&reused == first); // no new entry while a finished one is free
    CHECK(pending.find(4) == &reused);
    CHECK(reused.destination.empty());
    CHECK(reused.one_shot_lease == 0);
    CHECK(!reused.spawned);

    std::vector<std::uint64_t> seen;
    pending.for_each([&](dpool::pool::PendingRequest& p) {
        seen.push_back(p.ref);
        pending.finish(p); // finishing the one at hand is allowed
    });
    std::sort(seen.begin(), seen.end());
    CHECK(seen == std::vector<std::uint64_t>{2, 3, 4});
    CHECK(pending.size() == 0);
}

TEST_CASE("MessageHeads encodes a destination's head once and again when the destination or identity changes",
          "[pooled_connection]")
{
    const dpool::protocol::NodeIdentity me("cnode_0@127.0.0.1", 9, 3);
    MessageHeads heads;
    const std::string server = small_atom_utf8_ext("server");
    const std::string other = small_atom_utf8_ext("other");

    const std::string first(heads.head(me, Destination{true, server}, nullptr));
    // A pass-through packet's head: 'p', then the REG_SEND control term from our pid to the name, then the
    // message's version byte.
    EiTerm expected;
    expected.version().tuple(4).integer(6).raw(me.self_pid()).atom("").raw(server).version();
    CHECK(first == "p" + expected.str());

    const auto again = heads.head(me, Destination{true, server}, nullptr);
    CHECK(again == first);
    CHECK(again.data() == heads.head(me, Destination{true, server}, nullptr).data()); // kept, not made again

    const std::string to_other(heads.head(me, Destination{true, other}, nullptr));
    CHECK(to_other != first);
    CHECK(to_other.find("other") != std::string::npos);

    // A pid destination: SEND {2, '', Pid}.
    EiTerm pid;
    pid.pid("target@127.0.0.1", 5, 0, 1);
    const std::string to_pid(heads.head(me, Destination{false, pid.view()}, nullptr));
    EiTerm send;
    send.version().tuple(3).integer(2).atom("").raw(pid.view()).version();
    CHECK(to_pid == "p" + send.str());

    // A new identity (a reconnect): the kept head names the old pid.
    const dpool::protocol::NodeIdentity next("cnode_0@127.0.0.1", 10, 4);
    heads.forget();
    const std::string renewed(heads.head(next, Destination{true, server}, nullptr));
    CHECK(renewed.find(std::string(next.self_pid())) != std::string::npos);
    CHECK(renewed.find(std::string(me.self_pid())) == std::string::npos);
}

TEST_CASE("MessageHeads with an atom cache defines the atoms once, then refers to them", "[pooled_connection]")
{
    const dpool::protocol::NodeIdentity me("cnode_0@127.0.0.1", 9, 3);
    dpool::protocol::AtomCacheOut atoms;
    MessageHeads heads;
    const std::string server = small_atom_utf8_ext("server");

    // The first head carries the atoms' text: good for one packet only.
    const std::string defining(heads.head(me, Destination{true, server}, &atoms));
    CHECK(defining.find("cnode_0@127.0.0.1") != std::string::npos);
    CHECK(defining.find("server") != std::string::npos);
    // After it, references: no text, and the same bytes for every message while the cache stays.
    const std::string referring(heads.head(me, Destination{true, server}, &atoms));
    CHECK(referring.find("server") == std::string::npos);
    CHECK(referring.find("cnode_0@127.0.0.1") == std::string::npos);
    const auto kept = heads.head(me, Destination{true, server}, &atoms);
    CHECK(kept == referring);
    CHECK(kept.data() == heads.head(me, Destination{true, server}, &atoms).data());

    // Another name taking the entry (here: every entry but our node's, redefined by hand) makes the kept head
    // stale.
    for (std::uint16_t i = 1; i < dpool::protocol::kAtomCacheSize; ++i) {
        atoms.define(i, "intruder");
    }
    const std::string remade(heads.head(me, Destination{true, server}, &atoms));
    CHECK(remade.find("server") != std::string::npos); // defined again
}

namespace {

class RecordingEvents final : public dpool::pool::ConnectionEvents {
public:
    void on_reply(dpool::pool::PooledConnection&, std::string_view message) override
    {
        events.push_back("reply:" + std::to_string(message.size()));
    }
    void on_down(dpool::pool::PooledConnection&, std::string_view ref, std::string_view reason) override
    {
        events.push_back("down:" + std::string(ref) + "|" + std::string(reason));
    }
    void on_spawn_reply(dpool::pool::PooledConnection&, std::string_view, std::string_view result) override
    {
        events.push_back("spawn_reply:" + std::string(result));
    }
    void on_drained(dpool::pool::PooledConnection&) override { events.emplace_back("drained"); }
    void on_link_closed(dpool::pool::PooledConnection&, dpool::transport::DistLink&, std::string_view) override
    {
        events.emplace_back("closed");
    }
    std::vector<std::string> events;
};

} // namespace

TEST_CASE("PooledConnection hands the target's answers to its pool and ignores the rest", "[pooled_connection]")
{
    asio::io_context io;
    auto sockets = dpool::test::socket_pair(io); // the test holds the near end: the target says nothing
    auto link = std::make_shared<dpool::transport::DistLink>(std::move(sockets.far), "target@127.0.0.1",
                                                             dpool::transport::LinkLimits{});
    RecordingEvents events;
    dpool::pool::PooledConnection c(events, 0, {0, "cnode_0@127.0.0.1"});

    const auto packet = [](auto&& write) {
        EiTerm e;
        e.version();
        write(e);
        return "p" + e.str();
    };
    EiTerm pid;
    pid.pid("cnode_0@127.0.0.1", 0, 0, 1);
    EiTerm ref;
    ref.ref("target@127.0.0.1", 1, {1, 2, 3});
    // SEND {2, '', Pid} with a message.
    c.on_packet(*link, packet([&](EiTerm& e) { e.tuple(3).integer(2).atom("").raw(pid.view()).version().atom("hi"); }));
    // MONITOR_P_EXIT {21, FromProc, ToPid, Ref, Reason}.
    c.on_packet(*link, packet([&](EiTerm& e) {
        e.tuple(5).integer(21).atom("server").raw(pid.view()).raw(ref.view()).atom("noproc");
    }));
    // SPAWN_REPLY {31, ReqId, To, Flags, Result}.
    c.on_packet(*link, packet([&](EiTerm& e) {
        e.tuple(5).integer(31).raw(ref.view()).raw(pid.view()).integer(0).atom("system_limit");
    }));
    // A LINK, and bytes that are no packet: nothing for the pool.
    c.on_packet(*link, packet([&](EiTerm& e) { e.tuple(3).integer(1).raw(pid.view()).raw(pid.view()); }));
    c.on_packet(*link, "garbage");
    c.on_drained(*link);

    REQUIRE(events.events.size() == 4);
    CHECK(events.events[0].rfind("reply:", 0) == 0);
    CHECK(events.events[1] == "down:" + ref.str() + "|" + small_atom_utf8_ext("noproc"));
    CHECK(events.events[2] == "spawn_reply:" + small_atom_utf8_ext("system_limit"));
    CHECK(events.events[3] == "drained");
    link->detach();
    link->close("test finished");
}
