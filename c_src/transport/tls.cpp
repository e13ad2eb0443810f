#include "transport/tls.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <fmt/format.h>

namespace dpool::transport {

namespace {

bool is_ip_address(std::string_view host)
{
    error_code ec;
    asio::ip::make_address(std::string(host), ec);
    return !ec;
}

// On outbound verified connections the certificate must name the target's host. OTP's inet_tls_dist checks
// the host part of a node name as a DNS name, so clusters on IP addresses carry certificates with
// DNS:127.0.0.1-style names; an IP address matches either that or an IP entry.
class HostCheck {
public:
    explicit HostCheck(std::string host) : host_(std::move(host)), ip_(is_ip_address(host_)) {}

    bool operator()(bool preverified, X509_STORE_CTX* store) const
    {
        if (!preverified || X509_STORE_CTX_get_error_depth(store) > 0) {
            return preverified;
        }
        X509* cert = X509_STORE_CTX_get_current_cert(store);
        // No partial wildcards ("w*.example.com"), and none at all for an address: *.0.0.1 names no address.
        const unsigned flags = ip_ ? X509_CHECK_FLAG_NO_WILDCARDS : X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS;
        const bool named = X509_check_host(cert, host_.data(), host_.size(), flags, nullptr) == 1 ||
                           (ip_ && X509_check_ip_asc(cert, host_.c_str(), 0) == 1);
        if (!named) {
            X509_STORE_CTX_set_error(store, X509_V_ERR_HOSTNAME_MISMATCH);
        }
        return named;
    }

private:
    std::string host_;
    bool ip_;
};

// A descriptor closed when it goes out of scope.
struct OwnedFd {
    explicit OwnedFd(int descriptor) : fd(descriptor) {}
    OwnedFd(const OwnedFd&) = delete;
    OwnedFd& operator=(const OwnedFd&) = delete;
    ~OwnedFd()
    {
        if (fd >= 0) {
            ::close(fd);
        }
    }
    const int fd;
};

// PEM files are a few KiB; a bigger one is no certificate or key.
constexpr std::size_t kMaxPemFileBytes = 1 << 20;

// Reads a PEM file whole, or says why not. The path may come from a caller (a pool's option tls) and is read
// on the event loop: only a regular file of at most kMaxPemFileBytes is read, and opening never waits (a FIFO,
// a terminal), so no path can hold the C-node up.
std::variant<std::string, std::string> read_pem_file(std::string_view what, const std::string& path)
{
    const auto failed = [&](std::string_view why) {
        return std::variant<std::string, std::string>(std::in_place_index<1>,
                                                       fmt::format("cannot read the {} {}: {}", what, path, why));
    };
    const OwnedFd file{::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY)};
    const int fd = file.fd;
    if (fd < 0) {
        return failed(std::strerror(errno));
    }
    struct stat status {};
    if (::fstat(fd, &status) != 0) {
        return failed(std::strerror(errno));
    }
    if (!S_ISREG(status.st_mode)) {
        return failed("not a regular file");
    }
    if (static_cast<std::size_t>(status.st_size) > kMaxPemFileBytes) {
        return failed(fmt::format("larger than {} bytes", kMaxPemFileBytes));
    }
    std::string bytes(static_cast<std::size_t>(status.st_size), '\0');
    std::size_t got = 0;
    while (got < bytes.size()) {
        const ssize_t n = ::read(fd, bytes.data() + got, bytes.size() - got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return failed(n < 0 ? std::strerror(errno) : "it shrank while being read");
        }
        got += static_cast<std::size_t>(n);
    }
    return std::variant<std::string, std::string>(std::in_place_index<0>, std::move(bytes));
}

// OpenSSL's reasons for PEM it cannot use say little alone ("unsupported", "no start line"): what the file
// must hold comes with them.
std::string unusable(std::string_view what, const std::string& path, const error_code& ec)
{
    return fmt::format("the {} {} is not usable: {} ({})", what, path, ec.message(),
                       what == "keyfile" ? "it must hold the PEM private key of the certfile; an encrypted one needs "
                                           "its password"
                                         : "it must hold PEM certificates");
}

// The bytes of the PEM file `path` handed to `use` (a context's use_* or add_* of a buffer); why not, on
// failure.
template <class Use>
std::optional<std::string> use_pem_file(std::string_view what, const std::string& path, Use use)
{
    auto read = read_pem_file(what, path);
    if (read.index() == 1) {
        return std::get<1>(std::move(read));
    }
    const std::string& bytes = std::get<0>(read);
    error_code ec;
    use(asio::buffer(bytes), ec);
    if (ec) {
        return unusable(what, path, ec);
    }
    return std::nullopt;
}

std::optional<std::string> load_identity(ssl::context& context, const TlsSettings& settings)
{
    if (settings.certfile.empty()) {
        return std::nullopt;
    }
    // Always a callback: without one, OpenSSL would ask for an encrypted key's passphrase on the terminal or
    // standard input, and wait there.
    context.set_password_callback(
        [password = settings.password](std::size_t, ssl::context::password_purpose) { return password; });
    if (auto failed = use_pem_file("certfile", settings.certfile, [&](auto buffer, error_code& ec) {
            context.use_certificate_chain(buffer, ec);
        })) {
        return failed;
    }
    // As with OTP's ssl, the key may be in the certificate's file. OpenSSL refuses a key that is not the
    // certificate's here ("key values mismatch").
    const std::string& keyfile = settings.keyfile.empty() ? settings.certfile : settings.keyfile;
    return use_pem_file("keyfile", keyfile,
                        [&](auto buffer, error_code& ec) { context.use_private_key(buffer, ssl::context::pem, ec); });
}

// Why a TLS handshake failed, in words a user can act on.
std::string describe_failure(TlsChannel& tls, TlsMode mode, std::string_view host, const error_code& ec)
{
    if (mode == TlsMode::verified) {
        const long verdict = SSL_get_verify_result(tls.native_handle());
        if (verdict == X509_V_ERR_HOSTNAME_MISMATCH) {
            return fmt::format("its certificate is not for host {} (verified TLS)", host);
        }
        if (verdict != X509_V_OK) {
            return fmt::format("its certificate was refused (verified TLS): {}",
                               X509_verify_cert_error_string(verdict));
        }
    }
    if (ec == asio::error::eof || ec == ssl::error::stream_truncated || ec == asio::error::connection_reset) {
        return "it closed the connection in the TLS handshake (does it run plain distribution, or refuse our "
               "certificate?)";
    }
    return fmt::format("the TLS handshake failed: {}", ec.message());
}

} // namespace

