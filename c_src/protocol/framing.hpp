#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace dpool::protocol {

// The framing of a distribution connection after its handshake: every packet comes after its length, 4 bytes
// big-endian; a length of 0 is a tick. Pure, so that the fuzz target of test/fuzz/ reads a stream exactly as
// transport::DistLink does.
inline constexpr std::size_t kFrameLengthBytes = 4;

// The length announced by the 4 bytes at `p`.
std::uint32_t frame_length(const char* p);
// Writes `length` as the 4 bytes at `p`.
void put_frame_length(char* p, std::uint32_t length);

struct Frame {
    enum class Kind : std::uint8_t {
        incomplete, // more bytes are needed (or `in` is empty)
        tick,       // a length of 0
        packet,     // `packet` is complete in `in`
        too_large,  // the length is over the limit: the peer is not to be read further
    };
    Kind kind = Kind::incomplete;
    std::string_view packet;
    std::size_t size = 0; // the bytes of `in` the frame takes, length included (tick and packet)
};

// The first frame of `in`. A length over `max_packet_bytes` is too_large as soon as it is read, before the
// packet came, so that a peer cannot make the reader wait for (or make room for) more than the limit.
Frame next_frame(std::string_view in, std::size_t max_packet_bytes);

} // namespace dpool::protocol
