#include "test_support.hpp"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "loopback.hpp"
#include "transport/dist_link.hpp"
#include "transport/handshake.hpp"
#include "transport/tls.hpp"
#include "util/asio.hpp"
#include "util/deadline_guard.hpp"

using namespace std::chrono_literals;
using dpool::error_code;
using dpool::tcp;
using dpool::transport::DistLink;
using dpool::transport::DistStream;
using dpool::transport::LinkHandler;
using dpool::transport::TlsContext;
using dpool::transport::TlsMode;
using dpool::transport::TlsRole;
using dpool::transport::TlsSettings;
namespace asio = dpool::asio;
namespace fs = std::filesystem;

namespace {

// Certificates made with the openssl CLI in a temporary directory, removed at the end: two CAs (a and b), a
// node certificate from each for 127.0.0.1 (as OTP clusters make them: IP and DNS names), and one from CA a
// for another host.
class Certificates {
public:
    Certificates()
    {
        std::string pattern = (fs::temp_directory_path() / "dpool_tls_XXXXXX").string();
        REQUIRE(::mkdtemp(pattern.data()) != nullptr);
        dir_ = pattern;
        make_ca("a");
        make_ca("b");
        make_node("node_a", "a", "IP:127.0.0.1,DNS:127.0.0.1");
        make_node("node_b", "b", "IP:127.0.0.1,DNS:127.0.0.1");
        make_node("elsewhere_a", "a", "IP:127.0.0.2,DNS:127.0.0.2");
        make_node("ip_only_a", "a", "IP:127.0.0.1");
        make_node("dns_only_a", "a", "DNS:127.0.0.1");
        make_node("wildcard_a", "a", "DNS:*.0.0.1");
        run(fmt::format("openssl pkey -in {} -aes256 -passout pass:{} -out {}", path("node_a.key"), kPassword,
                        path("node_a_encrypted.key")));
    }
    static constexpr const char* kPassword = "unit-test-pass";
    ~Certificates()
    {
        std::error_code ignored;
        fs::remove_all(dir_, ignored);
    }
    Certificates(const Certificates&) = delete;
    Certificates& operator=(const Certificates&) = delete;

    std::string path(const std::string& file) const { return (dir_ / file).string(); }
    TlsSettings settings(TlsMode mode, const std::string& node, const std::string& ca) const
    {
        TlsSettings s;
        s.mode = mode;
        s.certfile = path(node + ".pem");
        s.keyfile = path(node + ".key");
        s.cacertfile = path(ca + "_ca.pem");
        return s;
    }

private:
    void run(const std::string& command) const
    {
        INFO(command);
        REQUIRE(std::system((command + " >/dev/null 2>&1").c_str()) == 0);
    }
    void make_ca(const std::string& ca) const
    {
        run(fmt::format("openssl req -x509 -newkey rsa:2048 -nodes -keyout {} -out {} -days 2 -subj /CN=test-ca-{}",
                        path(ca + "_ca.key"), path(ca + "_ca.pem"), ca));
    }
    void make_node(const std::string& node, const std::string& ca, const std::string& names) const
    {
        run(fmt::format("openssl req -newkey rsa:2048 -nodes -keyout {} -out {} -subj /CN={}", path(node + ".key"),
                        path(node + ".csr"), node));
        std::ofstream(path(node + ".ext")) << "subjectAltName=" << names << "\n";
        run(fmt::format("openssl x509 -req -in {} -CA {} -CAkey {} -CAcreateserial -out {} -days 2 -extfile {}",
                        path(node + ".csr"), path(ca + "_ca.pem"), path(ca + "_ca.key"), path(node + ".pem"),
                        path(node + ".ext")));
    }

