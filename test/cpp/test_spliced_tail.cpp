#include "test_support.hpp"

#include <fcntl.h>
#include <poll.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <string>
#include <vector>

#include "loopback.hpp"
#include "protocol/control.hpp"
#include "transport/spliced_tail.hpp"
#include "util/asio.hpp"

using dpool::error_code;
using dpool::tcp;
using dpool::transport::PipeBudget;
using dpool::transport::SplicedTail;
using dpool::transport::SpliceResult;
namespace asio = dpool::asio;

namespace {

std::string random_bytes(std::size_t n, unsigned seed)
{
    std::mt19937 gen(seed);
    std::string s(n, '\0');
    for (auto& c : s) {
        c = static_cast<char>(gen());
    }
    return s;
}

// Two loopback connections: the test writes into `in_peer` what the tail reads from `in`, and reads from
// `out_peer` what the tail writes into `out`. All non-blocking, run by hand.
struct Sockets {
    asio::io_context io;
    dpool::test::SocketPair in = dpool::test::socket_pair(io);
    dpool::test::SocketPair out = dpool::test::socket_pair(io);
    Sockets()
    {
        for (auto* s : {&in.near, &in.far, &out.near, &out.far}) {
            s->non_blocking(true);
        }
    }
    int in_fd() { return in.far.native_handle(); }
    int out_fd() { return out.near.native_handle(); }

    // Writes what the socket takes of `bytes` from `written` on.
    void feed(const std::string& bytes, std::size_t& written)
    {
        error_code ec;
        written += in.near.write_some(asio::buffer(bytes.data() + written, bytes.size() - written), ec);
    }
    void drain_far(std::string& into)
    {
        char chunk[64 * 1024];
        error_code ec;
        while (true) {
            const std::size_t n = out.far.read_some(asio::buffer(chunk), ec);
            if (ec) {
                return;
            }
            into.append(chunk, n);
        }
    }
};

std::chrono::steady_clock::time_point deadline_in_20s()
{
    return std::chrono::steady_clock::now() + std::chrono::seconds(20);
}

// Writes `bytes` into the input socket while the tail takes them in, until it is full.
void fill(SplicedTail& tail, Sockets& s, const std::string& bytes)
{
    std::size_t written = 0;
    const auto deadline = deadline_in_20s();
    while (!tail.full() && std::chrono::steady_clock::now() < deadline) {
        if (written < bytes.size()) {
            s.feed(bytes, written);
        }
        const auto r = tail.fill_from(s.in_fd(), 256 * 1024);
        REQUIRE((r.kind == SpliceResult::Kind::moved || r.kind == SpliceResult::Kind::would_block));
    }
    REQUIRE(tail.full());
}

// Moves `bytes` through the tail: written into the input socket while the tail fills, then drained to the
// output socket, read at the far end.
std::string through(SplicedTail& tail, Sockets& s, const std::string& bytes)
{
    fill(tail, s, bytes);
    const auto deadline = deadline_in_20s();
    std::string received;
    while (tail.held() > 0 && std::chrono::steady_clock::now() < deadline) {
        const auto r = tail.drain_to(s.out_fd(), 256 * 1024);
        REQUIRE((r.kind == SpliceResult::Kind::moved || r.kind == SpliceResult::Kind::would_block));
        s.drain_far(received);
    }
    while (received.size() < bytes.size() && std::chrono::steady_clock::now() < deadline) {
        pollfd p{s.out.far.native_handle(), POLLIN, 0};
        ::poll(&p, 1, 10);
        s.drain_far(received);
    }
    return received;
}

} // namespace

