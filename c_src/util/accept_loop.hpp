#pragma once

#include <chrono>
#include <utility>

#include <spdlog/spdlog.h>

#include "util/asio.hpp"
#include "util/descriptor_limit.hpp"

namespace dpool::util {

// Accepts connections on `acceptor` until it is closed, handing each socket to `on_socket`. An accept that
// fails for another reason (out of descriptors and the like) is logged and followed by a short pause, rather
// than a spin.
template <class OnSocket>
asio::awaitable<void> accept_until_closed(tcp::acceptor& acceptor, OnSocket on_socket)
{
    while (acceptor.is_open()) {
        error_code ec;
        tcp::socket socket = co_await acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
        if (ec) {
            if (ec == asio::error::operation_aborted || !acceptor.is_open()) {
                co_return;
            }
            spdlog::warn("accept failed: {}", socket_error_text(ec));
            asio::steady_timer pause(acceptor.get_executor(), std::chrono::milliseconds(100));
            co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
            continue;
        }
        on_socket(std::move(socket));
    }
}

} // namespace dpool::util
