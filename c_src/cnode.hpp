#pragma once

#include <memory>
#include <optional>
#include <string_view>

#include "api/service.hpp"
#include "lane_set.hpp"
#include "metrics_server.hpp"
#include "options.hpp"
#include "transport/packet_recorder.hpp"
#include "util/asio.hpp"
#include "util/bulk_queue.hpp"
#include "util/output_lines.hpp"

namespace dpool {

// The running C-node: one event loop thread that owns all pool and caller state (handshakes included), and
// its ways in: per lane a listening socket and an epmd registration.
class CNode {
public:
    // `output` (the C-node's log and its lines for the node that started it) outlives the C-node.
    CNode(Options options, util::OutputLines& output);
    // Runs until a signal, the end of standard input (with --exit-on-stdin-eof) or a startup failure.
    int run();

private:
    asio::awaitable<void> startup();
    void watch_stdin();
    void shutdown(std::string_view why, int exit_code);

    Options options_;
    util::OutputLines& output_;
    // Declared first so it is destroyed last: everything below posts work to it.
    asio::io_context io_;
    // The pieces of big transfers, served after the small packets (DistLink).
    util::BulkQueue bulk_;
    // --record-packets only (a test aid); before the service, whose links write to it.
    std::unique_ptr<transport::PacketRecorder> recorder_;
    api::Service service_;
    std::optional<LaneSet> lanes_;
    std::optional<MetricsServer> metrics_; // --metrics-port
    asio::signal_set signals_;
    asio::posix::stream_descriptor stdin_;
    char stdin_buffer_[256];
    int exit_code_ = 0;
    bool stopping_ = false;
};

} // namespace dpool