TEST_CASE("SplicedTail moves bytes from one socket to another through pipes, intact and in order", "[splice]")
{
    Sockets s;
    auto budget = std::make_shared<PipeBudget>(16);
    const std::string bytes = random_bytes((std::size_t{3} << 20) + 12345, 1);
    {
        SplicedTail tail(budget, bytes.size());
        CHECK(through(tail, s, bytes) == bytes);
        CHECK(budget->counters().bytes == bytes.size());
        CHECK(budget->open_pipes() >= 4); // 1 MiB each at most
    }
    // Emptied, the pipes wait for the next tail: none is opened again for it.
    const std::size_t open = budget->open_pipes();
    CHECK(budget->spare_pipes() == open);
    SplicedTail again(budget, 100000);
    const std::string more = random_bytes(100000, 2);
    CHECK(through(again, s, more) == more);
    CHECK(budget->open_pipes() == open);
}

TEST_CASE("SplicedTail reads what it holds into memory", "[splice]")
{
    Sockets s;
    auto budget = std::make_shared<PipeBudget>(16);
    const std::string bytes = random_bytes((std::size_t{2} << 20) + 7, 3);
    SplicedTail tail(budget, bytes.size());
    fill(tail, s, bytes);
    std::string memory(tail.held(), '\0');
    REQUIRE(tail.read_into(memory.data()));
    CHECK(memory == bytes);
    CHECK(tail.held() == 0);
}

TEST_CASE("SplicedTail stops at the pipe budget, and a dropped tail gives its pipes back", "[splice][limits]")
{
    Sockets s;
    auto budget = std::make_shared<PipeBudget>(1);
    const std::string bytes = random_bytes(std::size_t{3} << 20, 4);
    std::size_t written = 0;
    {
        SplicedTail tail(budget, bytes.size());
        SpliceResult last{SpliceResult::Kind::would_block};
        const auto deadline = deadline_in_20s();
        while (last.kind != SpliceResult::Kind::no_pipe && std::chrono::steady_clock::now() < deadline) {
            if (written < bytes.size()) {
                s.feed(bytes, written);
            }
            last = tail.fill_from(s.in_fd(), 256 * 1024);
        }
        CHECK(last.kind == SpliceResult::Kind::no_pipe);
        CHECK(budget->open_pipes() == 1);
        CHECK(tail.held() > 0);
        CHECK(tail.held() <= std::size_t{1} << 20);
        // What it holds so far is the start of the stream.
        std::string memory(tail.held(), '\0');
        REQUIRE(tail.read_into(memory.data()));
        CHECK(memory == bytes.substr(0, memory.size()));
    }
    CHECK(budget->open_pipes() == budget->spare_pipes());
    // A tail dropped with bytes in its pipes closes them.
    {
        SplicedTail tail(budget, 1000);
        fill(tail, s, random_bytes(1000, 5));
    }
    CHECK(budget->open_pipes() == 0);
}

TEST_CASE("PipeBudget closes the spare pipes that nothing took for an interval", "[splice][limits]")
{
    using dpool::transport::Pipe;
    PipeBudget budget(8, 64 * 1024);
    const auto is_open = [](int fd) { return ::fcntl(fd, F_GETFD) != -1; };
    // Four pipes in use, then given back: four spares.
    std::vector<Pipe> taken;
    for (int i = 0; i < 4; ++i) {
        auto pipe = budget.take();
        REQUIRE(pipe);
        taken.push_back(std::move(*pipe));
    }
    std::vector<int> fds;
    for (auto& pipe : taken) {
        fds.push_back(pipe.read_end());
        fds.push_back(pipe.write_end());
        budget.give_back(std::move(pipe));
    }
    REQUIRE(budget.spare_pipes() == 4);
    // The first interval ends: none was spare for all of it (none existed at its start).
    CHECK(budget.close_unused_spares() == 0);
    CHECK(budget.open_pipes() == 4);
    // In the next one, two are taken and given back: only the two that stayed spare throughout are closed.
    for (int round = 0; round < 3; ++round) {
        auto a = budget.take();
        auto b = budget.take();
        REQUIRE(a);
        REQUIRE(b);
        budget.give_back(std::move(*a));
        budget.give_back(std::move(*b));
    }
    CHECK(budget.close_unused_spares() == 2);
    CHECK(budget.spare_pipes() == 2);
    CHECK(budget.open_pipes() == 2);
    CHECK(budget.counters().idle_closed == 2);
    // The two at the bottom of the stack (given back first, never taken since) are the ones closed.
    CHECK(std::none_of(fds.begin(), fds.begin() + 4, is_open));
    CHECK(std::all_of(fds.begin() + 4, fds.end(), is_open));
    // An interval with no packet at all: the rest go, and the budget opens new ones when asked.
    CHECK(budget.close_unused_spares() == 2);
    CHECK(budget.open_pipes() == 0);
    CHECK(std::none_of(fds.begin(), fds.end(), is_open));
    CHECK(budget.counters().idle_closed == 4);
    CHECK(budget.close_unused_spares() == 0);
    auto again = budget.take();
    REQUIRE(again);
    CHECK(is_open(again->read_end()));
    CHECK(budget.open_pipes() == 1);
}

