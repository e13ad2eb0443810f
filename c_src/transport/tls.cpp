#include "transport/tls.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>

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

    bool operator()(bool preverified, ssl::verify_context& context) const
    {
        X509_STORE_CTX* store = context.native_handle();
        if (!preverified || X509_STORE_CTX_get_error_depth(store) > 0) {
            return preverified;
        }
        X509* cert = X509_STORE_CTX_get_current_cert(store);
        const bool named = X509_check_host(cert, host_.data(), host_.size(), 0, nullptr) == 1 ||
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

// OpenSSL's errors for files say little ("asio.ssl error"): one that cannot be read is named with the
// system's reason, one that can is not PEM of the kind expected.
std::string file_error(std::string_view what, const std::string& path, const error_code& ec)
{
    std::ifstream file(path);
    if (!file) {
        return fmt::format("cannot read the {} {}: {}", what, path, std::strerror(errno));
    }
    return fmt::format("the {} {} is not usable: {} ({})", what, path, ec.message(),
                       what == "keyfile" ? "it must hold the PEM private key of the certfile; an encrypted one needs "
                                           "its password"
                                         : "it must hold PEM certificates");
}

std::optional<std::string> load_identity(ssl::context& context, const TlsSettings& settings)
{
    if (settings.certfile.empty()) {
        return std::nullopt;
    }
    if (!settings.password.empty()) {
        context.set_password_callback(
            [password = settings.password](std::size_t, ssl::context::password_purpose) { return password; });
    }
    error_code ec;
    context.use_certificate_chain_file(settings.certfile, ec);
    if (ec) {
        return file_error("certfile", settings.certfile, ec);
    }
    // As with OTP's ssl, the key may be in the certificate's file. OpenSSL refuses a key that is not the
    // certificate's here ("key values mismatch").
    const std::string& keyfile = settings.keyfile.empty() ? settings.certfile : settings.keyfile;
    context.use_private_key_file(keyfile, ssl::context::pem, ec);
    if (ec) {
        return file_error("keyfile", keyfile, ec);
    }
    return std::nullopt;
}

// Why a TLS handshake failed, in words a user can act on.
std::string describe_failure(TlsSocket& tls, TlsMode mode, std::string_view host, const error_code& ec)
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
        error_code ec;
        context->load_verify_file(settings.cacertfile, ec);
        if (ec) {
            return file_error("cacertfile", settings.cacertfile, ec);
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
    TlsSocket* tls = stream.tls();
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
    co_await tls->async_handshake(role == TlsRole::connect ? ssl::stream_base::client : ssl::stream_base::server,
                                  asio::redirect_error(asio::use_awaitable, ec));
    if (!ec) {
        co_return std::nullopt;
    }
    co_return deadline.expired() ? std::string("timed out") : describe_failure(*tls, mode, host, ec);
}

} // namespace dpool::transport
