#pragma once

#include <cstddef>
#include <memory>
#include <string_view>

#include "protocol/node_identity.hpp"
#include "transport/dist_link.hpp"

namespace dpool::api {

class ClientSession;

// Whoever a ClientSession reports to (the Service): what came in on the link, and that it closed. Both run on
// the link's executor, inside the session's own callback: the owner must not destroy the session from them.
class SessionOwner {
public:
    virtual void on_client_packet(ClientSession& session, std::string_view packet) = 0;
    virtual void on_client_closed(ClientSession& session) = 0;
    // A big packet whose tail is in pipes (transport::LinkHandler::on_spliced_packet): false leaves it to
    // on_client_packet, whole.
    virtual bool on_client_spliced_packet(ClientSession&, std::string_view /*prefix*/,
                                          std::unique_ptr<transport::SplicedTail>& /*tail*/)
    {
        return false;
    }

protected:
    ~SessionOwner() = default;
};

// A connection from a caller node to one of the C-node's lanes. It passes the link's packets and its closing
// to its owner; destroying it detaches it from the link and closes the link.
class ClientSession final : public transport::LinkHandler {
public:
    // `self`: the identity of the lane the caller connected to, which must outlive the session.
    ClientSession(SessionOwner& owner, std::shared_ptr<transport::DistLink> link, std::size_t lane,
                  const protocol::NodeIdentity& self);
    ~ClientSession();

    ClientSession(const ClientSession&) = delete;
    ClientSession& operator=(const ClientSession&) = delete;

    void on_packet(transport::DistLink&, std::string_view packet) override;
    bool on_spliced_packet(transport::DistLink&, std::string_view prefix,
                           std::unique_ptr<transport::SplicedTail>& tail) override;
    void on_closed(transport::DistLink&, std::string_view reason) override;

    const std::shared_ptr<transport::DistLink>& link() const { return link_; }
    std::size_t lane() const { return lane_; }
    // The C-node identity this caller node connected to.
    const protocol::NodeIdentity& self() const { return self_; }

private:
    SessionOwner& owner_;
    std::shared_ptr<transport::DistLink> link_;
    std::size_t lane_;
    const protocol::NodeIdentity& self_;
};

} // namespace dpool::api
