#include "protocol/framing.hpp"

namespace dpool::protocol {

std::uint32_t frame_length(const char* p)
{
    const auto* u = reinterpret_cast<const unsigned char*>(p);
    return (std::uint32_t{u[0]} << 24) | (std::uint32_t{u[1]} << 16) | (std::uint32_t{u[2]} << 8) | u[3];
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
