#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>

#include "util/byte_buffer.hpp"

namespace dpool::protocol {

// The normal distribution header (erts/doc/src/erl_ext_dist.xml, "Distribution Header"): 131, 68,
// NumberOfAtomCacheRefs, Flags, AtomCacheRefs. Both ends use it instead of the pass-through byte once both
// announced DFLAG_DIST_HDR_ATOM_CACHE; the terms after it carry no version byte, and an atom in them may be
// an ATOM_CACHE_REF to the header's N-th reference, which names an entry of the sender's atom cache.
inline constexpr std::uint64_t kDflagDistHdrAtomCache = 0x2000;
inline constexpr std::uint8_t kDistHeader = 68;
inline constexpr std::uint8_t kAtomCacheRef = 82;
// 8 segments of 256 entries.
inline constexpr std::size_t kAtomCacheSize = 2048;

// One direction's atom cache, as the receiving end keeps it: the entries the sender defined so far.
// Sparse, since a peer uses few of the 2048 entries and an idle connection should hold little memory.
class AtomCacheIn {
public:
    const std::string* find(std::uint16_t index) const
    {
        const auto it = entries_.find(index);
        return it == entries_.end() ? nullptr : &it->second;
    }
    void set(std::uint16_t index, std::string_view text) { entries_[index].assign(text); }

private:
    std::unordered_map<std::uint16_t, std::string> entries_;
};

// The sending end's record of what the peer holds in each entry it was sent, so that an atom is sent as
// text only the first time (or after another atom took its entry).
class AtomCacheOut {
public:
    // True when `text` must be sent as a new entry at `index`; recorded as sent either way.
    bool define(std::uint16_t index, std::string_view text)
    {
        const auto [it, inserted] = entries_.try_emplace(index, text);
        if (!inserted) {
            if (it->second == text) {
                return false;
            }
            it->second.assign(text);
        }
        ++changes_;
        return true;
    }
    // Grows whenever an entry changes: a packet head encoded with references stays valid while it does not.
    std::uint64_t changes() const { return changes_; }

private:
    std::unordered_map<std::uint16_t, std::string> entries_;
    std::uint64_t changes_ = 0;
};

// A reference of a header being written: the cache entry and its atom; `is_new` sends the text along.
struct AtomRef {
    std::uint16_t index = 0;
    std::string_view text;
    bool is_new = false;
};

// Appends 131, 68 and the references (at most 255) to `out`. The terms that follow refer to refs[i] as
// ATOM_CACHE_REF i.
void write_dist_header(ByteBuffer& out, std::span<const AtomRef> refs);

// Rewrites a packet that starts with a distribution header into the pass-through form the rest of the
// C-node reads ('p', 131, control term, and 131, message when there is one), every ATOM_CACHE_REF replaced
// by the atom it stands for; the header's new entries go into `cache`. Appends to `out`. malformed (and
// `cache` and `out` unchanged) for a bad header, a reference to an entry never defined, a bad term;
// too_large (the same) when the rewritten packet would be longer than `max_bytes`: a reference of 2 bytes
// stands for an atom of up to 65535, so a packet could otherwise grow 30,000-fold.
enum class Normalized : std::uint8_t { ok, malformed, too_large };
Normalized normalize_packet(std::string_view packet, AtomCacheIn& cache, ByteBuffer& out, std::size_t max_bytes);
// The same with no bound on the rewritten packet: true when ok.
inline bool normalize_packet(std::string_view packet, AtomCacheIn& cache, ByteBuffer& out)
{
    return normalize_packet(packet, cache, out, SIZE_MAX) == Normalized::ok;
}

} // namespace dpool::protocol
