#include "pool/return_barrier.hpp"

#include <algorithm>

namespace dpool::pool {

std::optional<ReturnBarriers::Started> ReturnBarriers::start(Owner owner, std::span<const void* const> links)
{
    if (links.empty()) {
        return std::nullopt;
    }
    if (barriers_.size() >= max_barriers_) {
        ++overflows_;
        return std::nullopt;
    }
    Started started;
    started.id = ++next_id_;
    for (const void* link : links) {
        auto& state = links_[link];
        if (state.stalled) {
            ++started.skipped;
            continue;
        }
        // A probe of its own even when the link has one in flight: that one may have been read before this
        // request's caller sent whatever it knew of, so its answer proves nothing for this request.
        const std::uint64_t number = ++numbers_;
        state.probes.push_back(SentProbe{number, started.id});
        started.probes.push_back(Probe{link, number});
    }
    if (started.probes.empty()) {
        return std::nullopt;
    }
    barriers_.emplace(started.id,
                      Barrier{owner, static_cast<std::uint32_t>(started.probes.size()), started.skipped > 0});
    return started;
}

void ReturnBarriers::link_done(std::uint64_t id, std::vector<Finished>& out)
{
    const auto it = barriers_.find(id);
    if (it == barriers_.end()) {
        return; // expired already
    }
    if (--it->second.links_left == 0) {
        out.push_back(Finished{it->second.owner, !it->second.partial});
        barriers_.erase(it);
    }
}

std::optional<std::vector<ReturnBarriers::Finished>> ReturnBarriers::answered(const void* link, std::uint64_t number)
{
    const auto it = links_.find(link);
    if (it == links_.end()) {
        return std::nullopt;
    }
    auto& probes = it->second.probes;
    const auto answered_probe =
        std::find_if(probes.begin(), probes.end(), [number](const SentProbe& p) { return p.number == number; });
    if (answered_probe == probes.end()) {
        return std::nullopt;
    }
    std::vector<Finished> finished;
    const auto end = std::next(answered_probe);
    for (auto p = probes.begin(); p != end; ++p) {
        link_done(p->barrier, finished);
    }
    probes.erase(probes.begin(), end);
    it->second.stalled = false; // it answers again
    if (probes.empty()) {
        links_.erase(it);
    }
    return finished;
}

std::vector<ReturnBarriers::Finished> ReturnBarriers::link_gone(const void* link)
{
    std::vector<Finished> finished;
    const auto it = links_.find(link);
    if (it == links_.end()) {
        return finished;
    }
    for (const auto& p : it->second.probes) {
        link_done(p.barrier, finished);
    }
    links_.erase(it);
    return finished;
}

std::optional<ReturnBarriers::Finished> ReturnBarriers::expire(std::uint64_t id)
{
    const auto it = barriers_.find(id);
    if (it == barriers_.end()) {
        return std::nullopt;
    }
    const Finished finished{it->second.owner, false};
    barriers_.erase(it);
    // Rare (a node that does not read): a scan of every link is fine here.
    for (auto& [link, state] : links_) {
        if (std::any_of(state.probes.begin(), state.probes.end(), [id](const SentProbe& p) { return p.barrier == id; })) {
            state.stalled = true;
        }
    }
    return finished;
}

std::size_t ReturnBarriers::probes_on(const void* link) const
{
    const auto it = links_.find(link);
    return it == links_.end() ? 0 : it->second.probes.size();
}

bool ReturnBarriers::stalled(const void* link) const
{
    const auto it = links_.find(link);
    return it != links_.end() && it->second.stalled;
}

} // namespace dpool::pool
