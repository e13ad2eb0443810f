#include "options.hpp"

#include <CLI/CLI.hpp>

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <unistd.h>

#include "lane_names.hpp"
#include "protocol/node_identity.hpp"
#include "util/event_loop.hpp"

namespace dpool {

namespace {

std::string this_host(bool long_names)
{
    char name[256] = {};
    if (::gethostname(name, sizeof name - 1) != 0) {
        return "localhost";
    }
    std::string host(name);
    if (!long_names) {
        host = host.substr(0, host.find('.'));
    }
    return host;
}

std::optional<std::string> read_cookie_file(const std::string& path)
{
    std::ifstream in(path);
    std::string cookie;
    if (!in || !std::getline(in, cookie)) {
        return std::nullopt;
    }
    while (!cookie.empty() && (cookie.back() == '\r' || cookie.back() == ' ')) {
        cookie.pop_back();
    }
    return cookie;
}

// Each entry of an allow-list option parsed by `parse` (T::parse), or the usage error that refuses it.
template <class T>
std::optional<std::string> parse_entries(const std::vector<std::string>& given, std::string_view option,
                                         std::string_view takes, std::vector<T>& out)
{
    if (given.size() > api::kMaxAccessEntries) {
        return "at most " + std::to_string(api::kMaxAccessEntries) + " entries of " + std::string(option);
    }
    for (const auto& entry : given) {
        auto parsed = T::parse(entry);
        if (!parsed) {
            return "invalid " + std::string(option) + " '" + entry + "': " + std::string(takes);
        }
        out.push_back(std::move(*parsed));
    }
    return std::nullopt;
}

} // namespace

std::variant<Options, int> parse_options(int argc, char** argv)
{
    Options o;
    std::string name;
    std::string sname;
    std::string cookie_file;
    std::string listen;
    std::vector<std::string> allow_callers;
    std::vector<std::string> allow_caller_addresses;
    std::vector<std::string> allow_targets;

    CLI::App app{"distribute_pool C-node: keeps pools of Erlang distribution connections and leases them to "
                 "callers. Cookie: --cookie, --cookie-file, $DISTRIBUTE_POOL_COOKIE or ~/.erlang.cookie, in that "
                 "order. Prints 'READY <node> <port>' on stdout once it is published in epmd."};
    auto* name_opt = app.add_option("--name", name, "long node name: alive or alive@host");
    auto* sname_opt = app.add_option("--sname", sname, "short node name: alive or alive@host");
    name_opt->excludes(sname_opt);
    app.add_option("--cookie", o.cookie, "magic cookie (visible in the process list; prefer the environment)");
    app.add_option("--cookie-file", cookie_file, "file whose first line is the cookie");
    app.add_option("--listen", listen, "address[:port] to accept distribution connections on "
                                       "(default: the address of the node's host, any port)");
    app.add_option("--service", o.service, "registered name callers send requests to")->capture_default_str();
    app.add_flag("--exit-on-stdin-eof", o.exit_on_stdin_eof, "exit when standard input closes (port programs)");
    app.add_flag("--await-restore", o.await_restore,
                 "until a restore request arrives, answer requests for unknown pools (and new, pools) "
                 "{error, {connection_failed, {cnode_restarting, _}}}: the pools of the C-node this one replaces are "
                 "still to come");
    app.add_option("--handshake-timeout-ms", o.handshake_timeout_ms,
                   "a caller's handshake must be complete this long after its connection was accepted")
        ->check(CLI::Range(100, 600000))
        ->capture_default_str();
    app.add_option("--max-handshakes-per-lane", o.limits.max_handshakes_per_lane,
                   "connections still in their handshake, at most, per lane: beyond it the idlest is dropped")
        ->check(CLI::Range(1, 100000))
        ->capture_default_str();
    app.add_option("--max-handshakes-per-address", o.limits.max_handshakes_per_address,
                   "connections still in their handshake, at most, per source address (all lanes): beyond it "
                   "the idlest is dropped")
        ->check(CLI::Range(1, 100000))
        ->capture_default_str();
    app.add_option("--net-ticktime", o.net_ticktime_s, "seconds, as erl's net_ticktime")
        ->check(CLI::Range(4, 3600))
        ->capture_default_str();
    app.add_option("--max-total-connections", o.limits.max_total_connections,
                   "connections all pools together may hold (their max_connections)")
        ->check(CLI::Range(1, 1000000))
        ->capture_default_str();
    app.add_option("--max-pools-per-caller", o.limits.max_pools_per_caller,
                   "pools one caller node may have created (and not destroyed)")
        ->check(CLI::Range(1, 1000000))
        ->capture_default_str();
    app.add_option("--max-connections-per-caller", o.limits.max_connections_per_caller,
                   "connections the pools of one caller node may hold together (their max_connections)")
        ->check(CLI::Range(1, 1000000))
        ->capture_default_str();
    app.add_option("--max-output-queue-bytes", o.limits.max_output_queue_bytes,
                   "bytes queued on all connections together that their peers have not read yet; beyond, a "
                   "caller's send, batch, request or call is refused with limit_reached")
        ->check(CLI::Range(std::size_t{1} << 20, std::size_t{1} << 40))
        ->capture_default_str();
    app.add_option("--max-link-queue-bytes", o.limits.max_link_queue_bytes,
                   "bytes queued on one connection that its peer has not read yet; beyond, a caller's data for "
                   "it is refused with limit_reached (a caller node's own connection is closed)")
        ->check(CLI::Range(std::size_t{64} << 10, std::size_t{1} << 40))
        ->capture_default_str();
    app.add_option("--max-caller-packet-bytes", o.limits.max_caller_packet_bytes,
                   "longest distribution packet taken from a caller node; a longer one closes its connection")
        ->check(CLI::Range(std::size_t{64} << 10, std::size_t{0xFFFFFFFF}))
        ->capture_default_str();
    app.add_option("--max-target-packet-bytes", o.limits.max_target_packet_bytes,
                   "longest distribution packet taken from a target (its atom cache references expanded); a "
                   "longer one closes that pooled connection")
        ->check(CLI::Range(std::size_t{64} << 10, std::size_t{0xFFFFFFFF}))
        ->capture_default_str();
    app.add_option("--max-splice-pipes", o.limits.max_splice_pipes,
                   "pipes (two descriptors each, up to 1 MiB of data) in which callers' big messages may be at once, "
                   "moved from socket to socket without a copy; beyond, or with 0, they are read into memory")
        ->check(CLI::Range(0, 100000))
        ->capture_default_str();
    app.add_option("--lanes", o.lanes,
                   "ways in for callers: the node name plus lanes - 1 more names <alive>_lane<k>@<host>, each "
                   "on its own port, so that one caller's big message does not hold back another's requests")
        ->check(CLI::Range(1U, kMaxLanes))
        ->capture_default_str();
    app.add_option("--busy-poll-us", o.busy_poll_us,
                   "microseconds the event loop keeps polling after its last piece of work before it sleeps "
                   "(0: never; not within " +
                       std::to_string(util::kNoSpinAfterBulk.count()) +
                       " ms of a piece of a big transfer; spinning saves the wake-up of each request at the "
                       "price of CPU time)")
        ->check(CLI::Range(0, 100000))
        ->capture_default_str();
    app.add_option("--record-packets", o.record_packets_dir,
                   "test aid, off by default: write every packet received, per link, and every handshake's "
                   "messages received, per handshake, to a file in this directory "
                   "(the seed corpora of the fuzz targets are recorded this way)");
    app.add_option("--allow-caller", allow_callers,
                   "caller node names allowed to connect (repeatable or comma-separated): alive@host with '*' "
                   "globs (app_*@10.0.0.*, *@host), or a host alone; others are refused in their handshake "
                   "(default: any node with the cookie)")
        ->delimiter(',');
    app.add_option("--allow-caller-address", allow_caller_addresses,
                   "source IPv4 addresses or CIDR ranges callers may connect from (repeatable or comma-separated: "
                   "10.0.0.0/8,127.0.0.1); with --allow-caller, a caller must match both (default: any address)")
        ->delimiter(',');
    app.add_option("--allow-target", allow_targets,
                   "targets pools may connect to (repeatable or comma-separated): alive@host with '*' globs, or a "
                   "host alone; new to any other is refused with target_not_allowed (default: any)")
        ->delimiter(',');
    // TLS: from the environment too, which is how the embedded C-node is told (nothing of it on its command
    // line); the key's password only from there.
    std::string tls_mode = "none";
    app.add_option("--tls", tls_mode,
                   "distribution over TLS, as OTP's inet_tls_dist: none (plain TCP), unverified (TLS, any "
                   "certificate taken) or verified (peers' certificates must lead to --tls-cacertfile and, for "
                   "targets, name their host); callers must then connect with TLS too")
        ->envname("DISTRIBUTE_POOL_TLS")
        ->check(CLI::IsMember({"none", "unverified", "verified"}))
        ->capture_default_str();
    app.add_option("--tls-certfile", o.tls.certfile, "PEM certificate (chain) the C-node shows its peers")
        ->envname("DISTRIBUTE_POOL_TLS_CERTFILE");
    app.add_option("--tls-keyfile", o.tls.keyfile,
                   "PEM private key of --tls-certfile (default: in the certfile); its password, if any, from "
                   "$DISTRIBUTE_POOL_TLS_PASSWORD")
        ->envname("DISTRIBUTE_POOL_TLS_KEYFILE");
    app.add_option("--tls-cacertfile", o.tls.cacertfile, "PEM certificates of the CAs peers' certificates must lead to")
        ->envname("DISTRIBUTE_POOL_TLS_CACERTFILE");
    app.add_option("--log-level", o.log_level, "trace, debug, info, warn, error or off")
        ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}))
        ->capture_default_str();
    app.add_option("--metrics-port", o.metrics_port,
                   "serve the Prometheus text exposition on this port (GET /metrics; 0: any free port, see info's "
                   "metrics_port); off by default");
    app.add_option("--metrics-address", o.metrics_address, "the address --metrics-port listens on")
        ->capture_default_str();
    app.add_flag("--events", o.events,
                 "write '[dpool_event] connection_up|connection_down <pool id> [pool=... target=... "
                 "connection=...] <reason>' to standard output when a pooled connection goes up or down (the "
                 "application's telemetry events)");
    app.add_option("--log-repeat-interval-ms", o.log_repeat_interval_ms,
                   "a run of repeated failures (a pool's failed connects, its lost connections) is logged at its "
                   "first, then summarized at most this often, and its end once")
        ->check(CLI::Range(100, 3600000))
        ->capture_default_str();

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        // --help exits 0; every usage error exits 2, whatever CLI11's own code for it.
        return app.exit(e) == 0 ? 0 : 2;
    }

    if (name.empty() && sname.empty()) {
        std::cerr << "one of --name or --sname is required\n" << app.help();
        return 2;
    }
    o.long_names = !name.empty();
    const std::string& given = o.long_names ? name : sname;
    const auto at = given.find('@');
    o.alive = given.substr(0, at);
    o.host = at == std::string::npos ? this_host(o.long_names) : given.substr(at + 1);
    o.node_name = o.alive + "@" + o.host;
    if (!protocol::parse_node_name(o.node_name)) {
        std::cerr << "invalid node name '" << o.node_name << "'\n";
        return 2;
    }
    for (const auto& lane : lane_names(o.alive, o.host, o.lanes)) {
        if (!protocol::parse_node_name(lane.node_name)) {
            std::cerr << "node name '" << o.node_name << "' too long for " << o.lanes << " lanes ('"
                      << lane.node_name << "')\n";
            return 2;
        }
    }

    if (o.cookie.empty() && !cookie_file.empty()) {
        const auto c = read_cookie_file(cookie_file);
        if (!c) {
            std::cerr << "cannot read cookie file " << cookie_file << "\n";
            return 2;
        }
        o.cookie = *c;
    }
    if (o.cookie.empty()) {
        if (const char* env = std::getenv("DISTRIBUTE_POOL_COOKIE")) {
            o.cookie = env;
        }
    }
    if (o.cookie.empty()) {
        if (const char* home = std::getenv("HOME")) {
            o.cookie = read_cookie_file(std::string(home) + "/.erlang.cookie").value_or("");
        }
    }
    if (o.cookie.empty() || o.cookie.size() > 255) {
        std::cerr << "no usable cookie (give --cookie, --cookie-file or DISTRIBUTE_POOL_COOKIE)\n";
        return 2;
    }

    constexpr std::string_view kPatternTakes =
        "alive@host or host, of letters, digits, '_', '-', '.' and '*' globs, at most 511 bytes";
    for (const auto& error :
         {parse_entries(allow_callers, "--allow-caller", kPatternTakes, o.callers.nodes),
          parse_entries(allow_caller_addresses, "--allow-caller-address",
                        "an IPv4 address a.b.c.d or a range a.b.c.d/n, no host bits set under the prefix",
                        o.callers.addresses),
          parse_entries(allow_targets, "--allow-target", kPatternTakes, o.targets.nodes)}) {
        if (error) {
            std::cerr << *error << "\n";
            return 2;
        }
    }

    o.tls.mode = transport::parse_tls_mode(tls_mode).value_or(transport::TlsMode::none);
    if (const char* password = std::getenv("DISTRIBUTE_POOL_TLS_PASSWORD")) {
        o.tls.password = password;
    }
    for (const auto role : {transport::TlsRole::accept, transport::TlsRole::connect}) {
        auto made = transport::make_tls_context(o.tls, role);
        if (const auto* why = std::get_if<std::string>(&made)) {
            std::cerr << "TLS: " << *why << "\n";
            return 2;
        }
        (role == transport::TlsRole::accept ? o.tls_accept : o.tls_connect) = std::get<transport::TlsContext>(made);
    }

    if (!listen.empty()) {
        const auto colon = listen.rfind(':');
        o.listen_address = listen.substr(0, colon);
        if (colon != std::string::npos) {
            try {
                const int port = std::stoi(listen.substr(colon + 1));
                if (port < 0 || port > 65535) {
                    throw std::out_of_range("port");
                }
                o.listen_port = static_cast<std::uint16_t>(port);
            } catch (const std::exception&) {
                std::cerr << "invalid --listen port in '" << listen << "'\n";
                return 2;
            }
        }
    }
    return o;
}

} // namespace dpool
