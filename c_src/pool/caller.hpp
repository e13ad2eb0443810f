#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "protocol/control.hpp"
#include "protocol/term_writer.hpp"
#include "transport/dist_link.hpp"

namespace dpool::pool {

// Where an answer goes: the caller's pid and tag (encoded, echoed as they came) and the connection to its
// node. CallerView borrows them from the packet being handled; Caller owns copies for answers given later.
struct CallerView {
    const std::shared_ptr<transport::DistLink>& link;
    std::string_view from;
    std::string_view tag;
};

struct Caller {
    std::shared_ptr<transport::DistLink> link;
    std::string from;
    std::string tag;

    Caller() = default;
    explicit Caller(const CallerView& v) : link(v.link), from(v.from), tag(v.tag) {}
    CallerView view() const { return CallerView{link, from, tag}; }
};

// Sends `From ! {Tag, Reply}`, with Reply written by `write_reply`. A caller whose node has gone gets nothing.
template <class WriteReply>
void reply(const CallerView& caller, WriteReply&& write_reply)
{
    if (!caller.link || !caller.link->is_open()) {
        return;
    }
    auto w = caller.link->begin_packet();
    w.version();
    protocol::write_send(w, caller.from);
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
