#include "test_support.hpp"

#include <string>

#include "protocol/framing.hpp"

using dpool::protocol::Frame;
using dpool::protocol::next_frame;

namespace {

std::string framed(const std::string& packet)
{
    std::string length(dpool::protocol::kFrameLengthBytes, '\0');
    dpool::protocol::put_frame_length(length.data(), static_cast<std::uint32_t>(packet.size()));
    return length + packet;
}

} // namespace

TEST_CASE("next_frame: a whole packet, then what follows it", "[framing]")
{
    const std::string stream = framed("p\x83j") + framed("xy");
    const Frame first = next_frame(stream, 100);
    REQUIRE(first.kind == Frame::Kind::packet);
    CHECK(first.packet == "p\x83j");
    CHECK(first.size == 7);
    const Frame second = next_frame(std::string_view(stream).substr(first.size), 100);
    REQUIRE(second.kind == Frame::Kind::packet);
    CHECK(second.packet == "xy");
}

TEST_CASE("next_frame: a length of 0 is a tick", "[framing]")
{
    const std::string tick(4, '\0');
    const Frame f = next_frame(tick, 100);
    CHECK(f.kind == Frame::Kind::tick);
    CHECK(f.size == 4);
}

TEST_CASE("next_frame: incomplete until the length and the whole packet are in", "[framing]")
{
    const std::string stream = framed("hello");
    for (std::size_t n = 0; n < stream.size(); ++n) {
        CHECK(next_frame(std::string_view(stream).substr(0, n), 100).kind == Frame::Kind::incomplete);
    }
    CHECK(next_frame(stream, 100).kind == Frame::Kind::packet);
}

TEST_CASE("next_frame: a length over the limit is refused before the packet came", "[framing]")
{
    const std::string head = framed(std::string(101, 'x')).substr(0, 4);
    CHECK(next_frame(head, 100).kind == Frame::Kind::too_large);
    CHECK(next_frame(framed(std::string(100, 'x')), 100).kind == Frame::Kind::packet);
    const std::string huge = "\xff\xff\xff\xff";
    CHECK(next_frame(huge, std::size_t{1} << 30).kind == Frame::Kind::too_large);
}