    fs::path dir_;
};

const Certificates& certificates()
{
    static const Certificates made; // made once for all cases: key generation takes a while
    return made;
}

TlsContext context_of(const TlsSettings& settings, TlsRole role)
{
    auto made = dpool::transport::make_tls_context(settings, role);
    if (const auto* why = std::get_if<std::string>(&made)) {
        FAIL(*why);
    }
    return std::get<TlsContext>(made);
}

std::string error_of(const TlsSettings& settings, TlsRole role)
{
    auto made = dpool::transport::make_tls_context(settings, role);
    const auto* why = std::get_if<std::string>(&made);
    return why ? *why : std::string();
}

// Both ends of a loopback connection, each wrapped for its TLS context, and the outcome of each end's TLS
// handshake once both have run.
struct TlsPair {
    std::optional<DistStream> accepting;
    std::optional<DistStream> connecting;
    std::optional<std::optional<std::string>> accepted;  // the accepting end's outcome (nullopt inside: ok)
    std::optional<std::optional<std::string>> connected; // the connecting end's
};

// `until_both`: false to return once the connecting end is done (a plain one is at once).
void handshake_both(asio::io_context& io, TlsPair& pair, const TlsContext& server, const TlsContext& client,
                    const std::string& host, bool until_both = true, std::chrono::milliseconds deadline = 10s)
{
    auto sockets = dpool::test::socket_pair(io);
    pair.accepting.emplace(server.context ? DistStream(std::move(sockets.far), server.context)
                                          : DistStream(std::move(sockets.far)));
    pair.connecting.emplace(client.context ? DistStream(std::move(sockets.near), client.context)
                                           : DistStream(std::move(sockets.near)));
    const auto run = [&io, deadline](DistStream& stream, TlsMode mode, TlsRole role, std::string h,
                                     std::optional<std::optional<std::string>>& out) {
        asio::co_spawn(
            io,
            [&stream, mode, role, h, &out, &io, deadline]() -> asio::awaitable<void> {
                dpool::DeadlineGuard guard(io.get_executor(), deadline);
                out = co_await dpool::transport::tls_handshake(stream, mode, role, h, guard);
                if (*out) {
                    error_code ignored; // a refusal ends the connection, as the acceptor and connector do
                    stream.socket().close(ignored);
                }
            },
            asio::detached);
    };
    run(*pair.accepting, server.mode, TlsRole::accept, "", pair.accepted);
    run(*pair.connecting, client.mode, TlsRole::connect, host, pair.connected);
    REQUIRE(dpool::test::run_until(
        io, [&] { return (pair.accepted.has_value() || !until_both) && pair.connected.has_value(); }));
}

// Both ends of a loopback connection after a verified TLS handshake that both passed (the certificate is the
// CA's and names 127.0.0.1).
void verified_pair(asio::io_context& io, TlsPair& pair)
{
    const auto settings = certificates().settings(TlsMode::verified, "node_a", "a");
    handshake_both(io, pair, context_of(settings, TlsRole::accept), context_of(settings, TlsRole::connect),
                   "127.0.0.1");
    REQUIRE_FALSE(pair.accepted->has_value());
    REQUIRE_FALSE(pair.connected->has_value());
}

class Collecting final : public LinkHandler {
public:
    void on_packet(DistLink&, std::string_view packet) override { packets.emplace_back(packet); }
    void on_closed(DistLink&, std::string_view reason) override { closed = std::string(reason); }
    std::vector<std::string> packets;
    std::optional<std::string> closed;
};

// A DistLink over `stream` (its TLS handshake done), started with `handler`.
std::shared_ptr<DistLink> started_link(DistStream& stream, const std::string& peer, LinkHandler& handler)
{
    auto link = std::make_shared<DistLink>(std::move(stream), peer, dpool::transport::LinkLimits{});
    link->start(handler);
    return link;
}

// Two DistLinks over a verified TLS pair, started: `caller` on the accepting side, `target` on the connecting one.
struct VerifiedLinks {
    VerifiedLinks()
    {
        verified_pair(io, pair);
        caller = started_link(*pair.accepting, "caller@127.0.0.1", at_caller);
        target = started_link(*pair.connecting, "target@127.0.0.1", at_target);
    }
    asio::io_context io;
    TlsPair pair;
    Collecting at_caller;
    Collecting at_target;
    std::shared_ptr<DistLink> caller;
    std::shared_ptr<DistLink> target;
};

} // namespace

