#include "transport/packet_recorder.hpp"

#include <string>

#include "protocol/framing.hpp"

namespace dpool::transport {

namespace {

constexpr std::size_t kMaxPeerChars = 64;

bool plain(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
           c == '.' || c == '@';
}

} // namespace

void LinkRecording::record(std::string_view packet)
{
    char length[protocol::kFrameLengthBytes];
    protocol::put_frame_length(length, static_cast<std::uint32_t>(packet.size()));
    out_.write(length, sizeof length);
    out_.write(packet.data(), static_cast<std::streamsize>(packet.size()));
    out_.flush();
}

PacketRecorder::PacketRecorder(std::filesystem::path dir) : dir_(std::move(dir))
{
    std::filesystem::create_directories(dir_);
}

std::unique_ptr<LinkRecording> PacketRecorder::open(std::string_view peer_node)
{
    std::string name;
    for (const char c : peer_node.substr(0, kMaxPeerChars)) {
        name.push_back(plain(c) ? c : '_');
    }
    name += "." + std::to_string(++links_) + ".frames";
    return std::make_unique<LinkRecording>(dir_ / name);
}

std::unique_ptr<LinkRecording> PacketRecorder::open_handshake(std::string_view side)
{
    const std::string name = "handshake-" + std::string(side) + "." + std::to_string(++links_) + ".frames";
    return std::make_unique<LinkRecording>(dir_ / name);
}

} // namespace dpool::transport
