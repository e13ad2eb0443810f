#pragma once

#include "pool/caller.hpp"
#include "pool/deadline_queue.hpp"
#include "pool/operations.hpp"

namespace dpool::pool {

class Pool;

// What a pool that is a member of a group (pool/group.hpp) tells its group. The group implements it; a pool
// that is in no group has none and acts alone.
class MemberEvents {
public:
    virtual ~MemberEvents() = default;

    // A connection of `member` came up, or an attempt to open one failed.
    virtual void on_member_progress(Pool& member) = 0;
    // `member` has finished its destroy: everything of it is closed.
    virtual void on_member_closed(Pool& member) = 0;
    // `member` cannot serve `caller`'s checkout (with `job`, a one-shot operation) and nothing of it was
    // written to the target: it failed with `failure` (connection_failed: no connection can be opened; or the
    // member is being removed). True when the group took the caller over (another member serves it, within
    // `deadline`); false: the member answers `failure` itself.
    virtual bool take_over(Pool& member, const CallerView& caller, const OneShotView* job, Clock::time_point deadline,
                           const Failover& failover, const Failure& failure) = 0;
};

} // namespace dpool::pool
