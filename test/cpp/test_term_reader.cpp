#include "test_support.hpp"

#include <climits>
#include <cstring>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "protocol/term_reader.hpp"

using dpool::protocol::is_single_term;
using dpool::protocol::TermReader;
using dpool::test::atom_ext;
using dpool::test::be16;
using dpool::test::be32;
using dpool::test::byte;
using dpool::test::EiTerm;
using dpool::test::ExactCopy;
using dpool::test::small_atom_ext;
using dpool::test::small_atom_utf8_ext;

namespace {

// A term appended after the one under test: reading it back proves the first read stopped exactly at its end.
const std::string kMarker = byte(97) + byte(42); // SMALL_INTEGER_EXT 42

std::uint8_t first_tag(std::string_view term) { return static_cast<std::uint8_t>(term.front()); }

bool read_marker(TermReader& r) { return r.integer() == 42 && r.at_end(); }

// The reader did not move: the same bytes are still ahead of it.
void check_unmoved(const TermReader& r, std::string_view before)
{
    CHECK(r.rest().data() == before.data());
    CHECK(r.rest().size() == before.size());
}

// Length of the first term of `bytes` according to ei (the oracle for skip()).
int ei_term_length(std::string_view bytes)
{
    int index = 0;
    REQUIRE(ei_skip_term(bytes.data(), &index) == 0);
    return index;
}

erlang_fun closure_fun(long arity, const std::string& free_vars)
{
    erlang_fun f{};
    f.arity = arity;
    std::strcpy(f.module, "my_module");
    f.type = erlang_fun::EI_FUN_CLOSURE;
    for (int i = 0; i < 16; ++i) {
        f.u.closure.md5[i] = static_cast<char>(0xA0 + i);
    }
    f.u.closure.index = 3;
    f.u.closure.old_index = 4;
    f.u.closure.uniq = 5;
    f.u.closure.n_free_vars = 2;
    std::strcpy(f.u.closure.pid.node, "owner@host");
    f.u.closure.pid.num = 77;
    f.u.closure.pid.creation = 9;
    f.u.closure.free_var_len = static_cast<long>(free_vars.size());
    f.u.closure.free_vars = const_cast<char*>(free_vars.data());
    return f;
}

// 150 characters in 300 bytes: long enough for ATOM_UTF8_EXT, short enough for an atom.
std::string long_utf8_text()
{
    std::string text;
    for (int i = 0; i < 150; ++i) {
        text += "\xc3\xa9";
    }
    return text;
}

struct Sample {
    std::string name;
    std::uint8_t tag;
    std::string bytes; // one complete term, no version byte
};

// Every tag skip() accepts: all term tags of the external format but atom cache references, compressed and
// local terms.
const std::set<int> kSkippableTags = {70,  77,  88,  89,  90,  97,  98,  99,  100, 101, 102, 103, 104, 105, 106,
                                      107, 108, 109, 110, 111, 112, 113, 114, 115, 116, 117, 118, 119, 120};

// One term of every kind the reader can skip, each in the encoding named.
std::vector<Sample> every_kind_of_term()
{
    std::vector<Sample> samples;
    const auto add = [&](std::string name, std::uint8_t tag, std::string bytes) {
        samples.push_back({std::move(name), tag, std::move(bytes)});
    };
    const auto ei = [](auto&& build) {
        EiTerm t;
        build(t);
        return t.str();
    };
    const std::string free_vars = ei([](EiTerm& t) { t.atom("captured").integer(-7); });

    add("SMALL_INTEGER_EXT", 97, ei([](EiTerm& t) { t.integer(200); }));
    add("INTEGER_EXT", 98, ei([](EiTerm& t) { t.integer(-100000); }));
    add("SMALL_BIG_EXT", 110, ei([](EiTerm& t) { t.integer(LLONG_MIN); }));
    add("LARGE_BIG_EXT", 111, byte(111) + be32(300) + byte(1) + std::string(300, '\x5a'));
    add("NEW_FLOAT_EXT", 70, ei([](EiTerm& t) { t.floating(3.25); }));
    std::string old_float = "1.50000000000000000000e+00";
    old_float.resize(31, '\0');
    add("FLOAT_EXT", 99, byte(99) + old_float);
    add("ATOM_EXT", 100, atom_ext("latin1_atom"));
    add("SMALL_ATOM_EXT", 115, small_atom_ext("small"));
    add("SMALL_ATOM_UTF8_EXT", 119, ei([](EiTerm& t) { t.atom("ok"); }));
    add("ATOM_UTF8_EXT", 118, ei([](EiTerm& t) { t.atom(long_utf8_text()); }));
    add("NIL_EXT", 106, ei([](EiTerm& t) { t.nil(); }));
    add("STRING_EXT", 107, ei([](EiTerm& t) { t.string("hello, world"); }));
    add("BINARY_EXT", 109, ei([](EiTerm& t) { t.binary(std::string("\0\1\2bytes", 8)); }));
    add("BIT_BINARY_EXT", 77, ei([](EiTerm& t) { t.bitstring("\xff\xf0", 13); }));
    add("SMALL_TUPLE_EXT", 104, ei([](EiTerm& t) { t.tuple(2).atom("a").integer(1); }));
    add("LARGE_TUPLE_EXT", 105, ei([](EiTerm& t) {
            t.tuple(300);
            for (int i = 0; i < 300; ++i) {
                t.integer(i);
            }
        }));
    add("LIST_EXT proper", 108, ei([](EiTerm& t) { t.list(3).integer(1).atom("two").binary("3").nil(); }));
    add("LIST_EXT improper", 108, ei([](EiTerm& t) { t.list(1).integer(1).atom("tail"); }));
    add("LIST_EXT nested", 108, ei([](EiTerm& t) { t.list(2).list(1).nil().nil().list(1).integer(5).nil().nil(); }));
    add("MAP_EXT", 116, ei([](EiTerm& t) {
            t.map(2).atom("a").list(2).integer(1).tuple(1).atom("x").nil();
            t.binary("b").map(0);
        }));
    add("PID_EXT", 103, byte(103) + small_atom_utf8_ext("n@h") + be32(5) + be32(0) + byte(2));
    add("NEW_PID_EXT", 88, ei([](EiTerm& t) { t.pid("n@h", 5, 1, 0x01020304); }));
    add("PORT_EXT", 102, byte(102) + small_atom_utf8_ext("n@h") + be32(7) + byte(1));
    add("NEW_PORT_EXT", 89, ei([](EiTerm& t) { t.port("n@h", 7, 3); }));
    add("V4_PORT_EXT", 120, ei([](EiTerm& t) { t.port("n@h", 0x123456789ULL, 3); }));
    add("REFERENCE_EXT", 101, byte(101) + small_atom_utf8_ext("n@h") + be32(9) + byte(1));
    add("NEW_REFERENCE_EXT", 114,
        byte(114) + be16(3) + small_atom_utf8_ext("n@h") + byte(1) + be32(1) + be32(2) + be32(3));
    add("NEWER_REFERENCE_EXT", 90, ei([](EiTerm& t) { t.ref("n@h", 7, {1, 2, 3}); }));
    add("NEW_FUN_EXT", 112, ei([&](EiTerm& t) { t.fun(closure_fun(2, free_vars)); }));
    add("FUN_EXT", 117, ei([&](EiTerm& t) { t.fun(closure_fun(-1, free_vars)); }));
    add("EXPORT_EXT", 113, ei([](EiTerm& t) {
            erlang_fun f{};
            f.arity = 1;
            std::strcpy(f.module, "lists");
            f.type = erlang_fun::EI_FUN_EXPORT;
            f.u.exprt.func = const_cast<char*>("reverse");
            t.fun(f);
        }));
    return samples;
}

// Every sample inside one tuple: a term that exercises every tag and every kind of nesting.
std::string complex_term()
{
    const auto samples = every_kind_of_term();
    EiTerm t;
    t.tuple(static_cast<long>(samples.size()));
    for (const auto& s : samples) {
        t.raw(s.bytes);
    }
    return t.str();
}

std::string nested_one_tuples(std::size_t depth)
{
    std::string bytes;
    bytes.reserve(depth * 2 + 2);
    for (std::size_t i = 0; i < depth; ++i) {
        bytes += byte(104) + byte(1);
    }
    return bytes + byte(106);
}

std::string nested_one_element_lists(std::size_t depth)
{
    std::string bytes;
    bytes.reserve(depth * 6 + 1 + depth);
    for (std::size_t i = 0; i < depth; ++i) {
        bytes += byte(108) + be32(1);
    }
    bytes += byte(106); // the innermost element
    bytes += std::string(depth, '\x6a'); // every list's tail
    return bytes;
}

} // namespace