TEST_CASE("TLS settings that give no context are refused with the file and the reason", "[tls]")
{
    const auto& c = certificates();
    auto s = c.settings(TlsMode::verified, "node_a", "a");
    CHECK(error_of(s, TlsRole::accept).empty());
    CHECK(error_of(s, TlsRole::connect).empty());

    auto no_ca = s;
    no_ca.cacertfile.clear();
    CHECK(error_of(no_ca, TlsRole::connect).find("needs a cacertfile") != std::string::npos);
    no_ca.mode = TlsMode::unverified; // no CA is needed to take any certificate
    CHECK(error_of(no_ca, TlsRole::connect).empty());

    auto no_cert = s;
    no_cert.certfile.clear();
    no_cert.keyfile.clear();
    CHECK(error_of(no_cert, TlsRole::accept).find("needs a certfile") != std::string::npos);
    CHECK(error_of(no_cert, TlsRole::connect).empty()); // a client may go without one

    auto missing = s;
    missing.certfile = c.path("nowhere.pem");
    const auto why = error_of(missing, TlsRole::accept);
    CHECK(why.find("cannot read the certfile " + c.path("nowhere.pem")) != std::string::npos);

    auto not_a_key = s;
    not_a_key.keyfile = c.path("node_a.pem");
    CAPTURE(error_of(not_a_key, TlsRole::accept));
    CHECK(error_of(not_a_key, TlsRole::accept).find("the keyfile " + c.path("node_a.pem") + " is not usable: ") !=
          std::string::npos);

    auto other_key = s;
    other_key.keyfile = c.path("node_b.key");
    CAPTURE(error_of(other_key, TlsRole::accept));
    CHECK(error_of(other_key, TlsRole::accept).find("mismatch") != std::string::npos);

    TlsSettings plain;
    CHECK(context_of(plain, TlsRole::accept).context == nullptr);
}

TEST_CASE("an encrypted key is read with its password, and refused at once without it", "[tls]")
{
    const auto& c = certificates();
    auto s = c.settings(TlsMode::verified, "node_a", "a");
    s.keyfile = c.path("node_a_encrypted.key");
    s.password = Certificates::kPassword;
    CHECK(error_of(s, TlsRole::accept).empty());
    s.password.clear(); // OpenSSL's default would ask a terminal or standard input, and wait
    const auto started = std::chrono::steady_clock::now();
    CHECK(error_of(s, TlsRole::accept).find("an encrypted one needs its password") != std::string::npos);
    CHECK(std::chrono::steady_clock::now() - started < 5s);
}

TEST_CASE("only a regular PEM file of at most 1 MiB is read: a FIFO or a device never holds the loop up", "[tls]")
{
    const auto& c = certificates();
    auto s = c.settings(TlsMode::verified, "node_a", "a");
    const std::string fifo = c.path("fifo.pem");
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    s.cacertfile = fifo; // a FIFO that no one writes: opening it for reading would wait
    CHECK(error_of(s, TlsRole::connect) == "cannot read the cacertfile " + fifo + ": not a regular file");
    s.cacertfile = "/dev/zero";
    CHECK(error_of(s, TlsRole::connect) == "cannot read the cacertfile /dev/zero: not a regular file");
    const std::string big = c.path("big.pem");
    std::ofstream(big) << std::string((1 << 20) + 1, 'x');
    s.cacertfile = big;
    CHECK(error_of(s, TlsRole::connect) == "cannot read the cacertfile " + big + ": larger than 1048576 bytes");
}

