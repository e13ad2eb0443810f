#include "cnode.hpp"

#include <netdb.h>
#include <unistd.h>

#include <algorithm>
#include <iostream>
#include <new>
#include <random>
#include <string>
#include <vector>

#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "util/event_loop.hpp"
#include "util/log.hpp"

namespace dpool {

namespace {

// The address to listen on when none is given: the one the node's host name stands for, since that is where
// peers will connect after asking epmd for our port.
asio::ip::address default_listen_address(const std::string& host)
{
    error_code ec;
    const auto literal = asio::ip::make_address_v4(host, ec);
    if (!ec) {
        return literal;
    }
    addrinfo hints{};
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    if (::getaddrinfo(host.c_str(), nullptr, &hints, &found) == 0 && found != nullptr) {
        const auto* in = reinterpret_cast<const sockaddr_in*>(found->ai_addr);
        const auto address = asio::ip::address_v4(ntohl(in->sin_addr.s_addr));
        ::freeaddrinfo(found);
        return address;
    }
    return asio::ip::address_v4::any();
}

std::unique_ptr<transport::PacketRecorder> packet_recorder(const Options& o)
{
    if (o.record_packets_dir.empty()) {
        return nullptr;
    }
    return std::make_unique<transport::PacketRecorder>(o.record_packets_dir);
}

api::ServiceConfig service_config(const Options& o, util::BulkQueue& bulk, transport::PacketRecorder* recorder,
                                  util::OutputLines& output)
{
    api::ServiceConfig c;
    c.service_name = o.service;
    c.cookie = o.cookie;
    c.alive = o.alive;
    c.host = o.host;
    c.link_limits.tick_interval = std::chrono::milliseconds(o.net_ticktime_s * 1000 / 4);
    c.link_limits.bulk = &bulk;
    c.link_limits.recorder = recorder;
    c.limits = o.limits;
    c.log_repeat_interval = std::chrono::milliseconds(o.log_repeat_interval_ms);
    if (o.events) {
        c.events = [&output](std::string_view kind, std::uint64_t pool, const log::About& about,
                             std::string_view detail) {
            std::string line = fmt::format("[dpool_event] {} {} {}{}", kind, pool, log::about_text(about), detail);
            log::to_one_line(line);
            output.line(line);
        };
    }
    c.output_lines_dropped = [&output] { return output.dropped(); };
    c.await_restore = o.await_restore;
    c.callers = o.callers;
    c.targets = o.targets;
    c.tls = o.tls;
    c.connect_tls = o.tls_connect;
    return c;
}

// Who may call and where pools may go, once at the start: what an operator checks first when a caller is
// refused.
void log_access(const Options& o)
{
    if (o.callers.restricted()) {
        std::vector<std::string> names;
        for (const auto& p : o.callers.nodes) {
            names.push_back(p.text());
        }
        spdlog::info("callers allowed: names matching [{}], {} address ranges{}", fmt::join(names, ", "),
                     o.callers.addresses.size(), o.callers.addresses.empty() ? " (any address)" : "");
    } else {
        spdlog::info("callers allowed: any node with the cookie");
    }
    if (!o.targets.nodes.empty()) {
        std::vector<std::string> targets;
        for (const auto& p : o.targets.nodes) {
            targets.push_back(p.text());
        }
        spdlog::info("targets allowed: [{}]", fmt::join(targets, ", "));
    }
}

} // namespace

CNode::CNode(Options options, util::OutputLines& output)
    : options_(std::move(options)),
      output_(output),
      recorder_(packet_recorder(options_)),
      service_(io_, service_config(options_, bulk_, recorder_.get(), output_)),
      signals_(io_, SIGINT, SIGTERM),
      stdin_(io_)
{
}

int CNode::run()
{
    const auto address = options_.listen_address.empty()
                             ? default_listen_address(options_.host)
                             : asio::ip::make_address(options_.listen_address);
    try {
        lanes_.emplace(io_, options_, address, options_.listen_port);
    } catch (const std::exception& e) {
        spdlog::error("cannot listen on {}:{}: {}", address.to_string(), options_.listen_port, e.what());
        return 1;
    }
    if (options_.metrics_port) {
        try {
            metrics_.emplace(io_,
                             tcp::endpoint(asio::ip::make_address(options_.metrics_address), *options_.metrics_port),
                             [this] { return service_.metrics_text(); });
        } catch (const std::exception& e) {
            spdlog::error("cannot serve metrics on {}:{}: {}", options_.metrics_address, *options_.metrics_port,
                          e.what());
            return 1;
        }
        metrics_->start();
        service_.set_metrics_port(metrics_->port());
        spdlog::info("Prometheus metrics on http://{}:{}/metrics", options_.metrics_address, metrics_->port());
    }

    signals_.async_wait([this](const error_code& ec, int signal) {
        if (!ec) {
            shutdown(signal == SIGINT ? "interrupted" : "terminated", 0);
        }
    });
    if (options_.exit_on_stdin_eof) {
        watch_stdin();
    }
    asio::co_spawn(io_, startup(), [this](std::exception_ptr error) {
        if (!error) {
            return;
        }
        try {
            std::rethrow_exception(error);
        } catch (const std::exception& e) {
            spdlog::error("startup failed: {}", e.what());
        }
        shutdown("startup failed", 1);
    });
    // Memory that a handler needs and cannot have ends that handler's work, never the C-node: the links catch
    // it for what they read (and close themselves), and a handler that fails anyway is reported and the loop
    // goes on with the next.
    for (;;) {
        try {
            util::run_event_loop(io_, std::chrono::microseconds(options_.busy_poll_us), bulk_);
            break;
        } catch (const std::bad_alloc&) {
            spdlog::error("out of memory in a handler of the event loop: its work is lost, the C-node goes on");
        }
    }
    return exit_code_;
}

asio::awaitable<void> CNode::startup()
{
    const auto creations = co_await lanes_->publish();
    std::random_device random;
    std::vector<protocol::NodeIdentity> identities;
    for (std::size_t k = 0; k < lanes_->size(); ++k) {
        identities.emplace_back(lanes_->name(k).node_name, creations[k], random());
    }
    service_.start(std::move(identities));
    service_.set_handshake_counters([this] { return lanes_->handshake_counters(); });
    lanes_->start(
        [this](std::size_t lane, transport::DistStream stream, std::string peer) {
            service_.add_client(lane, std::move(stream), std::move(peer));
        },
        [this](std::size_t lane, std::string_view peer, const asio::ip::address& from) {
            return service_.refusal_of_caller(lane, peer, from);
        },
        recorder_.get());
    const auto port = lanes_->port(0);
    spdlog::info("{} listening on port {} ({} lanes)", options_.node_name, port, lanes_->size());
    log_access(options_);
    // After the lines above, in order when they go to the same file (as the embedded C-node's port has them).
    output_.line(fmt::format("READY {} {}", options_.node_name, port));
}

void CNode::watch_stdin()
{
    if (!stdin_.is_open()) {
        stdin_.assign(::dup(STDIN_FILENO));
    }
    // Whatever arrives is ignored; only the end of input matters (the parent closed the port or died).
    stdin_.async_read_some(asio::buffer(stdin_buffer_), [this](const error_code& ec, std::size_t) {
        if (ec) {
            shutdown("standard input closed", 0);
            return;
        }
        watch_stdin();
    });
}

void CNode::shutdown(std::string_view why, int exit_code)
{
    if (stopping_) {
        return;
    }
    stopping_ = true;
    exit_code_ = exit_code;
    spdlog::info("stopping: {}", why);
    if (lanes_) {
        lanes_->stop(); // stops accepting and unpublishes every lane
    }
    if (metrics_) {
        metrics_->stop();
    }
    service_.stop();
    signals_.cancel();
    error_code ignored;
    stdin_.close(ignored);
    io_.stop();
}

} // namespace dpool
