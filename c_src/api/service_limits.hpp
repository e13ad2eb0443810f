#pragma once

#include <cstddef>
#include <cstdint>

namespace dpool::api {

// The bounds of the C-node as a whole (its command line; docs/PROTOCOL.md, "Limits"), with their defaults.
// The bounds of one pool are options of `new` (pool::PoolConfig).
struct ServiceLimits {
    std::size_t max_output_queue_bytes = std::size_t{1} << 30; // queued on all links together
    std::size_t max_link_queue_bytes = std::size_t{256} << 20;  // queued on one link
    std::size_t max_caller_packet_bytes = std::size_t{512} << 20;
    std::size_t max_target_packet_bytes = std::size_t{512} << 20;
    std::uint32_t max_pools_per_caller = 1000;
    std::uint32_t max_connections_per_caller = 5000;
    std::uint32_t max_total_connections = 10000;
    // Connections not yet through their handshake, per lane and per source address (transport::HandshakeGate,
    // which drops the idlest beyond them).
    std::uint32_t max_handshakes_per_lane = 128;
    std::uint32_t max_handshakes_per_address = 64;
    // Pipes (two descriptors each) that the tails of callers' big packets may be in at once, on their way to a
    // target without a copy (transport::SplicedTail); 0: big packets are read into memory.
    std::uint32_t max_splice_pipes = 64;
};

} // namespace dpool::api
