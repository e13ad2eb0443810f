#include "test_support.hpp"

#include <random>
#include <set>
#include <stdexcept>
#include <string>

#include "protocol/node_identity.hpp"
#include "protocol/term_reader.hpp"
#include "protocol/term_writer.hpp"
#include "util/byte_buffer.hpp"

using dpool::ByteBuffer;
using dpool::protocol::NodeIdentity;
using dpool::protocol::parse_node_name;
using dpool::protocol::RefView;
using dpool::protocol::TermReader;
using dpool::protocol::TermWriter;

namespace {

constexpr std::uint32_t kCreation = 0x5EED0001;
constexpr std::uint32_t kSalt = 0xA5A5F00D;

std::string encoded_ref(const NodeIdentity& identity, std::uint64_t counter)
{
    ByteBuffer buf;
    TermWriter w(buf);
    identity.write_ref(w, counter);
    return std::string(buf.view());
}

RefView read_ref(std::string_view bytes)
{
    TermReader r(bytes);
    const auto ref = r.ref();
    REQUIRE(ref.has_value());
    REQUIRE(r.at_end());
    return *ref;
}

erlang_ref ei_ref(std::string_view bytes)
{
    erlang_ref ref{};
    int index = 0;
    REQUIRE(ei_decode_ref(bytes.data(), &index, &ref) == 0);
    REQUIRE(static_cast<std::size_t>(index) == bytes.size());
    return ref;
}

} // namespace

TEST_CASE("NodeIdentity keeps its name and creation", "[node_identity]")
{
    const NodeIdentity id("dpool@localhost", kCreation, kSalt);
    CHECK(id.node_name() == "dpool@localhost");
    CHECK(id.creation() == kCreation);
}

TEST_CASE("NodeIdentity self_pid decodes to its node and creation", "[node_identity]")
{
    const NodeIdentity id("dpool_1_2@host.example", kCreation, kSalt);
    erlang_pid pid{};
    int index = 0;
    REQUIRE(ei_decode_pid(id.self_pid().data(), &index, &pid) == 0);
    CHECK(static_cast<std::size_t>(index) == id.self_pid().size());
    CHECK(std::string(pid.node) == "dpool_1_2@host.example");
    CHECK(pid.creation == kCreation);

    TermReader r(id.self_pid());
    const auto view = r.pid();
    REQUIRE(view.has_value());
    CHECK(view->node == "dpool_1_2@host.example");
    CHECK(view->creation == kCreation);
    CHECK(view->id == pid.num);
    CHECK(r.at_end());
}

TEST_CASE("NodeIdentity write_ref mints references of its node that ref_number reads back", "[node_identity]")
{
    const NodeIdentity id("dpool@localhost", kCreation, kSalt);
    const std::uint64_t counters[]
        = {0, 1, (1u << 18) - 1, 1u << 18, (1u << 18) + 1, 0xFFFFFFFFull, 1ull << 32, 1ull << 40, (1ull << 50) - 1};
    for (const std::uint64_t counter : counters) {
        CAPTURE(counter);
        const std::string bytes = encoded_ref(id, counter);
        const erlang_ref decoded = ei_ref(bytes);
        CHECK(decoded.len == 3);
        CHECK(std::string(decoded.node) == "dpool@localhost");
        CHECK(decoded.creation == kCreation);
        CHECK(decoded.n[0] <= (1u << 18) - 1); // ERTS keeps 18 bits in the first word
        CHECK(decoded.n[2] == kSalt);
        CHECK(id.ref_number(read_ref(bytes)) == counter);
    }
}

TEST_CASE("NodeIdentity references are distinct for distinct counters", "[node_identity]")
{
    const NodeIdentity id("dpool@localhost", kCreation, kSalt);
    std::mt19937_64 random(99);
    std::set<std::string> seen;
    for (int i = 0; i < 20000; ++i) {
        const std::uint64_t counter = i < 10000 ? static_cast<std::uint64_t>(i) : random() >> 14;
        const std::string bytes = encoded_ref(id, counter);
        REQUIRE(id.ref_number(read_ref(bytes)) == counter);
        seen.insert(bytes);
    }
    CHECK(seen.size() == 20000);
}

