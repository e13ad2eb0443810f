#include "test_support.hpp"

#include <climits>
#include <stdexcept>
#include <string>
#include <vector>

#include "protocol/term_reader.hpp"
#include "protocol/term_writer.hpp"
#include "util/byte_buffer.hpp"

using dpool::ByteBuffer;
using dpool::protocol::TermReader;
using dpool::protocol::TermWriter;
using dpool::test::EiTerm;

namespace {

// ei's decoders walk a buffer with an index; this keeps buffer and index together and checks each step.
class EiDecoder {
public:
    explicit EiDecoder(std::string_view bytes) : bytes_(bytes) { }

    void version()
    {
        int v = 0;
        REQUIRE(ei_decode_version(bytes_.data(), &index_, &v) == 0);
        CHECK(v == 131);
    }
    int tuple_header()
    {
        int arity = -1;
        REQUIRE(ei_decode_tuple_header(bytes_.data(), &index_, &arity) == 0);
        return arity;
    }
    int map_header()
    {
        int arity = -1;
        REQUIRE(ei_decode_map_header(bytes_.data(), &index_, &arity) == 0);
        return arity;
    }
    int list_header()
    {
        int arity = -1;
        REQUIRE(ei_decode_list_header(bytes_.data(), &index_, &arity) == 0);
        return arity;
    }
    std::string atom()
    {
        char text[MAXATOMLEN_UTF8] = {};
        erlang_char_encoding was{};
        REQUIRE(ei_decode_atom_as(bytes_.data(), &index_, text, sizeof text, ERLANG_UTF8, &was, nullptr) == 0);
        return text;
    }
    long long integer()
    {
        long long v = 0;
        REQUIRE(ei_decode_longlong(bytes_.data(), &index_, &v) == 0);
        return v;
    }
    std::string binary()
    {
        int type = 0;
        int size = 0;
        REQUIRE(ei_get_type(bytes_.data(), &index_, &type, &size) == 0);
        REQUIRE(type == ERL_BINARY_EXT);
        std::string out(static_cast<std::size_t>(size), '\0');
        long len = 0;
        REQUIRE(ei_decode_binary(bytes_.data(), &index_, out.data(), &len) == 0);
        CHECK(len == size);
        return out;
    }
    erlang_pid pid()
    {
        erlang_pid p{};
        REQUIRE(ei_decode_pid(bytes_.data(), &index_, &p) == 0);
        return p;
    }
    bool at_end() const { return static_cast<std::size_t>(index_) == bytes_.size(); }

private:
    std::string_view bytes_;
    int index_ = 0;
};

std::string binary_pattern(std::size_t n)
{
    std::string s(n, '\0');
    for (std::size_t i = 0; i < n; ++i) {
        s[i] = static_cast<char>((i * 131 + 7) % 256);
    }
    return s;
}

} // namespace

TEST_CASE("TermWriter writes a tuple that ei decodes", "[term_writer]")
{
    ByteBuffer buf;
    TermWriter w(buf);
    w.version();
    w.tuple(4);
    w.atom("ok");
    w.integer(INT64_MIN);
    w.integer(INT64_MAX);
    w.binary("bin");

    EiDecoder d(buf.view());
    d.version();
    CHECK(d.tuple_header() == 4);
    CHECK(d.atom() == "ok");
    CHECK(d.integer() == LLONG_MIN);
    CHECK(d.integer() == LLONG_MAX);
    CHECK(d.binary() == "bin");
    CHECK(d.at_end());
}

TEST_CASE("TermWriter integers round-trip through ei at every encoding boundary", "[term_writer]")
{
    const std::int64_t values[] = {0,
                                   1,
                                   255,
                                   256,
                                   -1,
                                   -256,
                                   (1 << 27) - 1,
                                   -(1 << 27),
                                   INT32_MAX,
                                   INT32_MIN,
                                   std::int64_t{INT32_MAX} + 1,
                                   std::int64_t{INT32_MIN} - 1,
                                   std::int64_t{1} << 56,
                                   INT64_MAX,
                                   INT64_MIN,
                                   INT64_MIN + 1};
    for (const std::int64_t v : values) {
        CAPTURE(v);
        ByteBuffer buf;
        TermWriter w(buf);
        w.integer(v);
        EiDecoder d(buf.view());
        CHECK(d.integer() == v);
        CHECK(d.at_end());
        TermReader r(buf.view());
        CHECK(r.integer() == v);
        CHECK(r.at_end());
    }
}

