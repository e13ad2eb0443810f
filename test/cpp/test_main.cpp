// The one translation unit with Catch2's implementation. ei needs ei_init() once before any other ei call.

#define CATCH_CONFIG_RUNNER
#include "test_support.hpp"

#include <cstdio>

int main(int argc, char* argv[])
{
    if (ei_init() != 0) {
        std::fputs("ei_init() failed\n", stderr);
        return 1;
    }
    return Catch::Session().run(argc, argv);
}