TEST_CASE("TermReader version, nil and peek_tag", "[term_reader]")
{
    const std::string bytes = byte(131) + byte(106);
    TermReader r(bytes);
    CHECK(r.peek_tag() == 131);
    CHECK_FALSE(r.nil());
    CHECK(r.version());
    CHECK_FALSE(r.version());
    CHECK(r.peek_tag() == 106);
    CHECK(r.nil());
    CHECK(r.at_end());
    CHECK_FALSE(r.peek_tag().has_value());
    CHECK_FALSE(r.nil());
}

TEST_CASE("TermReader tuple headers, small and large", "[term_reader]")
{
    for (long arity : {0L, 1L, 255L, 256L, 70000L}) {
        EiTerm t;
        t.tuple(arity).raw(kMarker);
        REQUIRE(first_tag(t.view()) == (arity < 256 ? 104 : 105));
        TermReader r(t.view());
        CHECK(r.tuple_header() == static_cast<std::uint32_t>(arity));
        CHECK(read_marker(r));
    }
}

TEST_CASE("TermReader map headers", "[term_reader]")
{
    EiTerm t;
    t.map(3).atom("k").integer(1).raw(kMarker);
    TermReader r(t.view());
    CHECK(r.map_header() == 3u);
    CHECK(r.atom() == "k");
    CHECK(r.integer() == 1);
    CHECK(read_marker(r));
}

