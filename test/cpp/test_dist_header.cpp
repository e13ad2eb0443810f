#include "test_support.hpp"

#include <functional>
#include <string>
#include <vector>

#include "protocol/control.hpp"
#include "protocol/dist_header.hpp"
#include "transport/handshake.hpp"
#include "util/byte_buffer.hpp"

using dpool::ByteBuffer;
using dpool::protocol::AtomCacheIn;
using dpool::protocol::AtomCacheOut;
using dpool::protocol::AtomRef;
using dpool::protocol::normalize_packet;
using dpool::protocol::write_dist_header;
using dpool::test::EiTerm;

namespace {

std::string bytes(std::initializer_list<int> values)
{
    std::string s;
    for (const int v : values) {
        s.push_back(static_cast<char>(v));
    }
    return s;
}

std::string small_atom(std::string_view text)
{
    return bytes({119, static_cast<int>(text.size())}) + std::string(text);
}

std::string cache_ref(int i) { return bytes({82, i}); }

// A pid's fields after its node atom: id, serial, creation.
const std::string kPidTail = bytes({0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 3});

std::string header(const std::vector<AtomRef>& refs)
{
    ByteBuffer out;
    write_dist_header(out, refs);
    return std::string(out.view());
}

std::string normalized(std::string_view packet, AtomCacheIn& cache)
{
    ByteBuffer out;
    REQUIRE(normalize_packet(packet, cache, out));
    return std::string(out.view());
}

} // namespace

TEST_CASE("write_dist_header lays out flags and references as erl_ext_dist says", "[dist_header]")
{
    // No reference: 131, 68, 0 and nothing else.
    CHECK(header({}) == bytes({131, 68, 0}));
    // Two references: flag byte 0 holds ref 0 (low half) and ref 1 (high half), flag byte 1 the LongAtoms half.
    // Ref 0: entry 5 (segment 0), new; ref 1: entry 300 (segment 1, internal 44), already sent.
    const std::vector<AtomRef> two{{5, "sink", true}, {300, "node@host", false}};
    CHECK(header(two) == bytes({131, 68, 2, 0x8 | (0x1 << 4), 0x0, 5, 4}) + "sink" + bytes({44}));
    // One long atom: LongAtoms (the half byte after ref 0's, i.e. the high half of byte 0) and 2-byte lengths.
    const std::string long_text(300, 'a');
    const std::vector<AtomRef> one{{2047, long_text, true}};
    CHECK(header(one) == bytes({131, 68, 1, 0x8 | 0x7 | (0x1 << 4), 0xFF, 0x01, 0x2C}) + long_text);
}

TEST_CASE("AtomCacheOut sends an atom as text only when its entry holds something else", "[dist_header]")
{
    AtomCacheOut out;
    CHECK(out.define(3, "a"));
    CHECK_FALSE(out.define(3, "a"));
    const auto changes = out.changes();
    CHECK(out.define(3, "b")); // another atom took the entry
    CHECK(out.changes() > changes);
    CHECK(out.define(3, "a"));
    CHECK(out.define(4, "")); // the empty atom is an atom too: new the first time
    CHECK_FALSE(out.define(4, ""));
}

TEST_CASE("normalize_packet turns a packet with cache references into the pass-through form", "[dist_header]")
{
    AtomCacheIn cache;
    // REG_SEND {6, Pid, '', dpool_sink} and {dpool_sink, <<"abc">>}, the node and the name as new entries.
    const std::string control_refs = bytes({104, 4, 97, 6, 88}) + cache_ref(1) + kPidTail + small_atom("") + cache_ref(0);
    const std::string message_refs = bytes({104, 2}) + cache_ref(0) + bytes({109, 0, 0, 0, 3}) + "abc";
    const std::vector<AtomRef> defining{{5, "dpool_sink", true}, {300, "node@host", true}};
    const std::string first = header(defining) + control_refs + message_refs;

    const std::string control = bytes({104, 4, 97, 6, 88}) + small_atom("node@host") + kPidTail + small_atom("") +
                                small_atom("dpool_sink");
    const std::string message = bytes({104, 2}) + small_atom("dpool_sink") + bytes({109, 0, 0, 0, 3}) + "abc";
    const std::string expected = "p" + bytes({131}) + control + bytes({131}) + message;
    CHECK(normalized(first, cache) == expected);

    // The next packet refers to the same entries without their text: the cache supplies it.
    const std::vector<AtomRef> cached{{5, "dpool_sink", false}, {300, "node@host", false}};
    CHECK(normalized(header(cached) + control_refs + message_refs, cache) == expected);

    // What comes out parses as a control message with its payload.
    const std::string out = normalized(header(cached) + control_refs + message_refs, cache);
    const auto parsed = dpool::protocol::parse_packet(out);
    REQUIRE(parsed.has_value());
    CHECK(parsed->op == dpool::protocol::ControlOp::reg_send);
    CHECK(parsed->to == small_atom("dpool_sink"));
    CHECK(parsed->payload == bytes({131}) + message);
}

TEST_CASE("normalize_packet keeps a packet without references and without a message", "[dist_header]")
{
    AtomCacheIn cache;
    EiTerm control;
    control.tuple(3).integer(2).atom("").pid("t@h", 1, 0, 5);
    std::string packet = bytes({131, 68, 0}) + control.str();
    CHECK(normalized(packet, cache) == "p" + bytes({131}) + control.str());
}