TEST_CASE("NodeIdentity write_ref appends to what the buffer holds", "[node_identity]")
{
    const NodeIdentity id("dpool@localhost", kCreation, kSalt);
    ByteBuffer buf;
    TermWriter w(buf);
    w.tuple(3);
    id.write_ref(w, 7);
    id.write_ref(w, 8);
    w.atom("end");

    TermReader r(buf.view());
    CHECK(r.tuple_header() == 3u);
    const auto first = r.ref();
    const auto second = r.ref();
    REQUIRE(first.has_value());
    REQUIRE(second.has_value());
    CHECK(id.ref_number(*first) == 7u);
    CHECK(id.ref_number(*second) == 8u);
    CHECK(r.atom() == "end");
    CHECK(r.at_end());
}

TEST_CASE("NodeIdentity rejects references that are not its own", "[node_identity]")
{
    const NodeIdentity id("dpool@localhost", kCreation, kSalt);
    const std::string ours = encoded_ref(id, 12345);
    REQUIRE(id.ref_number(read_ref(ours)) == 12345u);

    SECTION("another node")
    {
        const NodeIdentity other("other@localhost", kCreation, kSalt);
        CHECK_FALSE(id.ref_number(read_ref(encoded_ref(other, 12345))).has_value());
    }
    SECTION("another creation of the same node")
    {
        const NodeIdentity restarted("dpool@localhost", kCreation + 1, kSalt);
        CHECK_FALSE(id.ref_number(read_ref(encoded_ref(restarted, 12345))).has_value());
    }
    SECTION("another salt")
    {
        const NodeIdentity salted("dpool@localhost", kCreation, kSalt ^ 1);
        CHECK_FALSE(id.ref_number(read_ref(encoded_ref(salted, 12345))).has_value());
    }
    SECTION("a reference of another length")
    {
        dpool::test::EiTerm t;
        t.ref("dpool@localhost", kCreation, {12345, 0, kSalt, 0});
        CHECK_FALSE(id.ref_number(read_ref(t.view())).has_value());
    }
    SECTION("a first word above 18 bits")
    {
        dpool::test::EiTerm t;
        t.ref("dpool@localhost", kCreation, {1u << 18, 0, kSalt});
        CHECK_FALSE(id.ref_number(read_ref(t.view())).has_value());
    }
}

TEST_CASE("NodeIdentity refuses a node name ei cannot hold", "[node_identity]")
{
    CHECK_THROWS_AS(NodeIdentity(std::string(MAXATOMLEN_UTF8, 'n'), kCreation, kSalt), std::invalid_argument);
}

TEST_CASE("parse_node_name accepts alive@host", "[node_identity]")
{
    const auto parts = parse_node_name("dpool_1-x@127.0.0.1");
    REQUIRE(parts.has_value());
    CHECK(parts->alive == "dpool_1-x");
    CHECK(parts->host == "127.0.0.1");

    CHECK(parse_node_name("a@b").has_value());
    CHECK(parse_node_name("Node9@host.example.com").has_value());
    CHECK(parse_node_name("n@::1").has_value());
    CHECK(parse_node_name("n@my_host-2").has_value());

    const std::string longest = "a@" + std::string(253, 'h');
    REQUIRE(longest.size() == 255);
    CHECK(parse_node_name(longest).has_value());
}

TEST_CASE("parse_node_name rejects malformed names", "[node_identity]")
{
    const std::string too_long = "a@" + std::string(254, 'h');
    REQUIRE(too_long.size() == 256);
    for (const std::string& name :
         {std::string(), std::string("nohost"), std::string("a@b@c"), std::string("@host"), std::string("alive@"),
          std::string("@"), std::string("bad name@h"), std::string("a.b@h"), std::string("a@h h"), std::string("a@h/x"),
          std::string("caf\xc3\xa9@h"), std::string("a\0b@h", 5), too_long}) {
        CAPTURE(name);
        CHECK_FALSE(parse_node_name(name).has_value());
    }
}