TEST_CASE("TermReader list headers", "[term_reader]")
{
    EiTerm t;
    t.list(2).atom("a").integer(1).nil().raw(kMarker);
    TermReader r(t.view());
    CHECK(r.list_header() == 2u);
    CHECK(r.atom() == "a");
    CHECK(r.integer() == 1);
    CHECK(r.nil());
    CHECK(read_marker(r));

    EiTerm empty;
    empty.nil();
    TermReader e(empty.view());
    CHECK_FALSE(e.list_header().has_value());
    check_unmoved(e, empty.view());
    CHECK(e.nil());
}

TEST_CASE("TermReader atoms in all four encodings", "[term_reader]")
{
    const std::string long_text = std::string(300, 'L');
    const std::string latin1_text = "caf\xe9";
    const std::string utf8_text = "caf\xc3\xa9";

    SECTION("SMALL_ATOM_UTF8_EXT (ei's encoding of short atoms)")
    {
        EiTerm t;
        t.atom(utf8_text).raw(kMarker);
        REQUIRE(first_tag(t.view()) == 119);
        TermReader r(t.view());
        CHECK(r.atom() == utf8_text);
        CHECK(read_marker(r));
    }
    SECTION("ATOM_UTF8_EXT (atoms of 256 bytes and more)")
    {
        const std::string text = long_utf8_text();
        EiTerm t;
        t.atom(text).raw(kMarker);
        REQUIRE(first_tag(t.view()) == 118);
        TermReader r(t.view());
        CHECK(r.atom() == text);
        CHECK(read_marker(r));
    }
    SECTION("ATOM_EXT (latin-1, 16-bit length)")
    {
        const std::string bytes = atom_ext(latin1_text) + kMarker;
        TermReader r(bytes);
        CHECK(r.atom() == latin1_text);
        CHECK(read_marker(r));
    }
    SECTION("ATOM_EXT longer than 255 bytes")
    {
        const std::string bytes = atom_ext(long_text) + kMarker;
        TermReader r(bytes);
        CHECK(r.atom() == long_text);
        CHECK(read_marker(r));
    }
    SECTION("SMALL_ATOM_EXT (latin-1, 8-bit length)")
    {
        const std::string bytes = small_atom_ext(latin1_text) + kMarker;
        TermReader r(bytes);
        CHECK(r.atom() == latin1_text);
        CHECK(read_marker(r));
    }
    SECTION("the empty atom")
    {
        EiTerm t;
        t.atom("").raw(kMarker);
        TermReader r(t.view());
        CHECK(r.atom() == "");
        CHECK(read_marker(r));
    }
}

