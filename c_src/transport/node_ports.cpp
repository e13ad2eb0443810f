#include "transport/node_ports.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "protocol/node_identity.hpp"
#include "transport/epmd.hpp"
#include "util/descriptor_limit.hpp"

namespace dpool::transport {

namespace {

using namespace std::chrono_literals;

NodePorts::Lookup lookup_failed(ConnectError kind, std::string error)
{
    NodePorts::Lookup out;
    out.kind = kind;
    out.error = std::move(error);
    return out;
}

NodePorts::Lookup timed_out() { return lookup_failed(ConnectError::timeout, "asking epmd"); }

} // namespace

asio::awaitable<std::optional<asio::ip::address>> resolve_ipv4(std::string host, DeadlineGuard& deadline)
{
    error_code ec;
    const auto literal = asio::ip::make_address_v4(host, ec);
    if (!ec) {
        co_return asio::ip::address(literal);
    }
    auto executor = co_await asio::this_coro::executor;
    tcp::resolver resolver(executor);
    deadline.guard_with([&resolver] { resolver.cancel(); });
    const auto results =
        co_await resolver.async_resolve(tcp::v4(), host, "", asio::redirect_error(asio::use_awaitable, ec));
    if (ec || results.empty()) {
        co_return std::nullopt;
    }
    co_return results.begin()->endpoint().address();
}

asio::awaitable<NodePorts::Lookup> NodePorts::find(const std::string& target, DeadlineGuard& deadline)
{
    for (;;) {
        if (deadline.expired()) {
            co_return timed_out();
        }
        if (const auto known = known_.find(target); known != known_.end()) {
            Lookup out;
            out.found = known->second;
            out.from_cache = true;
            co_return out;
        }
        if (const auto asked = asking_.find(target); asked != asking_.end()) {
            const auto question = asked->second;
            deadline.guard_with([question] { question->answered.cancel(); });
            error_code ignored;
            co_await question->answered.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
            // The one who asked ran out of time: ask again while there is time left.
            if (question->answer && (question->answer->found || question->answer->kind != ConnectError::timeout)) {
                co_return *question->answer;
            }
            continue;
        }
        const auto question = std::make_shared<Question>(co_await asio::this_coro::executor);
        asking_.emplace(target, question);
        Lookup answer;
        try {
            answer = co_await ask(target, deadline);
        } catch (const std::exception& e) {
            // Out of memory and the like: this question fails, and those waiting on it hear so.
            answer = lookup_failed(ConnectError::unreachable, fmt::format("cannot ask epmd: {}", e.what()));
        }
        if (const auto mine = asking_.find(target); mine != asking_.end() && mine->second == question) {
            asking_.erase(mine);
        }
        if (answer.found) {
            if (known_.size() >= kMaxEntries) {
                known_.clear();
            }
            known_.insert_or_assign(target, *answer.found);
        }
        question->answer = answer;
        question->answered.cancel();
        co_return answer;
    }
}

void NodePorts::forget(const std::string& target) { known_.erase(target); }

asio::awaitable<NodePorts::Lookup> NodePorts::ask(const std::string& target, DeadlineGuard& deadline)
{
    const auto name = protocol::parse_node_name(target);
    if (!name) {
        co_return lookup_failed(ConnectError::unreachable, fmt::format("'{}' is no node name (alive@host)", target));
    }
    const auto address = co_await resolve_ipv4(std::string(name->host), deadline);
    if (deadline.expired()) {
        co_return lookup_failed(ConnectError::timeout, "resolving the host");
    }
    if (!address) {
        co_return lookup_failed(ConnectError::unreachable, fmt::format("cannot resolve the host '{}'", name->host));
    }
    auto executor = co_await asio::this_coro::executor;
    for (int attempt = 0;; ++attempt) {
        std::string why;
        {
            tcp::socket socket(executor);
            deadline.guard(socket);
            ++questions_;
            try {
                const auto port = co_await epmd_port_please(socket, *address, std::string(name->alive));
                if (!port) {
                    co_return lookup_failed(ConnectError::not_registered,
                                     fmt::format("epmd on {} has no node named '{}' (is {} running, under that "
                                                 "name?)",
                                                 address->to_string(), name->alive, target));
                }
                Lookup out;
                out.found = Found{*address, *port};
                co_return out;
            } catch (const boost::system::system_error& e) {
                if (util::out_of_descriptors(e.code())) {
                    // Asking again will not free a descriptor: say which limit it is.
                    co_return lookup_failed(ConnectError::unreachable,
                                     fmt::format("cannot ask epmd on {} port {}: {}", address->to_string(),
                                                 epmd_port(), util::out_of_descriptors_text(e.code())));
                }
                if (e.code() == asio::error::connection_refused && !deadline.expired()) {
                    // Nothing listens on epmd's port: asking again will not help.
                    co_return lookup_failed(ConnectError::unreachable,
                                     fmt::format("cannot ask epmd on {} port {}: {}", address->to_string(),
                                                 epmd_port(), e.what()));
                }
                why = e.what();
            } catch (const std::exception& e) {
                why = e.what();
            }
        }
        if (deadline.expired()) {
            co_return timed_out();
        }
        // epmd dropped or garbled the answer (it does under a burst of questions): ask again shortly.
        const auto pause = std::min<std::chrono::milliseconds>(10ms * (1 << std::min(attempt, 5)), 200ms);
        if (deadline.remaining() <= pause) {
            co_return lookup_failed(ConnectError::unreachable, fmt::format("cannot ask epmd on {} port {}: {}",
                                                                    address->to_string(), epmd_port(), why));
        }
        asio::steady_timer wait(executor, pause);
        deadline.guard_with([&wait] { wait.cancel(); });
        error_code ignored;
        co_await wait.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
    }
}

} // namespace dpool::transport