TEST_CASE("SplicedTail reports the end of the stream", "[splice]")
{
    Sockets s;
    auto budget = std::make_shared<PipeBudget>(4);
    SplicedTail tail(budget, 1000);
    error_code ignored;
    s.in.near.shutdown(tcp::socket::shutdown_send, ignored);
    SpliceResult r{SpliceResult::Kind::would_block};
    for (int i = 0; i < 1000 && r.kind == SpliceResult::Kind::would_block; ++i) {
        r = tail.fill_from(s.in_fd(), 1000);
        pollfd p{s.in_fd(), POLLIN, 0};
        ::poll(&p, 1, 10);
    }
    CHECK(r.kind == SpliceResult::Kind::end_of_stream);
}

namespace {

// A pass-through packet: 'p', a REG_SEND control term, and `message` (encoded, with its version byte).
std::string packet_with(const dpool::test::EiTerm& message)
{
    dpool::test::EiTerm control;
    control.version().tuple(4).integer(6).pid("caller@127.0.0.1", 1, 0, 1).atom("").atom("distribute_pool");
    return "p" + control.str() + message.str();
}

} // namespace

TEST_CASE("trailing_binary_at finds the binary that ends a packet through the last elements of tuples", "[splice]")
{
    using dpool::protocol::trailing_binary_at;
    const std::string payload(5000, 'x');
    dpool::test::EiTerm nested;
    nested.version().tuple(3).atom("$gen_call").tuple(2).atom("a").atom("b");
    nested.tuple(6).atom("send").integer(1).integer(2).integer(3).atom("sink").binary(payload);
    const std::string packet = packet_with(nested);
    const auto at = trailing_binary_at(packet, packet.size());
    REQUIRE(at);
    CHECK(packet[*at] == static_cast<char>(109));
    CHECK(*at + 5 + payload.size() == packet.size());
    // From a prefix that ends anywhere after the binary's header.
    CHECK(trailing_binary_at(std::string_view(packet).substr(0, *at + 5), packet.size()) == at);
    CHECK(trailing_binary_at(std::string_view(packet).substr(0, *at + 4), packet.size()) == std::nullopt);
    // The binary must reach the end of the packet.
    CHECK(trailing_binary_at(packet, packet.size() + 1) == std::nullopt);

    dpool::test::EiTerm not_last;
    not_last.version().tuple(2).binary(payload).atom("after");
    const std::string other = packet_with(not_last);
    CHECK(trailing_binary_at(other, other.size()) == std::nullopt);

    dpool::test::EiTerm in_list;
    in_list.version().list(1).binary(payload).nil();
    const std::string listed = packet_with(in_list);
    CHECK(trailing_binary_at(listed, listed.size()) == std::nullopt);

    CHECK(trailing_binary_at("", 10) == std::nullopt);
    CHECK(trailing_binary_at(std::string_view(packet).substr(1), packet.size() - 1) == std::nullopt); // no 'p'
}
