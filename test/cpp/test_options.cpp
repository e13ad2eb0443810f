#include "test_support.hpp"

#include <string>
#include <variant>
#include <vector>

#include "lane_names.hpp"
#include "options.hpp"

using dpool::lane_names;
using dpool::Options;
using dpool::parse_options;

namespace {

std::variant<Options, int> parse_args(std::vector<std::string> args)
{
    std::vector<char*> argv;
    for (auto& a : args) {
        argv.push_back(a.data());
    }
    return parse_options(static_cast<int>(argv.size()), argv.data());
}

// parse_options on a command line; the cookie is given so that no environment is read.
std::variant<Options, int> parse(const std::vector<std::string>& extra)
{
    std::vector<std::string> args{"dpool_cnode", "--name", "cn@127.0.0.1", "--cookie", "c"};
    for (const auto& a : extra) {
        args.push_back(a);
    }
    return parse_args(std::move(args));
}

int exit_code(const std::variant<Options, int>& parsed)
{
    REQUIRE(std::holds_alternative<int>(parsed));
    return std::get<int>(parsed);
}

} // namespace

TEST_CASE("options: --lanes defaults to 4 and takes 1..16", "[options]")
{
    const auto defaults = parse({});
    REQUIRE(std::holds_alternative<Options>(defaults));
    CHECK(std::get<Options>(defaults).lanes == 4);
    for (const unsigned n : {1U, 5U, 16U}) {
        const auto parsed = parse({"--lanes", std::to_string(n)});
        REQUIRE(std::holds_alternative<Options>(parsed));
        CHECK(std::get<Options>(parsed).lanes == n);
    }
}

TEST_CASE("options: --lanes out of range or not a number is a usage error", "[options]")
{
    for (const char* bad : {"0", "17", "-1", "4294967297", "two", "", "3x", "1.5"}) {
        CAPTURE(bad);
        CHECK(exit_code(parse({"--lanes", bad})) == 2);
    }
    CHECK(exit_code(parse({"--lanes"})) == 2);
}

TEST_CASE("options: a node name too long for its lane names is refused", "[options]")
{
    // 255 bytes is the limit of a node name; lane names add "_lane<k>".
    const std::string host = "127.0.0.1";
    const std::string alive(255 - 1 - host.size(), 'a');
    const std::string name = alive + "@" + host;
    CHECK(std::holds_alternative<Options>(parse_args({"dpool_cnode", "--name", name, "--cookie", "c", "--lanes", "1"})));
    CHECK(exit_code(parse_args({"dpool_cnode", "--name", name, "--cookie", "c", "--lanes", "2"})) == 2);
}

TEST_CASE("lane_names: lane 0 is the node's own name, lane k is <alive>_lane<k>", "[options]")
{
    const auto one = lane_names("cn", "h.example", 1);
    REQUIRE(one.size() == 1);
    CHECK(one[0].alive == "cn");
    CHECK(one[0].node_name == "cn@h.example");

    const auto names = lane_names("cn", "127.0.0.1", 16);
    REQUIRE(names.size() == 16);
    CHECK(names[0].node_name == "cn@127.0.0.1");
    CHECK(names[1].alive == "cn_lane1");
    CHECK(names[1].node_name == "cn_lane1@127.0.0.1");
    CHECK(names[15].node_name == "cn_lane15@127.0.0.1");
}

TEST_CASE("options: the C-node's limits have their defaults, take their ranges and refuse what is outside",
          "[options][limits]")
{
    const auto defaults = parse({});
    REQUIRE(std::holds_alternative<Options>(defaults));
    const auto& d = std::get<Options>(defaults).limits;
    CHECK(d.max_output_queue_bytes == std::size_t{1} << 30);
    CHECK(d.max_link_queue_bytes == std::size_t{256} << 20);
    CHECK(d.max_caller_packet_bytes == std::size_t{512} << 20);
    CHECK(d.max_target_packet_bytes == std::size_t{512} << 20);
    CHECK(d.max_pools_per_caller == 1000);
    CHECK(d.max_connections_per_caller == 5000);
    CHECK(d.max_total_connections == 10000);

    const auto parsed = parse({"--max-output-queue-bytes", "1048576", "--max-link-queue-bytes", "65536",
                               "--max-caller-packet-bytes", "4294967295", "--max-target-packet-bytes", "65536",
                               "--max-pools-per-caller", "1", "--max-connections-per-caller", "1000000"});
    REQUIRE(std::holds_alternative<Options>(parsed));
    const auto& l = std::get<Options>(parsed).limits;
    CHECK(l.max_output_queue_bytes == 1048576);
    CHECK(l.max_link_queue_bytes == 65536);
    CHECK(l.max_caller_packet_bytes == 4294967295U);
    CHECK(l.max_target_packet_bytes == 65536);
    CHECK(l.max_pools_per_caller == 1);
    CHECK(l.max_connections_per_caller == 1000000);

    for (const std::vector<std::string>& bad :
         {std::vector<std::string>{"--max-output-queue-bytes", "1048575"}, {"--max-link-queue-bytes", "65535"},
          {"--max-caller-packet-bytes", "4294967296"}, {"--max-target-packet-bytes", "0"},
          {"--max-pools-per-caller", "0"}, {"--max-connections-per-caller", "1000001"},
          {"--max-output-queue-bytes", "lots"}}) {
        CAPTURE(bad[0], bad[1]);
        CHECK(exit_code(parse(bad)) == 2);
    }
}

TEST_CASE("options: --allow-caller, --allow-caller-address and --allow-target, repeated or comma-separated",
          "[access][options]")
{
    const auto none = parse({});
    REQUIRE(std::holds_alternative<Options>(none));
    CHECK_FALSE(std::get<Options>(none).callers.restricted());
    CHECK(std::get<Options>(none).targets.nodes.empty());

    const auto given = parse({"--allow-caller", "app_*@10.0.0.*", "--allow-caller", "ops@h,*@127.0.0.1",
                              "--allow-caller-address", "127.0.0.0/8,10.1.2.3", "--allow-target", "db_*@10.0.0.*"});
    REQUIRE(std::holds_alternative<Options>(given));
    const auto& o = std::get<Options>(given);
    REQUIRE(o.callers.nodes.size() == 3);
    CHECK(o.callers.nodes[1].text() == "ops@h");
    CHECK(o.callers.addresses.size() == 2);
    REQUIRE(o.targets.nodes.size() == 1);
    CHECK(o.targets.allows("db_2@10.0.0.9"));

    for (const std::vector<std::string>& bad : {std::vector<std::string>{"--allow-caller", "a@b@c"},
                                               {"--allow-caller-address", "10.0.0.1/8"},
                                               {"--allow-caller-address", "host.example"},
                                               {"--allow-target", "a b@h"}}) {
        CAPTURE(bad);
        const auto parsed = parse(bad);
        REQUIRE(std::holds_alternative<int>(parsed));
        CHECK(std::get<int>(parsed) == 2);
    }
}