TEST_CASE("TermReader integers in every encoding that fits 64 bits", "[term_reader]")
{
    struct Case {
        long long value;
        std::uint8_t tag;
    };
    const Case cases[] = {
        {0, 97},
        {255, 97},
        {256, 98},
        {-1, 98},
        {(1 << 27) - 1, 98}, // ei writes INTEGER_EXT only for 28-bit values
        {-(1 << 27), 98},
        {INT32_MIN, 110},
        {INT32_MAX, 110},
        {static_cast<long long>(INT32_MAX) + 1, 110},
        {static_cast<long long>(INT32_MIN) - 1, 110},
        {1LL << 40, 110},
        {-(1LL << 40), 110},
        {LLONG_MAX, 110},
        {LLONG_MIN, 110},
        {LLONG_MIN + 1, 110},
    };
    for (const auto& c : cases) {
        CAPTURE(c.value);
        EiTerm t;
        t.integer(c.value).raw(kMarker);
        REQUIRE(first_tag(t.view()) == c.tag);
        TermReader r(t.view());
        CHECK(r.integer() == c.value);
        CHECK(read_marker(r));
    }
}

TEST_CASE("TermReader reads INTEGER_EXT as a signed 32-bit value", "[term_reader]")
{
    const std::pair<std::uint32_t, std::int64_t> cases[]
        = {{0x80000000u, INT32_MIN}, {0x7FFFFFFFu, INT32_MAX}, {0xFFFFFFFFu, -1}, {0x00000100u, 256}};
    for (const auto& [bits, value] : cases) {
        CAPTURE(value);
        const std::string bytes = byte(98) + be32(bits) + kMarker;
        TermReader r(bytes);
        CHECK(r.integer() == value);
        CHECK(read_marker(r));
    }
}

TEST_CASE("TermReader rejects integers beyond 64 bits and leaves the position", "[term_reader]")
{
    const auto check_rejected = [](const std::string& bytes) {
        TermReader r(bytes);
        CHECK_FALSE(r.integer().has_value());
        check_unmoved(r, bytes);
    };
    SECTION("2^63 (one more than int64 max), as ei writes it")
    {
        EiTerm t;
        t.unsigned_integer(1ULL << 63);
        check_rejected(t.str());
    }
    SECTION("uint64 max")
    {
        EiTerm t;
        t.unsigned_integer(ULLONG_MAX);
        check_rejected(t.str());
    }
    SECTION("-(2^63 + 1)") { check_rejected(byte(110) + byte(8) + byte(1) + std::string("\x01\0\0\0\0\0\0\x80", 8)); }
    SECTION("a 9-byte bignum, even one whose value would fit")
    {
        check_rejected(byte(110) + byte(9) + byte(0) + std::string("\x01\0\0\0\0\0\0\0\0", 9));
    }
    SECTION("a bignum whose digits are cut short")
    {
        check_rejected(byte(110) + byte(4) + byte(0) + std::string("\x01\x02", 2));
    }
}

TEST_CASE("TermReader accepts an empty bignum as zero", "[term_reader]")
{
    const std::string bytes = byte(110) + byte(0) + byte(0) + kMarker;
    TermReader r(bytes);
    CHECK(r.integer() == 0);
    CHECK(read_marker(r));
}

TEST_CASE("TermReader binaries", "[term_reader]")
{
    const std::string payload("\0\xff binary \0", 11);
    for (const std::string& bytes : {std::string(), payload, std::string(100000, '\x7f')}) {
        EiTerm t;
        t.binary(bytes).raw(kMarker);
        TermReader r(t.view());
        CHECK(r.binary() == bytes);
        CHECK(read_marker(r));
    }
}

