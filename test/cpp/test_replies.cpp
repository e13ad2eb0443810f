#include "test_support.hpp"

#include "api/replies.hpp"
#include "loopback.hpp"
#include "util/byte_buffer.hpp"

namespace asio = boost::asio;
using tcp = boost::asio::ip::tcp;
using dpool::pool::PoolStats;
using dpool::protocol::CallExit;
using dpool::test::EiTerm;
using dpool::test::small_atom_utf8_ext;
using dpool::test::print_term;

TEST_CASE("write_stats writes every field of a snapshot under its key, and the map's size is right", "[replies]")
{
    PoolStats s;
    s.pool_id = 1001;
    s.name = "orders";
    s.target = "t@127.0.0.1";
    s.last_failure_kind = "unreachable";
    s.last_failure_text = "refused";
    s.draining = true;
    s.total_connections = 1002;
    s.available_connections = 1003;
    s.in_use_connections = 1004;
    s.connecting_connections = 1005;
    s.waiting = 1006;
    s.capacity = 1007;
    s.max_connections = 1008;
    s.min_connections = 1009;
    s.acquire_timeout_ms = 1010;
    s.counters.successful_operations = 1011;
    s.counters.failed_operations = 1012;
    s.counters.dropped_sends = 1013;
    s.counters.return_barriers = 1014;
    s.counters.return_barrier_misses = 1015;
    s.counters.connections_created = 1016;
    s.counters.reconnect_attempts = 1017;
    s.counters.health_checks = 1018;
    s.counters.acquires = 1019;
    s.counters.acquire_timeouts = 1020;
    s.counters.hits = 1021;
    s.counters.misses = 1022;
    s.acquire_wait_avg_us = 1023;
    s.acquire_wait_max_us = 1024;
    s.acquire_wait_p99_us = 1025;
    s.request_rtt_avg_us = 1031;
    s.request_rtt_p50_us = 1026;
    s.request_rtt_p99_us = 1027;
    s.owner = "caller@h";
    s.owner_grace_ms = 1028;
    s.tls = "verified";
    s.max_waiters = 1029;
    s.max_pending_requests = 1030;
    for (std::size_t l = 0; l < dpool::pool::kLimits; ++l) {
        s.counters.limit_refusals.refused[l] = 3000 + l;
    }
    for (std::size_t r = 0; r < dpool::pool::kCloseReasons; ++r) {
        s.counters.closed[r] = 2000 + r;
    }
    s.connections = {{0, "c_0@h", PoolStats::ConnectionState::available},
                     {3, "c_3@h", PoolStats::ConnectionState::in_use},
                     {4, "c_4@h", PoolStats::ConnectionState::connecting}};

    dpool::ByteBuffer out;
    dpool::protocol::TermWriter w(out);
    dpool::api::write_stats(w, s);
    // print_term REQUIREs that the map's declared size matches its entries: one more or less and it fails.
    const std::string printed = print_term(out.view());
    int index = 0;
    int pairs = 0;
    const std::string copy(out.view());
    REQUIRE(ei_decode_map_header(copy.data(), &index, &pairs) == 0);
    CHECK(pairs == 40);
    for (const char* entry :
         {"pool_id,1001", "name,orders", "target,t@127.0.0.1", "owner,caller@h", "owner_grace_ms,1028",
          "tls,verified", "last_failure,{unreachable,<<\"refused\">>}",
          "state,draining", "total_connections,1002", "available_connections,1003", "in_use_connections,1004",
          "connecting_connections,1005", "waiting,1006", "capacity,1007", "max_connections,1008",
          "min_connections,1009", "acquire_timeout_ms,1010", "successful_operations,1011", "failed_operations,1012",
          "dropped_sends,1013", "return_barriers,1014", "return_barrier_misses,1015", "connections_created,1016",
          "reconnect_attempts,1017", "health_checks,1018", "acquire_count,1019", "acquire_timeouts,1020",
          "hits,1021", "misses,1022", "acquire_wait_avg_us,1023", "acquire_wait_max_us,1024",
          "acquire_wait_p99_us,1025", "request_rtt_avg_us,1031", "request_rtt_p50_us,1026",
          "request_rtt_p99_us,1027", "max_waiters,1029", "max_pending_requests,1030",
          // A pool's own limits only: the others are the C-node's (info).
          "limit_refusals,#{max_waiters,3000,max_pending_requests,3001,max_link_queue_bytes,3002,"
          "max_output_queue_bytes,3003}",
          "connections_closed,#{idle,2000,lifetime,2001,broken,2002,health,2003,destroy,2004,target_down,2005}",
          "connections,[#{id,0,node,c_0@h,state,available},#{id,3,node,c_3@h,state,in_use},"
          "#{id,4,node,c_4@h,state,connecting}]"}) {
        CAPTURE(entry, printed);
        CHECK(printed.find(entry) != std::string::npos);
    }

    // The defaults: no name, no failure yet, no connections.
    dpool::ByteBuffer empty_out;
    dpool::protocol::TermWriter e(empty_out);
    dpool::api::write_stats(e, PoolStats{});
    const std::string empty = print_term(empty_out.view());
    CHECK(empty.find("name,undefined") != std::string::npos);
    CHECK(empty.find("owner,none") != std::string::npos);
    CHECK(empty.find("last_failure,none") != std::string::npos);
    CHECK(empty.find("state,active") != std::string::npos);
    CHECK(empty.find("connections,[]") != std::string::npos);
}

