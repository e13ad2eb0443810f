#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "util/asio.hpp"

namespace dpool::transport {

// The port epmd listens on: ERL_EPMD_PORT if set (as erl and ei honour it), else 4369.
std::uint16_t epmd_port();

// A name published in epmd; it stays published as long as `socket` stays open.
struct EpmdRegistration {
    tcp::socket socket;
    std::uint32_t creation = 0;
};

// ALIVE2: publishes `alive` as a hidden node listening on `port`, with epmd on this host. Throws
// system_error when epmd cannot be reached and runtime_error when it refuses the name (in use).
asio::awaitable<EpmdRegistration> epmd_register(std::string alive, std::uint16_t port);

// PORT_PLEASE2: the distribution port of `alive` on the host at `address`, nullopt if epmd does not know it.
// Uses the caller's (unopened) socket, so the caller can cancel it at a deadline. Throws system_error when
// epmd cannot be reached.
asio::awaitable<std::optional<std::uint16_t>> epmd_port_please(tcp::socket& socket, asio::ip::address address,
                                                               std::string alive);

} // namespace dpool::transport