TEST_CASE("TermReader pids in the new and the old encoding", "[term_reader]")
{
    SECTION("NEW_PID_EXT from ei")
    {
        EiTerm t;
        t.pid("node@host", 1234, 5, 0xDEADBEEF).raw(kMarker);
        REQUIRE(first_tag(t.view()) == 88);
        TermReader r(t.view());
        const auto pid = r.pid();
        REQUIRE(pid.has_value());
        CHECK(pid->node == "node@host");
        CHECK(pid->id == 1234);
        CHECK(pid->serial == 5);
        CHECK(pid->creation == 0xDEADBEEF);
        CHECK(pid->encoded == t.view().substr(0, t.view().size() - kMarker.size()));
        CHECK(read_marker(r));
    }
    SECTION("PID_EXT built by hand, node as ATOM_EXT")
    {
        const std::string term = byte(103) + atom_ext("old@host") + be32(77) + be32(2) + byte(3);
        const std::string bytes = term + kMarker;
        TermReader r(bytes);
        const auto pid = r.pid();
        REQUIRE(pid.has_value());
        CHECK(pid->node == "old@host");
        CHECK(pid->id == 77);
        CHECK(pid->serial == 2);
        CHECK(pid->creation == 3);
        CHECK(pid->encoded == term);
        CHECK(read_marker(r));
    }
    SECTION("a pid whose node is not an atom")
    {
        const std::string bytes = byte(88) + byte(97) + byte(1) + be32(1) + be32(0) + be32(1);
        TermReader r(bytes);
        CHECK_FALSE(r.pid().has_value());
        check_unmoved(r, bytes);
    }
}

TEST_CASE("TermReader references", "[term_reader]")
{
    SECTION("NEWER_REFERENCE_EXT from ei, three and five words")
    {
        for (const auto& ids : {std::vector<unsigned>{1, 2, 3}, std::vector<unsigned>{0x3ffff, 10, 20, 30, 40}}) {
            EiTerm t;
            t.ref("node@host", 0x11223344, ids).raw(kMarker);
            REQUIRE(first_tag(t.view()) == 90);
            TermReader r(t.view());
            const auto got = r.ref();
            REQUIRE(got.has_value());
            CHECK(got->node == "node@host");
            CHECK(got->creation == 0x11223344);
            REQUIRE(got->id_count == ids.size());
            for (std::size_t i = 0; i < ids.size(); ++i) {
                CHECK(got->ids[i] == ids[i]);
            }
            CHECK(got->encoded == t.view().substr(0, t.view().size() - kMarker.size()));
            CHECK(read_marker(r));
        }
    }
    SECTION("NEW_REFERENCE_EXT built by hand (8-bit creation)")
    {
        const std::string term = byte(114) + be16(3) + small_atom_ext("n@h") + byte(2) + be32(7) + be32(8) + be32(9);
        const std::string bytes = term + kMarker;
        TermReader r(bytes);
        const auto got = r.ref();
        REQUIRE(got.has_value());
        CHECK(got->node == "n@h");
        CHECK(got->creation == 2);
        CHECK(got->id_count == 3);
        CHECK(got->ids[0] == 7);
        CHECK(got->ids[1] == 8);
        CHECK(got->ids[2] == 9);
        CHECK(got->encoded == term);
        CHECK(read_marker(r));
    }
    SECTION("zero or more than five words are rejected")
    {
        for (std::uint16_t count : {std::uint16_t{0}, std::uint16_t{6}}) {
            std::string bytes = byte(90) + be16(count) + small_atom_ext("n@h") + be32(1);
            for (int i = 0; i < count; ++i) {
                bytes += be32(static_cast<std::uint32_t>(i));
            }
            TermReader r(bytes);
            CHECK_FALSE(r.ref().has_value());
            check_unmoved(r, bytes);
        }
    }
    SECTION("the old REFERENCE_EXT is not a reference this reader returns")
    {
        const std::string bytes = byte(101) + small_atom_ext("n@h") + be32(9) + byte(1);
        TermReader r(bytes);
        CHECK_FALSE(r.ref().has_value());
        check_unmoved(r, bytes);
    }
}

TEST_CASE("TermReader skip() steps over exactly one term of every kind", "[term_reader]")
{
    std::set<int> covered;
    for (const auto& sample : every_kind_of_term()) {
        CAPTURE(sample.name);
        REQUIRE(first_tag(sample.bytes) == sample.tag);
        covered.insert(sample.tag);
        const std::string bytes = sample.bytes + kMarker;
        CHECK(ei_term_length(bytes) == static_cast<int>(sample.bytes.size()));
        TermReader r(bytes);
        const auto term = r.skip();
        REQUIRE(term.has_value());
        CHECK(term->data() == bytes.data());
        CHECK(term->size() == sample.bytes.size());
        CHECK(read_marker(r));
        CHECK(is_single_term(sample.bytes));
        CHECK_FALSE(is_single_term(bytes));
    }
    CHECK(covered == kSkippableTags);
}