TEST_CASE("verified TLS refuses a certificate from another CA, and one for another host", "[tls]")
{
    asio::io_context io;
    const auto& c = certificates();
    const auto client = context_of(c.settings(TlsMode::verified, "node_a", "a"), TlsRole::connect);
    // What the connecting end made of a server showing `node`'s certificate (from CA `ca`): nullopt when it
    // took it, else why not.
    const auto against = [&](const char* node, const char* ca, const TlsContext& connecting) {
        TlsPair pair;
        handshake_both(io, pair, context_of(c.settings(TlsMode::unverified, node, ca), TlsRole::accept), connecting,
                       "127.0.0.1");
        return *pair.connected;
    };
    SECTION("another CA")
    {
        const auto refused = against("node_b", "b", client);
        REQUIRE(refused.has_value());
        CHECK(*refused == "its certificate was refused (verified TLS): unable to get local issuer certificate");
    }
    SECTION("another host")
    {
        const auto refused = against("elsewhere_a", "a", client);
        REQUIRE(refused.has_value());
        CHECK(*refused == "its certificate is not for host 127.0.0.1 (verified TLS)");
    }
    SECTION("an address is named by an IP entry or by a DNS entry of its text, never by a wildcard")
    {
        for (const char* node : {"ip_only_a", "dns_only_a"}) {
            CHECK_FALSE(against(node, "a", client).has_value());
        }
        const auto refused = against("wildcard_a", "a", client);
        REQUIRE(refused.has_value());
        CHECK(*refused == "its certificate is not for host 127.0.0.1 (verified TLS)");
    }
    SECTION("unverified takes either")
    {
        const auto any = context_of(c.settings(TlsMode::unverified, "node_a", "a"), TlsRole::connect);
        CHECK_FALSE(against("node_b", "b", any).has_value());
    }
    SECTION("a verifying server refuses a client from another CA")
    {
        TlsPair pair;
        handshake_both(io, pair, context_of(c.settings(TlsMode::verified, "node_a", "a"), TlsRole::accept),
                       context_of(c.settings(TlsMode::unverified, "node_b", "b"), TlsRole::connect), "127.0.0.1");
        REQUIRE(pair.accepted->has_value());
        CHECK(**pair.accepted == "its certificate was refused (verified TLS): unable to get local issuer certificate");
    }
}

TEST_CASE("a plain peer on a TLS lane is refused at once, not at the deadline", "[tls]")
{
    asio::io_context io;
    const auto& c = certificates();
    TlsPair pair;
    const auto started = std::chrono::steady_clock::now();
    handshake_both(io, pair, context_of(c.settings(TlsMode::unverified, "node_a", "a"), TlsRole::accept),
                   TlsContext{}, "127.0.0.1", false);
    // The plain end has no TLS handshake to do; it then sends a handshake message, which is no TLS record.
    asio::write(pair.connecting->socket(), asio::buffer(std::string("\x00\x10N", 3) + std::string(16, 'x')));
    REQUIRE(dpool::test::run_until(io, [&] { return pair.accepted.has_value(); }));
    REQUIRE(pair.accepted->has_value());
    CHECK(**pair.accepted == "the TLS handshake failed: wrong version number");
    CHECK(std::chrono::steady_clock::now() - started < 5s);
}

TEST_CASE("a target that refuses the C-node's certificate after a TLS 1.3 handshake is a TLS refusal", "[tls]")
{
    asio::io_context io;
    const auto& c = certificates();
    TlsSettings no_certificate = c.settings(TlsMode::verified, "node_a", "a");
    no_certificate.certfile.clear();
    no_certificate.keyfile.clear();
    TlsPair pair;
    // In TLS 1.3 the client's handshake ends before the server has judged the client's certificate.
    handshake_both(io, pair, context_of(c.settings(TlsMode::verified, "node_a", "a"), TlsRole::accept),
                   context_of(no_certificate, TlsRole::connect), "127.0.0.1");
    REQUIRE(pair.accepted->has_value());
    REQUIRE_FALSE(pair.connected->has_value());
    std::optional<dpool::transport::HandshakeOutcome> outcome;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            dpool::DeadlineGuard deadline(io.get_executor(), 10s);
            const dpool::transport::HandshakeIdentity self{"pooled", "127.0.0.1", "pooled@127.0.0.1", 7};
            const std::string cookie = "cookie";
            outcome = co_await dpool::transport::connect_handshake(*pair.connecting, self, cookie, deadline);
        },
        asio::detached);
    REQUIRE(dpool::test::run_until(io, [&] { return outcome.has_value(); }));
    CHECK_FALSE(outcome->ok);
    CHECK(outcome->tls_refused);
    CHECK(outcome->error.find("it ended the TLS session: ") == 0);
    CHECK(outcome->error.find("certificate required") != std::string::npos);
}

