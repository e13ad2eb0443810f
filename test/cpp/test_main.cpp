// The one translation unit with Catch2's implementation. ei needs ei_init() once before any other ei call.

#define CATCH_CONFIG_RUNNER
#include "test_support.hpp"

#include <csignal>
#include <cstdio>

int main(int argc, char* argv[])
{
    // As the C-node's main: a write (a splice) into a socket whose peer is gone fails with EPIPE, not a signal.
    std::signal(SIGPIPE, SIG_IGN);
    if (ei_init() != 0) {
        std::fputs("ei_init() failed\n", stderr);
        return 1;
    }
    return Catch::Session().run(argc, argv);
}