std::string_view tls_mode_name(TlsMode mode)
{
    switch (mode) {
    case TlsMode::none:
        return "none";
    case TlsMode::unverified:
        return "unverified";
    case TlsMode::verified:
        return "verified";
    }
    return "none";
}

std::optional<TlsMode> parse_tls_mode(std::string_view name)
{
    for (const auto mode : {TlsMode::none, TlsMode::unverified, TlsMode::verified}) {
        if (name == tls_mode_name(mode)) {
            return mode;
        }
    }
    return std::nullopt;
}

std::variant<TlsContext, std::string> make_tls_context(const TlsSettings& settings, TlsRole role)
{
    if (settings.mode == TlsMode::none) {
        return TlsContext{};
    }
    if (role == TlsRole::accept && settings.certfile.empty()) {
        return fmt::format("TLS mode {} needs a certfile (and its keyfile): the lanes show it to callers",
                           tls_mode_name(settings.mode));
    }
    if (settings.mode == TlsMode::verified && settings.cacertfile.empty()) {
        return std::string("TLS mode verified needs a cacertfile: the CA that peers' certificates must lead to");
    }
    auto context = std::make_shared<ssl::context>(role == TlsRole::accept ? ssl::context::tls_server
                                                                          : ssl::context::tls_client);
    // TLS 1.2 and 1.3, as OTP 25's ssl offers by default.
    context->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                         ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 | ssl::context::no_compression);
    if (auto failed = load_identity(*context, settings)) {
        return *std::move(failed);
    }
    if (settings.mode == TlsMode::verified) {
        if (auto failed = use_pem_file("cacertfile", settings.cacertfile, [&](auto buffer, error_code& ec) {
                context->add_certificate_authority(buffer, ec);
            })) {
            return *std::move(failed);
        }
        context->set_verify_mode(role == TlsRole::accept ? ssl::verify_peer | ssl::verify_fail_if_no_peer_cert
                                                         : ssl::verify_peer);
    } else {
        context->set_verify_mode(ssl::verify_none);
    }
    return TlsContext{settings.mode, std::move(context)};
}

asio::awaitable<std::optional<std::string>> tls_handshake(DistStream& stream, TlsMode mode, TlsRole role,
                                                          std::string_view host, DeadlineGuard& deadline)
{
    TlsChannel* tls = stream.tls();
    if (tls == nullptr) {
        co_return std::nullopt;
    }
    if (role == TlsRole::connect) {
        if (mode == TlsMode::verified) {
            tls->set_verify_callback(HostCheck(std::string(host)));
        }
        // Server name indication takes host names only (RFC 6066), never addresses.
        if (!is_ip_address(host)) {
            SSL_set_tlsext_host_name(tls->native_handle(), std::string(host).c_str());
        }
    }
    deadline.guard(stream.socket());
    error_code ec;
    co_await tls->async_handshake(role == TlsRole::connect ? TlsChannel::Role::client : TlsChannel::Role::server,
                                  asio::redirect_error(asio::use_awaitable, ec));
    if (!ec) {
        co_return std::nullopt;
    }
    co_return deadline.expired() ? std::string("timed out") : describe_failure(*tls, mode, host, ec);
}

} // namespace dpool::transport