TEST_CASE("normalize_packet rewrites references nested anywhere in a term", "[dist_header]")
{
    AtomCacheIn cache;
    const std::vector<AtomRef> refs{{1, "ok", true}, {2, "t@h", true}};
    // {ok, [ok, #{ok => ok}], Ref, <<1,2>>, 12345678901234567890, "ab", fun m:f/1} with ok and the
    // reference's node as cache references; a list with a non-nil tail too.
    const std::string ref_tail = bytes({0, 0, 0, 9, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3});
    const std::string big = bytes({110, 8, 0, 0xD2, 0x0A, 0x1F, 0xEB, 0x8C, 0xA9, 0x54, 0xAB});
    const auto term = [&](const std::function<std::string(std::string_view)>& atom) {
        return bytes({104, 7}) + atom("ok") + bytes({108, 0, 0, 0, 2}) + atom("ok") + bytes({116, 0, 0, 0, 1}) +
               atom("ok") + atom("ok") + bytes({106}) + bytes({90, 0, 3}) + atom("t@h") + ref_tail +
               bytes({109, 0, 0, 0, 2, 1, 2}) + big + bytes({107, 0, 2, 'a', 'b'}) + bytes({113}) + small_atom("m") +
               small_atom("f") + bytes({97, 1});
    };
    const auto by_ref = [](std::string_view a) { return cache_ref(a == "ok" ? 0 : 1); };
    const auto plain = [](std::string_view a) { return small_atom(a); };
    const std::string control = bytes({104, 2, 97, 2}) + small_atom(""); // a control term of our own making
    const std::string packet = header(refs) + bytes({104, 2, 97, 2}) + small_atom("") + term(by_ref);
    CHECK(normalized(packet, cache) == "p" + bytes({131}) + control + bytes({131}) + term(plain));
    // An improper list: elements, then a tail that is not nil.
    const std::string improper = header({{1, "ok", false}}) + control + bytes({108, 0, 0, 0, 1}) + cache_ref(0) +
                                 cache_ref(0);
    CHECK(normalized(improper, cache) ==
          "p" + bytes({131}) + control + bytes({131}) + bytes({108, 0, 0, 0, 1}) + small_atom("ok") + small_atom("ok"));
}

TEST_CASE("normalize_packet fixes the size of a fun whose atoms were references", "[dist_header]")
{
    AtomCacheIn cache;
    const std::vector<AtomRef> refs{{7, "mod", true}, {8, "n@h", true}};
    // NEW_FUN_EXT: Size, Arity, Uniq(16), Index, NumFree = 1, Module, OldIndex, OldUniq, Pid, one free variable.
    const auto fun = [&](const std::string& module, const std::string& node) {
        const std::string body = bytes({1}) + std::string(16, 'u') + bytes({0, 0, 0, 4}) + bytes({0, 0, 0, 1}) +
                                 module + bytes({97, 0}) + bytes({97, 0}) + bytes({88}) + node + kPidTail +
                                 bytes({97, 42});
        const auto size = static_cast<int>(body.size() + 4);
        return bytes({112, 0, 0, size >> 8, size & 0xFF}) + body;
    };
    const std::string control = bytes({104, 1, 97, 2});
    const std::string packet = header(refs) + control + fun(cache_ref(0), cache_ref(1));
    CHECK(normalized(packet, cache) ==
          "p" + bytes({131}) + control + bytes({131}) + fun(small_atom("mod"), small_atom("n@h")));
}

TEST_CASE("normalize_packet refuses malformed packets and leaves the cache alone", "[dist_header]")
{
    AtomCacheIn cache;
    ByteBuffer out;
    const std::string control = bytes({104, 2, 97, 2}) + cache_ref(0);
    // A reference to an entry never defined.
    CHECK_FALSE(normalize_packet(header({{9, "x", false}}) + control, cache, out));
    // A reference index beyond the header's references.
    CHECK_FALSE(normalize_packet(header({{9, "x", true}}) + bytes({104, 2, 97, 2}) + cache_ref(1), cache, out));
    CHECK(cache.find(9) == nullptr); // the entry defined by the refused packet did not stick
    // Truncated: in the header, in a term.
    const std::string good = header({{9, "x", true}}) + control;
    for (std::size_t cut = 1; cut < good.size(); ++cut) {
        CHECK_FALSE(normalize_packet(std::string_view(good).substr(0, cut), cache, out));
    }
    // Not a distribution header; trailing bytes after the message; a forged huge count.
    CHECK_FALSE(normalize_packet("p" + control, cache, out));
    CHECK_FALSE(normalize_packet(good + bytes({106}) + bytes({106}), cache, out));
    CHECK_FALSE(normalize_packet(header({}) + bytes({108, 0xFF, 0xFF, 0xFF, 0xFF, 106}), cache, out));
    CHECK(out.empty());
    CHECK(cache.find(9) == nullptr);
    REQUIRE(normalize_packet(good, cache, out));
    REQUIRE(cache.find(9) != nullptr);
    CHECK(*cache.find(9) == "x");
}