TEST_CASE("TermReader skip() steps over a term nesting every kind", "[term_reader]")
{
    const std::string term = complex_term();
    REQUIRE(ei_term_length(term) == static_cast<int>(term.size()));
    const std::string bytes = term + kMarker;
    TermReader r(bytes);
    const auto skipped = r.skip();
    REQUIRE(skipped.has_value());
    CHECK(skipped->size() == term.size());
    CHECK(read_marker(r));
}

TEST_CASE("TermReader skip() fails on every truncation of a valid term", "[term_reader][robustness]")
{
    const auto check_all_truncations = [](const std::string& term) {
        for (std::size_t len = 0; len < term.size(); ++len) {
            CAPTURE(len);
            const ExactCopy cut(std::string_view(term).substr(0, len));
            TermReader r(cut.view());
            REQUIRE_FALSE(r.skip().has_value());
            check_unmoved(r, cut.view());
            REQUIRE_FALSE(is_single_term(cut.view()));
        }
    };
    SECTION("each kind of term")
    {
        for (const auto& sample : every_kind_of_term()) {
            CAPTURE(sample.name);
            check_all_truncations(sample.bytes);
        }
    }
    SECTION("the term nesting every kind") { check_all_truncations(complex_term()); }
}

TEST_CASE("TermReader typed reads fail on every truncation and leave the position", "[term_reader][robustness]")
{
    EiTerm pid;
    pid.pid("node@host", 1, 2, 3);
    EiTerm ref;
    ref.ref("node@host", 3, {1, 2, 3});
    EiTerm big;
    big.integer(LLONG_MIN);
    EiTerm bin;
    bin.binary("some bytes");
    EiTerm atom;
    atom.atom("an_atom");
    EiTerm tuple;
    tuple.tuple(300);
    EiTerm map;
    map.map(2);

    const auto check_cut = [](std::string_view term, auto read) {
        for (std::size_t len = 0; len < term.size(); ++len) {
            CAPTURE(len);
            const ExactCopy cut(term.substr(0, len));
            TermReader r(cut.view());
            CHECK_FALSE(read(r));
            check_unmoved(r, cut.view());
        }
    };
    check_cut(pid.view(), [](TermReader& r) { return r.pid().has_value(); });
    check_cut(ref.view(), [](TermReader& r) { return r.ref().has_value(); });
    check_cut(big.view(), [](TermReader& r) { return r.integer().has_value(); });
    check_cut(bin.view(), [](TermReader& r) { return r.binary().has_value(); });
    check_cut(atom.view(), [](TermReader& r) { return r.atom().has_value(); });
    check_cut(tuple.view(), [](TermReader& r) { return r.tuple_header().has_value(); });
    check_cut(map.view(), [](TermReader& r) { return r.map_header().has_value(); });
    EiTerm list;
    list.list(3);
    check_cut(list.view(), [](TermReader& r) { return r.list_header().has_value(); });
}

TEST_CASE("TermReader reads of the wrong type leave the position unchanged", "[term_reader]")
{
    EiTerm t;
    t.atom("not_a_number");
    TermReader r(t.view());
    CHECK_FALSE(r.integer().has_value());
    CHECK_FALSE(r.tuple_header().has_value());
    CHECK_FALSE(r.map_header().has_value());
    CHECK_FALSE(r.list_header().has_value());
    CHECK_FALSE(r.binary().has_value());
    CHECK_FALSE(r.pid().has_value());
    CHECK_FALSE(r.ref().has_value());
    CHECK_FALSE(r.nil());
    CHECK_FALSE(r.version());
    check_unmoved(r, t.view());
    CHECK(r.atom() == "not_a_number");
    CHECK(r.at_end());
}

TEST_CASE("TermReader skip() rejects every unknown tag", "[term_reader][robustness]")
{
    int rejected = 0;
    for (int tag = 0; tag < 256; ++tag) {
        if (kSkippableTags.contains(tag)) {
            continue;
        }
        CAPTURE(tag);
        const std::string bytes = byte(static_cast<unsigned>(tag)) + std::string(64, '\0');
        TermReader r(bytes);
        CHECK_FALSE(r.skip().has_value());
        check_unmoved(r, bytes);
        ++rejected;
    }
    CHECK(rejected == 256 - 29);
    // The version byte, an atom cache reference and a compressed term in particular.
    for (unsigned tag : {131u, 82u, 80u}) {
        const std::string bytes = byte(tag) + std::string(64, '\x61');
        TermReader r(bytes);
        CHECK_FALSE(r.skip().has_value());
    }
}

