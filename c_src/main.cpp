#include <ei.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <memory>
#include <string>
#include <variant>

#include <spdlog/spdlog.h>

#include "cnode.hpp"
#include "options.hpp"
#include "transport/spliced_tail.hpp"
#include "util/descriptor_limit.hpp"
#include "util/output_lines.hpp"
#include "util/pipe_allowance.hpp"

namespace {

// A line about the C-node's limits, logged at start: a warning when the configuration cannot be had.
void say_at_start(const std::string& text, bool warning)
{
    spdlog::log(warning ? spdlog::level::warn : spdlog::level::info, "{}", text);
}

} // namespace

int main(int argc, char** argv)
{
    auto parsed = dpool::parse_options(argc, argv);
    if (const int* exit_code = std::get_if<int>(&parsed)) {
        return *exit_code;
    }
    auto& options = std::get<dpool::Options>(parsed);

    // A reader of the C-node's output that goes away must cost lines (EPIPE), not the process; so must a peer
    // that resets a TLS connection (OpenSSL writes the socket with write(2), not send with MSG_NOSIGNAL).
    std::signal(SIGPIPE, SIG_IGN);
    // Declared before everything that logs, so that what they log is written before it goes.
    dpool::util::OutputLines output;
    output.log()->set_level(spdlog::level::from_str(options.log_level));
    spdlog::set_default_logger(output.log());

    // The pipes of big messages within the user's pipe memory: said at start, cut to what fits.
    if (const auto allowance = dpool::util::read_pipe_allowance()) {
        if (const auto plan = dpool::util::plan_pipes(*allowance, options.limits.max_splice_pipes,
                                                      dpool::transport::kPipeBytes)) {
            options.limits.max_splice_pipes = static_cast<decltype(options.limits.max_splice_pipes)>(plan->pipes);
            say_at_start(plan->text, plan->warn);
        }
    }
    // Before ei sizes its per-descriptor table; said at start, as a warning when the pools cannot all fit.
    const auto report = dpool::util::describe_descriptor_limit(dpool::util::raise_descriptor_limit(),
                                                               options.limits.max_total_connections,
                                                               options.limits.max_splice_pipes);
    say_at_start(report.text, !report.enough);
    if (ei_init() != 0) {
        spdlog::error("ei_init failed");
        return 1;
    }
    try {
        dpool::CNode node(std::move(options), output);
        return node.run();
    } catch (const std::exception& e) {
        spdlog::error("fatal: {}", e.what());
        return 1;
    }
}
