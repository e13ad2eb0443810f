#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "pool/caller.hpp"
#include "pool/pool_stats.hpp"
#include "protocol/rpc.hpp"

namespace dpool::pool {

// Everything a pool tells its callers, in the pool's own words. The api layer implements it (api/replies.hpp),
// so the terms of the caller protocol are written in one place; a caller whose node has gone gets nothing.
class Answers {
public:
    virtual ~Answers() = default;

    // ok: a send queued, a destroy done.
    virtual void ok(const CallerView& caller) const = 0;
    virtual void error(const CallerView& caller, const Failure& failure) const = 0;
    // The pool is up: {ok, PoolId}.
    virtual void pool_started(const CallerView& caller, std::uint64_t pool) const = 0;
    // A checkout got connection `conn` (node `node`) under lease `lease`.
    virtual void granted(const CallerView& caller, std::uint32_t conn, std::uint64_t lease,
                         std::string_view node) const = 0;
    // A cast batch of `count` messages is queued.
    virtual void batch_queued(const CallerView& caller, std::int64_t count) const = 0;
    // The target answered a request (gen_server call, or a call through rex) with `answer` (encoded).
    virtual void answered(const CallerView& caller, std::string_view answer) const = 0;
    // The process a request went to is down (or never was): `reason` encoded.
    virtual void destination_down(const CallerView& caller, std::string_view reason) const = 0;
    // A spawned call (erpc:execute_call on the target) ended.
    virtual void call_ended(const CallerView& caller, const protocol::CallExit& exit) const = 0;
    // The target could not spawn a call: `reason` (an encoded atom such as system_limit).
    virtual void call_not_spawned(const CallerView& caller, std::string_view reason) const = 0;
    virtual void stats(const CallerView& caller, const PoolStats& stats) const = 0;
};

// Whether a destroy may begin: not when one has begun already, and then its caller (if any) is answered
// invalid_pool, as for any request to a pool being destroyed.
inline bool may_begin_destroy(bool destroying, const std::optional<Caller>& destroyer, const Answers& answers)
{
    if (destroying && destroyer) {
        answers.error(destroyer->view(), "invalid_pool");
    }
    return !destroying;
}

} // namespace dpool::pool
