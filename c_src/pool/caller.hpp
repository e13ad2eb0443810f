#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "protocol/node_identity.hpp"
#include "transport/dist_link.hpp"

namespace dpool::pool {

// Where an answer goes: the caller's pid and tag (encoded, echoed as they came), the connection to its node,
// and the C-node identity that connection was made with (the lane it came in on): the monitors the C-node
// sets on the caller are that identity's. CallerView borrows them from the packet being handled; Caller owns
// copies for answers given later (api/replies.hpp writes the answers).
struct CallerView {
    const std::shared_ptr<transport::DistLink>& link;
    const protocol::NodeIdentity* self;
    std::string_view from;
    std::string_view tag;
    // Encoded bytes every answer to this caller starts with, inside {Tag, _}: the {leased, Ids, Answer} that
    // tells a quiet checkout's holder its lease (api::leased_wrap). Empty: the answer as it is.
    std::string_view reply_wrap{};
};

struct Caller {
    std::shared_ptr<transport::DistLink> link;
    const protocol::NodeIdentity* self = nullptr;
    std::string from;
    std::string tag;
    std::string reply_wrap;

    Caller() = default;
    explicit Caller(const CallerView& v)
        : link(v.link), self(v.self), from(v.from), tag(v.tag), reply_wrap(v.reply_wrap)
    {
    }
    CallerView view() const { return CallerView{link, self, from, tag, reply_wrap}; }
    // Assigned, not replaced: the strings keep their capacity from one caller to the next.
    void assign(const CallerView& v)
    {
        link = v.link;
        self = v.self;
        from.assign(v.from);
        tag.assign(v.tag);
        reply_wrap.assign(v.reply_wrap);
    }
};

// Why an operation failed: an error atom (pool_exhausted, invalid_pool...) and, where the cause is known, its
// kind (an atom naming the cause) and a text that explains it (connection_failed: docs/PROTOCOL.md, "Errors").
struct Failure {
    std::string_view error;
    std::string_view kind; // empty: the bare atom; otherwise a static name
    std::string text;

    Failure(const char* e) : error(e) {}
    Failure(std::string_view e) : error(e) {}
    Failure(std::string_view e, std::string_view k, std::string t) : error(e), kind(k), text(std::move(t)) {}
};

} // namespace dpool::pool
