#include <ei.h>

#include <sys/resource.h>

#include <cstdio>
#include <variant>

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "cnode.hpp"
#include "options.hpp"

namespace {

// Every pooled connection is a descriptor; the default soft limit (often 1024) would cap the pools well
// below what they are meant to hold. Raised before ei sizes its per-descriptor table.
void raise_descriptor_limit()
{
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &limit);
    }
}

} // namespace

int main(int argc, char** argv)
{
    auto parsed = dpool::parse_options(argc, argv);
    if (const int* exit_code = std::get_if<int>(&parsed)) {
        return *exit_code;
    }
    auto& options = std::get<dpool::Options>(parsed);

    auto logger = spdlog::stderr_logger_st("dpool_cnode");
    logger->set_pattern("[dpool_cnode] %l: %v");
    logger->set_level(spdlog::level::from_str(options.log_level));
    spdlog::set_default_logger(logger);

    raise_descriptor_limit();
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
