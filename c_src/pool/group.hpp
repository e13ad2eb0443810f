#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "pool/caller.hpp"
#include "pool/group_config.hpp"
#include "pool/group_picker.hpp"
#include "pool/member_events.hpp"
#include "pool/pool.hpp"
#include "pool/pool_stats.hpp"

namespace dpool::pool {

// Member k's connection ids are k << kMemberConnIdBits above its connections' indexes (below
// kMaxConnectionsPerPool, 1000), so that a lease's ConnId names its member.
inline constexpr unsigned kMemberConnIdBits = 10;

// A group at one moment (stats).
struct GroupStats {
    std::uint64_t group_id = 0;
    std::string name;
    Strategy strategy = Strategy::round_robin;
    bool draining = false;
    std::string owner;
    std::uint32_t owner_grace_ms = 0;
    std::uint32_t acquire_timeout_ms = 0; // the longest of its members'
    std::uint64_t retries = 0;          // a connection_failed before anything was written, served by another member
    std::uint64_t moved_waiters = 0;    // callers in line of a member being removed, served by another member
    std::uint64_t skipped_down = 0;     // operations the strategy (or key) alone would have sent to a member down
    std::uint64_t member_refusals = 0;  // add_target refused: kMaxGroupMembers (limit_refusals)
    struct Member {
        PoolStats stats;
        bool up = false;
        bool removing = false;
        std::uint64_t picked = 0; // operations the group sent it (retries included)
    };
    std::vector<Member> members; // in the order they joined
};

// One handle over one ordinary pool per target (its members), picking a member per operation: by the
// group's strategy, or by a key's rendezvous weight. A member is a pool in every other respect (its own
// options, stats and lifecycle), owned by the service like any pool and destroyed with its group. Members
// that cannot serve a caller before anything of its operation was written hand it back here
// (MemberEvents::take_over), and another member that is up serves it: once for a connection_failed, always
// for a member being removed.
class Group final : public std::enable_shared_from_this<Group>, private MemberEvents {
public:
    Group(PoolContext& context, std::uint64_t id, GroupConfig config);
    ~Group();

    Group(const Group&) = delete;
    Group& operator=(const Group&) = delete;

    std::uint64_t id() const { return id_; }
    const GroupConfig& config() const { return config_; }
    bool draining() const { return draining_; }
    const std::string& label() const { return label_; }

    // No slot is free for another member.
    bool full() const;
    // An add_target refused by kMaxGroupMembers: counted (stats: limit_refusals), and the text that says so.
    std::string refuse_member();
    // The member whose target is `target` (the same node name), not being removed; nullptr for none.
    Pool* member_for(std::string_view target) const;
    // Another member than `member` is picked (joined, not being removed): removing `member` leaves the group
    // one to serve.
    bool serves_without(const Pool& member) const;
    bool has_member(const Pool& member) const { return slot_of(member).has_value(); }
    // The longest acquire timeout of its members: how long a checkout through the group may wait.
    std::uint32_t acquire_timeout_ms() const;

    // Takes `member` (made by the service, not started) into a free slot (full() must be false). It starts
    // connecting at start() or admit(), and is picked once it has joined.
    void add(std::shared_ptr<Pool> member);
    // Starts every member added so far and answers `creator` once each has a connection up or failed its first
    // attempt: {ok, GroupId} when one is up (members that failed join too, and reconnect with their backoff),
    // else the first member's connection_failed (the group is then destroyed).
    void start(Caller creator);
    // Starts the members of a restored group (added so far), all joined at once; nobody is answered.
    void start_restored();
    // Starts `member` (just added) and answers `adder` once it settled: {ok, MemberId} when it is up (it joins),
    // else its connection_failed (and it is removed again).
    void admit(Pool& member, Caller adder);
    // Stops picking `member` at once and destroys it with `drain_ms` for its leases; `remover` is answered ok
    // (or {ok, MemberId}: `answer_member_id`) when it has drained. Its callers still in line go to other
    // members.
    void remove(Pool& member, std::optional<Caller> remover, std::uint32_t drain_ms, bool answer_member_id = false);

    // The member of the next operation (counted): by `key`, else by the strategy; `need_live`: a member with
    // a live connection (a cast batch takes no lease, so a member that is only reconnecting cannot serve it).
    // nullptr when no member has joined.
    Pool* pick(std::optional<std::uint64_t> key, bool need_live = false);
    // The member a lease's ConnId names (one being removed too); nullptr for none.
    Pool* member_of_conn(std::uint32_t conn) const;
    // The member whose lease the checkout sent with `tag` got, and that lease; lease_pending while it waits in
    // line in some member, invalid_connection when no member has it.
    std::variant<std::pair<Pool*, Pool::LeaseIds>, Failure> find_checkout(std::string_view tag) const;
    // Withdraws a checkout (or one-shot operation) of `pid` and `tag`, in whichever member it waits.
    void cancel(std::string_view pid, std::string_view tag);

    GroupStats snapshot() const;

    // Refuses new work, destroys every member with `drain_ms`, answers `destroyer` (if any) ok once all have
    // drained and closed; the service forgets the group then (context.drop_pool).
    void destroy(std::optional<Caller> destroyer, std::uint32_t drain_ms);

private:
    struct Member {
        std::shared_ptr<Pool> pool; // null: the slot is free
        bool joined = false;        // picked from now on
        bool removing = false;
        std::uint64_t picked = 0;
        std::uint64_t order = 0; // when it was added: stats list members in that order
    };
    // Callers waiting for members to settle: the group's creator, or an add_target. Members are named by their
    // order, never their slot: a member removed before it settled frees a slot that another may take.
    struct Admission {
        Caller caller;
        std::vector<std::uint64_t> orders;
        bool creation = false;
    };

    // MemberEvents.
    void on_member_progress(Pool& member) override;
    void on_member_closed(Pool& member) override;
    bool take_over(Pool& member, const CallerView& caller, const OneShotView* job, Clock::time_point deadline,
                   const Failover& failover, const Failure& failure) override;

    const Answers& answers() const { return *context_.answers; }
    std::optional<std::size_t> slot_of(const Pool& member) const;
    // The member for an operation; `exclude`: a retry away from that slot (nullptr when no other is up).
    Pool* pick_slot(std::optional<std::uint64_t> key, bool need_live, std::optional<std::size_t> exclude);
    // The member added as `order`; nullptr once it has left its slot.
    Member* member_by_order(std::uint64_t order);
    // Answers the admissions whose members have all settled (or been removed).
    void settle_admissions();
    // settle_admissions after the event being handled, never in the middle of it.
    void post_settle();
    void finish_destroy();

    PoolContext& context_;
    std::uint64_t id_;
    GroupConfig config_;
    std::string label_;
    std::vector<Member> members_; // by slot; never more than kMaxGroupMembers
    std::uint64_t next_order_ = 0;
    std::vector<Admission> admissions_;
    GroupPicker picker_;
    std::vector<Candidate> candidates_; // reused by every pick
    bool draining_ = false;
    bool finished_ = false;
    std::optional<Caller> destroyer_;
    bool settle_posted_ = false;
    std::uint64_t retries_ = 0;
    std::uint64_t moved_waiters_ = 0;
    std::uint64_t skipped_down_ = 0;
    std::uint64_t member_refusals_ = 0;
};

} // namespace dpool::pool
