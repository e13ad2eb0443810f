#include <ei.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <variant>

#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

#include "cnode.hpp"
#include "options.hpp"
#include "util/descriptor_limit.hpp"
#include "util/log.hpp"

namespace {

// Writes each record as one line of standard error (log::to_one_line): a message can hold text from outside
// (a caller's pool name, a path in its options), which must not forge a level, metadata or [dpool_event] line.
class OneLineSink final : public spdlog::sinks::base_sink<spdlog::details::null_mutex> {
protected:
    void sink_it_(const spdlog::details::log_msg& msg) override
    {
        std::string text(msg.payload.data(), msg.payload.size());
        dpool::log::to_one_line(text);
        const spdlog::details::log_msg clean(msg.time, msg.source, msg.logger_name, msg.level, text);
        spdlog::memory_buf_t line;
        formatter_->format(clean, line);
        std::fwrite(line.data(), 1, line.size(), stderr);
    }
    void flush_() override { std::fflush(stderr); }
};

} // namespace

int main(int argc, char** argv)
{
    auto parsed = dpool::parse_options(argc, argv);
    if (const int* exit_code = std::get_if<int>(&parsed)) {
        return *exit_code;
    }
    auto& options = std::get<dpool::Options>(parsed);

    auto logger = std::make_shared<spdlog::logger>("dpool_cnode", std::make_shared<OneLineSink>());
    logger->set_pattern("[dpool_cnode] %l: %v");
    logger->set_level(spdlog::level::from_str(options.log_level));
    spdlog::set_default_logger(logger);

    // Before ei sizes its per-descriptor table; said at start, as a warning when the pools cannot all fit.
    const auto report = dpool::util::describe_descriptor_limit(dpool::util::raise_descriptor_limit(),
                                                               options.limits.max_total_connections);
    if (report.enough) {
        spdlog::info("{}", report.text);
    } else {
        spdlog::warn("{}", report.text);
    }
    if (ei_init() != 0) {
        spdlog::error("ei_init failed");
        return 1;
    }
    try {
        dpool::CNode node(std::move(options));
        return node.run();
    } catch (const std::exception& e) {
        spdlog::error("fatal: {}", e.what());
        return 1;
    }
}
