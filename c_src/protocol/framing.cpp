#include "protocol/framing.hpp"

namespace dpool::protocol {

std::uint32_t frame_length(const char* p)
{
    const auto* u = reinterpret_cast<const unsigned char*>(p);
    return (std::uint32_t{u[0]} << 24) | (std::uint32_t{u[1]} << 16) | (std::uint32_t{u[2]} << 8) | u[3];
}

void put_frame_length(char* p, std::uint32_t length)
{
    p[0] = static_cast<char>(length >> 24);
    p[1] = static_cast<char>(length >> 16);
    p[2] = static_cast<char>(length >> 8);
    p[3] = static_cast<char>(length);
}

Frame next_frame(std::string_view in, std::size_t max_packet_bytes)
{
    if (in.size() < kFrameLengthBytes) {
        return {};
    }
    const std::uint32_t length = frame_length(in.data());
    if (length == 0) {
        return Frame{Frame::Kind::tick, {}, kFrameLengthBytes};
    }
    if (length > max_packet_bytes) {
        return Frame{Frame::Kind::too_large, {}, 0};
    }
    if (in.size() - kFrameLengthBytes < length) {
        return {};
    }
    return Frame{Frame::Kind::packet, in.substr(kFrameLengthBytes, length), kFrameLengthBytes + length};
}

} // namespace dpool::protocol