TEST_CASE("TermReader skip() fails fast on element counts the input cannot hold", "[term_reader][robustness]")
{
    const std::string three_bytes = byte(97) + byte(1) + byte(106);
    SECTION("a list of 2^32-1 elements")
    {
        const ExactCopy input(byte(108) + be32(0xFFFFFFFF) + three_bytes);
        TermReader r(input.view());
        CHECK_FALSE(r.skip().has_value());
        check_unmoved(r, input.view());
    }
    SECTION("a large tuple of 2^32-1 elements")
    {
        const ExactCopy input(byte(105) + be32(0xFFFFFFFF) + three_bytes);
        TermReader r(input.view());
        CHECK_FALSE(r.skip().has_value());
    }
    SECTION("a map of 2^32-1 pairs")
    {
        const ExactCopy input(byte(116) + be32(0xFFFFFFFF) + three_bytes);
        TermReader r(input.view());
        CHECK_FALSE(r.skip().has_value());
    }
    SECTION("an old fun with 2^32-1 free variables")
    {
        const ExactCopy input(byte(117) + be32(0xFFFFFFFF) + three_bytes);
        TermReader r(input.view());
        CHECK_FALSE(r.skip().has_value());
    }
    SECTION("a binary longer than the input")
    {
        const ExactCopy input(byte(109) + be32(0xFFFFFFFF) + three_bytes);
        TermReader r(input.view());
        CHECK_FALSE(r.skip().has_value());
        CHECK_FALSE(r.binary().has_value());
    }
    SECTION("a new fun whose size is smaller than its size field")
    {
        const ExactCopy input(byte(112) + be32(3) + three_bytes);
        TermReader r(input.view());
        CHECK_FALSE(r.skip().has_value());
    }
}

TEST_CASE("TermReader skip() handles 100000 levels of nesting without recursion", "[term_reader][robustness]")
{
    constexpr std::size_t depth = 100000;
    SECTION("nested 1-tuples")
    {
        const std::string term = nested_one_tuples(depth);
        const std::string bytes = term + kMarker;
        TermReader r(bytes);
        const auto skipped = r.skip();
        REQUIRE(skipped.has_value());
        CHECK(skipped->size() == term.size());
        CHECK(read_marker(r));
        CHECK(is_single_term(term));
        CHECK_FALSE(is_single_term(std::string_view(term).substr(0, term.size() - 1)));
    }
    SECTION("nested one-element lists")
    {
        const std::string term = nested_one_element_lists(depth);
        TermReader r(term);
        const auto skipped = r.skip();
        REQUIRE(skipped.has_value());
        CHECK(skipped->size() == term.size());
        CHECK(r.at_end());
    }
    SECTION("the same nesting built by ei")
    {
        EiTerm t;
        for (std::size_t i = 0; i < depth; ++i) {
            t.tuple(1);
        }
        t.atom("bottom");
        CHECK(is_single_term(t.view()));
    }
}

TEST_CASE("TermReader never reads outside its input, whatever the bytes", "[term_reader][robustness]")
{
    const std::string original = complex_term();
    std::mt19937 random(7);
    int accepted = 0;
    for (int round = 0; round < 3000; ++round) {
        std::string mutated = original;
        const int edits = 1 + static_cast<int>(random() % 3);
        for (int e = 0; e < edits; ++e) {
            mutated[random() % mutated.size()] = static_cast<char>(random());
        }
        mutated.resize(random() % (mutated.size() + 1));
        const ExactCopy input(mutated);
        TermReader r(input.view());
        if (const auto term = r.skip()) {
            ++accepted;
            REQUIRE(term->data() == input.view().data());
            REQUIRE(term->size() <= input.view().size());
            REQUIRE(r.rest().size() == input.view().size() - term->size());
        } else {
            check_unmoved(r, input.view());
        }
    }
    // Not a property of the reader, only a sign the loop did what it meant to: most cuts make the term invalid.
    CHECK(accepted < 3000);
}