TEST_CASE("TermWriter atoms: empty, 255 characters, UTF-8", "[term_writer]")
{
    const std::string longest(255, 'z');
    const std::string utf8 = "\xc3\xa9t\xc3\xa9";
    ByteBuffer buf;
    TermWriter w(buf);
    w.atom("");
    w.atom(longest);
    w.atom(utf8);

    EiDecoder d(buf.view());
    CHECK(d.atom().empty());
    CHECK(d.atom() == longest);
    CHECK(d.atom() == utf8);
    CHECK(d.at_end());
}

TEST_CASE("TermWriter refuses a 256-character atom and leaves the buffer as it was", "[term_writer]")
{
    ByteBuffer buf;
    TermWriter w(buf);
    w.atom("before");
    const std::string before(buf.view());
    CHECK_THROWS_AS(w.atom(std::string(256, 'z')), std::invalid_argument);
    CHECK(buf.view() == before);
}

TEST_CASE("TermWriter binaries: empty and 1 MiB", "[term_writer]")
{
    const std::string large = binary_pattern(1 << 20);
    ByteBuffer buf;
    TermWriter w(buf);
    w.binary("");
    w.binary(large);

    EiDecoder d(buf.view());
    CHECK(d.binary().empty());
    const std::string decoded = d.binary();
    CHECK(decoded.size() == large.size());
    CHECK(decoded == large);
    CHECK(d.at_end());
}

TEST_CASE("TermWriter lists and maps", "[term_writer]")
{
    ByteBuffer buf;
    TermWriter w(buf);
    w.list(2);
    w.integer(1);
    w.map(1);
    w.atom("key");
    w.binary("value");
    w.nil();

    EiDecoder d(buf.view());
    CHECK(d.list_header() == 2);
    CHECK(d.integer() == 1);
    CHECK(d.map_header() == 1);
    CHECK(d.atom() == "key");
    CHECK(d.binary() == "value");
    CHECK(d.list_header() == 0); // the tail
    CHECK(d.at_end());
}

TEST_CASE("TermWriter raw() copies already encoded bytes as they are", "[term_writer]")
{
    EiTerm pid;
    pid.pid("somebody@host", 42, 1, 0xCAFE);
    ByteBuffer buf;
    TermWriter w(buf);
    w.tuple(2);
    w.raw(pid.view());
    w.atom("after");

    CHECK(buf.view().substr(2, pid.view().size()) == pid.view());
    EiDecoder d(buf.view());
    CHECK(d.tuple_header() == 2);
    const erlang_pid p = d.pid();
    CHECK(std::string(p.node) == "somebody@host");
    CHECK(p.num == 42);
    CHECK(p.serial == 1);
    CHECK(p.creation == 0xCAFE);
    CHECK(d.atom() == "after");
    CHECK(d.at_end());
}

TEST_CASE("TermWriter appends after existing bytes and survives many buffer growths", "[term_writer]")
{
    ByteBuffer buf;
    buf.append("prefix");
    TermWriter w(buf);
    CHECK(&w.buffer() == &buf);
    constexpr int count = 5000;
    w.list(count);
    for (int i = 0; i < count; ++i) {
        if (i % 2 == 0) {
            w.atom("atom_" + std::to_string(i));
        } else {
            w.integer(std::int64_t{i} * 1000003);
        }
    }
    w.nil();

    REQUIRE(buf.view().substr(0, 6) == "prefix");
    EiDecoder d(buf.view().substr(6));
    REQUIRE(d.list_header() == count);
    for (int i = 0; i < count; ++i) {
        if (i % 2 == 0) {
            REQUIRE(d.atom() == "atom_" + std::to_string(i));
        } else {
            REQUIRE(d.integer() == std::int64_t{i} * 1000003);
        }
    }
    CHECK(d.list_header() == 0);
    CHECK(d.at_end());
}
