#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

#include "transport/connect_error.hpp"
#include "util/asio.hpp"
#include "util/deadline_guard.hpp"

namespace dpool::transport {

// Where target nodes listen, as their hosts' epmd said, shared by every pool of the C-node: opening 500
// connections to a node asks epmd once, not 500 times (epmd answers a burst of lookups with broken replies).
// Concurrent lookups of one node share the one question. An entry is forgotten when a connection to its port
// fails (the node may have restarted elsewhere); a failed question is not remembered. A question that fails
// on the way (epmd reset the connection, answered short) is asked again within the caller's deadline; a clear
// answer (no such name, nothing listening on epmd's port) is not.
class NodePorts {
public:
    struct Found {
        asio::ip::address address;
        std::uint16_t port = 0;
    };
    struct Lookup {
        std::optional<Found> found;
        ConnectError kind = ConnectError::unreachable; // when not found
        std::string error;
        bool from_cache = false;
    };

    // At most this many nodes are remembered; past it, the memory starts over.
    static constexpr std::size_t kMaxEntries = 4096;

    // The port of `target` (alive@host), from memory or its host's epmd, within `deadline`.
    asio::awaitable<Lookup> find(const std::string& target, DeadlineGuard& deadline);
    void forget(const std::string& target);

    std::uint64_t epmd_questions() const { return questions_; }

private:
    struct Question {
        explicit Question(const asio::any_io_executor& ex) : answered(ex, std::chrono::steady_clock::time_point::max()) {}
        asio::steady_timer answered; // cancelled when `answer` is set
        std::optional<Lookup> answer;
    };
    asio::awaitable<Lookup> ask(const std::string& target, DeadlineGuard& deadline);

    std::unordered_map<std::string, Found> known_;
    std::unordered_map<std::string, std::shared_ptr<Question>> asking_;
    std::uint64_t questions_ = 0;
};

// Resolves a host name or IPv4 literal to an IPv4 address (distribution over IPv4).
asio::awaitable<std::optional<asio::ip::address>> resolve_ipv4(std::string host, DeadlineGuard& deadline);

} // namespace dpool::transport
