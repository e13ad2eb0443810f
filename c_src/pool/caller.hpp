#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "protocol/control.hpp"
#include "protocol/term_reader.hpp"
#include "protocol/term_writer.hpp"
#include "transport/dist_link.hpp"

namespace dpool::pool {

// Where an answer goes: the caller's pid and tag (encoded, echoed as they came) and the connection to its
// node. CallerView borrows them from the packet being handled; Caller owns copies for answers given later.
// `sender` is the C-node's own pid, the sender of answers sent to an alias; it views the service's identity,
// which outlives every pool and caller.
struct CallerView {
    const std::shared_ptr<transport::DistLink>& link;
    std::string_view from;
    std::string_view tag;
    std::string_view sender;
};

struct Caller {
    std::shared_ptr<transport::DistLink> link;
    std::string from;
    std::string tag;
    std::string_view sender;

    Caller() = default;
    explicit Caller(const CallerView& v) : link(v.link), from(v.from), tag(v.tag), sender(v.sender) {}
    CallerView view() const { return CallerView{link, from, tag, sender}; }
    // Assigned, not replaced: a slot's strings keep their capacity from one caller to the next.
    void assign(const CallerView& v)
    {
        link = v.link;
        from.assign(v.from);
        tag.assign(v.tag);
        sender = v.sender;
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
    if (const auto alias = reply_alias(caller.tag); !alias.empty() && !caller.sender.empty()) {
        protocol::write_alias_send(w, caller.sender, alias);
    } else {
        protocol::write_send(w, caller.from);
    }
    w.version();
    w.tuple(2);
    w.raw(caller.tag);
    write_reply(w);
    caller.link->end_packet();
}

// {error, Reason} with an atom reason.
inline void reply_error(const CallerView& caller, std::string_view reason)
{
    reply(caller, [reason](protocol::TermWriter& w) {
        w.tuple(2);
        w.atom("error");
        w.atom(reason);
    });
}

inline void reply_atom(const CallerView& caller, std::string_view atom)
{
    reply(caller, [atom](protocol::TermWriter& w) { w.atom(atom); });
}

} // namespace dpool::pool