TEST_CASE("Replies answers a call's end in rex's terms", "[replies]")
{
    asio::io_context io;
    dpool::test::LoopbackLink caller(io);
    EiTerm pid;
    pid.pid("caller@127.0.0.1", 1, 0, 1);
    EiTerm tag;
    tag.ref("caller@127.0.0.1", 1, {7, 0, 0});
    const dpool::pool::CallerView view{caller.link, nullptr, pid.view(), tag.view()};
    const dpool::api::Replies replies;

    const std::string v = small_atom_utf8_ext("v");
    const std::string stack = small_atom_utf8_ext("stack");
    replies.call_ended(view, CallExit{CallExit::Kind::returned, {}, v, {}});
    replies.call_ended(view, CallExit{CallExit::Kind::thrown, {}, v, {}});
    replies.call_ended(view, CallExit{CallExit::Kind::exited, {}, v, {}});
    replies.call_ended(view, CallExit{CallExit::Kind::not_called, {}, v, {}});
    replies.call_ended(view, CallExit{CallExit::Kind::errored, {}, v, {}});
    replies.call_ended(view, CallExit{CallExit::Kind::raised, {}, v, stack});
    replies.call_ended(view, CallExit::from_outside(small_atom_utf8_ext("killed")));
    replies.call_not_spawned(view, small_atom_utf8_ext("system_limit"));
    replies.destination_down(view, small_atom_utf8_ext("noproc"));
    replies.granted(view, 3, 77, "c_3@127.0.0.1");

    std::vector<std::string> got;
    REQUIRE(dpool::test::run_until(io, [&] { return caller.messages().size() >= 10; }));
    for (const auto& m : caller.messages()) {
        got.push_back(print_term(std::string_view(m).substr(1)));
    }
    const std::string t = print_term(tag.view());
    const std::vector<std::string> expected = {
        "{" + t + ",{ok,v}}",
        "{" + t + ",{ok,v}}",
        "{" + t + ",{error,{badrpc,{EXIT,v}}}}",
        "{" + t + ",{error,{badrpc,{EXIT,v}}}}",
        "{" + t + ",{error,{badrpc,{EXIT,v}}}}",
        "{" + t + ",{error,{badrpc,{EXIT,{v,stack}}}}}",
        "{" + t + ",{error,{badrpc,{EXIT,killed}}}}",
        "{" + t + ",{error,{badrpc,{EXIT,system_limit}}}}",
        "{" + t + ",{error,{down,noproc}}}",
        "{" + t + ",{ok,{3,77,c_3@127.0.0.1}}}",
    };
    CHECK(got == expected);
}
