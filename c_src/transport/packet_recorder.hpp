#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string_view>

namespace dpool::transport {

// One link's recording: every packet it received, as it came (distribution header included), framed as on the
// wire (4-byte length, then the packet); ticks are left out. Flushed packet by packet, so a C-node that is
// killed leaves whole packets behind.
class LinkRecording {
public:
    explicit LinkRecording(const std::filesystem::path& file) : out_(file, std::ios::binary | std::ios::trunc) {}
    void record(std::string_view packet);

private:
    std::ofstream out_;
};

// A test aid, off unless the C-node is started with --record-packets DIR: the packets every link receives go
// to a file of that link in DIR. The seed corpora of the fuzz targets (test/fuzz/) are recorded this way from
// real callers and targets. The writes are plain file writes on the event loop, made for tests only.
class PacketRecorder {
public:
    // Creates `dir` if it is missing; throws std::filesystem::filesystem_error when it cannot.
    explicit PacketRecorder(std::filesystem::path dir);
    // The recording of a new link to `peer_node` (a name from outside: only its plain characters are kept
    // in the file name, <peer>.<n>.frames).
    std::unique_ptr<LinkRecording> open(std::string_view peer_node);
    // The recording of one handshake's messages as the peer sent them (their bodies, framed as packets are),
    // side "accept" or "connect": handshake-<side>.<n>.frames. No node name has that form (it has no '@').
    std::unique_ptr<LinkRecording> open_handshake(std::string_view side);

private:
    std::filesystem::path dir_;
    std::uint64_t links_ = 0;
};

} // namespace dpool::transport
