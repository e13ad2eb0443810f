#include "lane_set.hpp"

#include <spdlog/spdlog.h>

namespace dpool {

LaneSet::LaneSet(asio::io_context& io, const Options& options, const asio::ip::address& address, std::uint16_t port)
    : host_(options.host),
      tls_(options.tls_accept),
      gate_({.per_lane = options.limits.max_handshakes_per_lane,
             .per_address = options.limits.max_handshakes_per_address})
{
    for (auto& name : lane_names(options.alive, options.host, options.lanes)) {
        const std::uint16_t lane_port = lanes_.empty() ? port : 0;
        transport::Acceptor acceptor(io, tcp::endpoint(address, lane_port), options.cookie,
                                     std::chrono::milliseconds(options.handshake_timeout_ms));
        lanes_.push_back(std::make_unique<Lane>(std::move(name), std::move(acceptor)));
    }
}

asio::awaitable<std::vector<std::uint32_t>> LaneSet::publish()
{
    std::vector<std::uint32_t> creations;
    for (auto& lane : lanes_) {
        lane->registration.emplace(co_await transport::epmd_register(lane->name.alive, lane->acceptor.port()));
        creations.push_back(lane->registration->creation);
    }
    co_return creations;
}

void LaneSet::start(const OnConnected& on_connected, const AdmitCaller& admit, transport::PacketRecorder* recorder)
{
    for (std::size_t k = 0; k < lanes_.size(); ++k) {
        Lane& lane = *lanes_[k];
        const std::uint32_t creation = lane.registration ? lane.registration->creation : 0;
        lane.acceptor.start({.lane = k,
                             .self = {lane.name.alive, host_, lane.name.node_name, creation},
                             .gate = &gate_,
                             .counters = &counters_,
                             .admit = [admit, k](std::string_view peer,
                                                 const asio::ip::address& from) { return admit(k, peer, from); },
                             .on_connected = [on_connected, k](transport::DistStream stream, std::string peer) {
                                 on_connected(k, std::move(stream), std::move(peer));
                             },
                             .recorder = recorder,
                             .tls = tls_});
        if (k > 0) {
            spdlog::info("lane {}: {} listening on port {}", k, lane.name.node_name, lane.acceptor.port());
        }
    }
}

transport::HandshakeCounters LaneSet::handshake_counters() const
{
    auto c = counters_;
    c.gate = gate_.counters();
    return c;
}

void LaneSet::stop()
{
    for (auto& lane : lanes_) {
        lane->acceptor.stop();
        lane->registration.reset(); // closing the socket unpublishes the name
    }
}

} // namespace dpool
