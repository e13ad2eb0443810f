#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lane_names.hpp"
#include "options.hpp"
#include "transport/acceptor.hpp"
#include "transport/handshake_gate.hpp"
#include "transport/epmd.hpp"
#include "util/asio.hpp"

namespace dpool {

// The C-node's ways in (lane_names.hpp): per lane one listening socket, all on the same address, one epmd
// registration and one handshake identity. Lane 0 is the C-node's own name.
class LaneSet {
public:
    using OnConnected = std::function<void(std::size_t lane, transport::DistStream stream, std::string peer_node)>;
    // Whether a peer that named itself in a lane's handshake, connecting from `from`, may go on
    // (transport::AdmitPeer, per lane).
    using AdmitCaller = std::function<std::optional<transport::PeerRefusal>(
        std::size_t lane, std::string_view peer_node, const asio::ip::address& from)>;

    // Opens every listening socket: lane 0 on `port`, the others on free ports. Throws system_error.
    LaneSet(asio::io_context& io, const Options& options, const asio::ip::address& address, std::uint16_t port);

    std::size_t size() const { return lanes_.size(); }
    const LaneName& name(std::size_t lane) const { return lanes_.at(lane)->name; }
    std::uint16_t port(std::size_t lane) const { return lanes_.at(lane)->acceptor.port(); }

    // Publishes every lane in epmd, in order, and gives their creations. Throws as epmd_register does (a lane
    // published before the failure stays so until stop()).
    asio::awaitable<std::vector<std::uint32_t>> publish();
    // Accepts on every lane, each with its own name and creation in the handshake; `admit` decides on each
    // peer once it has named itself.
    // `recorder`: --record-packets (a test aid; nullptr: none), where each handshake's messages go.
    void start(const OnConnected& on_connected, const AdmitCaller& admit,
               transport::PacketRecorder* recorder = nullptr);
    // What the lanes have seen of handshakes so far.
    transport::HandshakeCounters handshake_counters() const;
    // Stops accepting and unpublishes every lane.
    void stop();

private:
    struct Lane {
        Lane(LaneName lane_name, transport::Acceptor lane_acceptor)
            : name(std::move(lane_name)), acceptor(std::move(lane_acceptor))
        {
        }
        LaneName name;
        transport::Acceptor acceptor;
        std::optional<transport::EpmdRegistration> registration;
    };

    std::string host_;
    transport::TlsContext tls_;
    std::vector<std::unique_ptr<Lane>> lanes_;
    // Shared by the lanes: one bound per source address across all of them.
    transport::HandshakeGate gate_;
    transport::HandshakeCounters counters_;
};

} // namespace dpool
