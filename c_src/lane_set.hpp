#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "lane_names.hpp"
#include "options.hpp"
#include "transport/acceptor.hpp"
#include "transport/epmd.hpp"
#include "util/asio.hpp"

namespace dpool {

// The C-node's ways in (lane_names.hpp): per lane one listening socket, all on the same address, one epmd
// registration and one handshake identity. Lane 0 is the C-node's own name.
class LaneSet {
public:
    using OnConnected = std::function<void(std::size_t lane, tcp::socket socket, std::string peer_node)>;

    // Opens every listening socket: lane 0 on `port`, the others on free ports. Throws system_error.
    LaneSet(asio::io_context& io, asio::thread_pool& handshakes, const Options& options,
            const asio::ip::address& address, std::uint16_t port);

    std::size_t size() const { return lanes_.size(); }
    const LaneName& name(std::size_t lane) const { return lanes_.at(lane)->name; }
    std::uint16_t port(std::size_t lane) const { return lanes_.at(lane)->acceptor.port(); }

    // Publishes every lane in epmd, in order, and gives their creations. Throws as epmd_register does (a lane
    // published before the failure stays so until stop()).
    asio::awaitable<std::vector<std::uint32_t>> publish();
    // Accepts on every lane, each with its own name and creation in the handshake.
    void start(const OnConnected& on_connected);
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
    std::vector<std::unique_ptr<Lane>> lanes_;
};

} // namespace dpool
