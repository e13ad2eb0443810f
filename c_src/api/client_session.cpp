#include "api/client_session.hpp"

#include <utility>

#include <spdlog/spdlog.h>

#include "util/log.hpp"

namespace dpool::api {

ClientSession::ClientSession(SessionOwner& owner, std::shared_ptr<transport::DistLink> link, std::size_t lane,
                             const protocol::NodeIdentity& self)
    : owner_(owner), link_(std::move(link)), lane_(lane), self_(self)
{
}

ClientSession::~ClientSession()
{
    link_->detach();
    link_->close("service stopped");
}

void ClientSession::on_packet(transport::DistLink&, std::string_view packet)
{
    owner_.on_client_packet(*this, packet);
}

bool ClientSession::on_spliced_packet(transport::DistLink&, std::string_view prefix,
                                      std::unique_ptr<transport::SplicedTail>& tail)
{
    return owner_.on_client_spliced_packet(*this, prefix, tail);
}

void ClientSession::on_closed(transport::DistLink&, std::string_view reason)
{
    log::write(spdlog::level::info, {.caller = link_->peer_node()}, "caller disconnected: {}", reason);
    owner_.on_client_closed(*this);
}

} // namespace dpool::api