TEST_CASE("a TLS peer that never finishes its handshake is cut off at the deadline", "[tls]")
{
    asio::io_context io;
    const auto& c = certificates();
    TlsPair pair;
    const auto started = std::chrono::steady_clock::now();
    // The connecting end is plain and sends nothing: the accepting end waits for a ClientHello until its deadline.
    handshake_both(io, pair, context_of(c.settings(TlsMode::unverified, "node_a", "a"), TlsRole::accept),
                   TlsContext{}, "127.0.0.1", false, 300ms);
    REQUIRE(dpool::test::run_until(io, [&] { return pair.accepted.has_value(); }));
    REQUIRE(pair.accepted->has_value());
    CHECK(**pair.accepted == "timed out");
    const auto took = std::chrono::steady_clock::now() - started;
    CHECK(took >= 300ms);
    CHECK(took < 5s);
}

TEST_CASE("verified TLS passes a certificate from the CA that names the host, and DistLinks over it carry "
          "packets of every size both ways, in order",
          "[tls]")
{
    VerifiedLinks l;
    std::vector<std::string> sent;
    for (const std::size_t size : {1UL, 64UL, 16'000UL, 16'385UL, 300'000UL, std::size_t{4} << 20}) {
        std::string body(size, static_cast<char>('a' + sent.size()));
        body[0] = static_cast<char>(sent.size());
        l.caller->write_packet(body, {});
        l.target->write_packet(body, {});
        sent.push_back(body);
    }
    REQUIRE(dpool::test::run_until(l.io, [&] {
        return l.at_caller.packets.size() == sent.size() && l.at_target.packets.size() == sent.size();
    }));
    CHECK(l.at_caller.packets == sent);
    CHECK(l.at_target.packets == sent);
    CHECK_FALSE(l.at_caller.closed);
    CHECK_FALSE(l.at_target.closed);
    l.caller->detach();
    l.target->detach();
    l.caller->close("test finished");
    l.target->close("test finished");
}

TEST_CASE("over TLS, a peer that closes its socket without a close_notify reads as closed by the peer", "[tls]")
{
    VerifiedLinks l;
    // A record first, so that the link is reading on from the middle of the stream when the end comes.
    l.target->write_packet("hello", {});
    REQUIRE(dpool::test::run_until(l.io, [&] { return l.at_caller.packets.size() == 1; }));
    l.target->detach();
    l.target->close("going away"); // shuts the socket down: no close_notify
    REQUIRE(dpool::test::run_until(l.io, [&] { return l.at_caller.closed.has_value(); }));
    CHECK(*l.at_caller.closed == "peer closed the connection");
    l.caller->detach();
}

TEST_CASE("over TLS, an empty read or write completes at once with nothing moved, as on a plain socket", "[tls]")
{
    asio::io_context io;
    TlsPair pair;
    verified_pair(io, pair);
    std::optional<std::pair<error_code, std::size_t>> wrote;
    std::optional<std::pair<error_code, std::size_t>> read;
    char byte = 0;
    pair.connecting->async_write_some(asio::const_buffer(&byte, 0), [&](const error_code& ec, std::size_t n) {
        wrote.emplace(ec, n);
    });
    // Nothing was sent, so a read that waited for a record would wait until the deadline of run_until.
    pair.accepting->async_read_some(asio::mutable_buffer(&byte, 0), [&](const error_code& ec, std::size_t n) {
        read.emplace(ec, n);
    });
    CHECK_FALSE(wrote); // never inside the call that starts it
    CHECK_FALSE(read);
    REQUIRE(dpool::test::run_until(io, [&] { return wrote.has_value() && read.has_value(); }));
    CHECK_FALSE(wrote->first);
    CHECK(wrote->second == 0);
    CHECK_FALSE(read->first);
    CHECK(read->second == 0);
}
