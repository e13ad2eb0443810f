#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "protocol/control.hpp"
#include "protocol/node_identity.hpp"
#include "protocol/term_reader.hpp"
#include "protocol/term_writer.hpp"
#include "transport/dist_link.hpp"

namespace dpool::pool {

// Where an answer goes: the caller's pid and tag (encoded, echoed as they came), the connection to its node,
// and the C-node identity that connection was made with (the lane it came in on): the monitors the C-node
// sets on the caller are that identity's. CallerView borrows them from the packet being handled; Caller owns
// copies for answers given later. A tag `[alias | Alias]` is answered to the alias (see reply()).
struct CallerView {
    const std::shared_ptr<transport::DistLink>& link;
    const protocol::NodeIdentity* self;
    std::string_view from;
    std::string_view tag;
};

struct Caller {
    std::shared_ptr<transport::DistLink> link;
    const protocol::NodeIdentity* self = nullptr;
    std::string from;
    std::string tag;

    Caller() = default;
    explicit Caller(const CallerView& v) : link(v.link), self(v.self), from(v.from), tag(v.tag) {}
    CallerView view() const { return CallerView{link, self, from, tag}; }
    // Assigned, not replaced: the strings keep their capacity from one caller to the next.
    void assign(const CallerView& v)
    {
        link = v.link;
        self = v.self;
        from.assign(v.from);
        tag.assign(v.tag);
    }
};

// The alias of a tag `[alias | Alias]` (gen_server's tags since OTP 24), encoded; empty for any other tag.
// Answers to such a caller go to the alias: once the caller stops waiting it deactivates the alias, and its
// node then drops a late answer instead of putting it in the caller's mailbox.
inline std::string_view reply_alias(std::string_view tag)
{
    protocol::TermReader r(tag);
    if (r.list_header() != 1u || r.atom() != std::optional<std::string_view>("alias")) {
        return {};
    }
    const std::string_view tail = r.rest();
    return r.ref() && r.at_end() ? tail : std::string_view{};
}

// Sends `From ! {Tag, Reply}` (to the alias of an alias tag), with Reply written by `write_reply`. A caller
// whose node has gone gets nothing.
template <class WriteReply>
void reply(const CallerView& caller, WriteReply&& write_reply)
{
    if (!caller.link || !caller.link->is_open()) {
        return;
    }
    auto w = caller.link->begin_packet();
    w.version();
    // The sender of an alias send is the C-node's pid under the identity of the caller's lane.
    if (const auto alias = reply_alias(caller.tag); !alias.empty() && caller.self != nullptr) {
        protocol::write_alias_send(w, caller.self->self_pid(), alias);
    } else {
        protocol::write_send(w, caller.from);
    }
    w.version();
    w.tuple(2);
    w.raw(caller.tag);
    write_reply(w);
    caller.link->end_packet();
}

// An error answer: {error, Error} (an atom: pool_exhausted, invalid_pool...), or, where the cause is known,
// {error, {Error, {Kind, Text}}}: Kind an atom naming the cause, Text a binary that explains it
// (connection_failed: docs/PROTOCOL.md, "Errors").
struct Failure {
    std::string_view error;
    std::string_view kind; // empty: the bare atom; otherwise a static name
    std::string text;

    Failure(const char* e) : error(e) {}
    Failure(std::string_view e) : error(e) {}
    Failure(std::string_view e, std::string_view k, std::string t) : error(e), kind(k), text(std::move(t)) {}
};

inline void reply_error(const CallerView& caller, const Failure& failure)
{
    reply(caller, [&failure](protocol::TermWriter& w) {
        w.tuple(2);
        w.atom("error");
        if (failure.kind.empty()) {
            w.atom(failure.error);
            return;
        }
        w.tuple(2);
        w.atom(failure.error);
        w.tuple(2);
        w.atom(failure.kind);
        w.binary(failure.text);
    });
}

inline void reply_atom(const CallerView& caller, std::string_view atom)
{
    reply(caller, [atom](protocol::TermWriter& w) { w.atom(atom); });
}

} // namespace dpool::pool
