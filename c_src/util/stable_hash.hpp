#pragma once

#include <cstdint>
#include <string_view>

// Hashes whose values are fixed by their definition, never by the platform, the build or the run: a pool
// group's key picks the same target in every incarnation of the C-node (docs/PROTOCOL.md, "Pool groups").
namespace dpool::util {

// FNV-1a (64 bits) of `bytes`, continuing from `state` (the offset basis to start).
constexpr std::uint64_t kFnv1aBasis = 0xcbf29ce484222325ULL;
constexpr std::uint64_t fnv1a64(std::string_view bytes, std::uint64_t state = kFnv1aBasis)
{
    for (const char c : bytes) {
        state ^= static_cast<std::uint8_t>(c);
        state *= 0x100000001b3ULL;
    }
    return state;
}

// splitmix64's finaliser: spreads every input bit over the whole word (FNV-1a alone leaves its low bits weak).
constexpr std::uint64_t mix64(std::uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

// The rendezvous (highest random weight) weight of `key` on `target`: FNV-1a over the key's 8 bytes (little
// endian) and the target's name, finalised by mix64. The member of highest weight among those up takes the key,
// so a key keeps its target while that target is up, and only a lost target's keys move.
constexpr std::uint64_t rendezvous_weight(std::uint64_t key, std::string_view target)
{
    std::uint64_t state = kFnv1aBasis;
    for (int i = 0; i < 8; ++i) {
        state ^= (key >> (8 * i)) & 0xff;
        state *= 0x100000001b3ULL;
    }
    return mix64(fnv1a64(target, state));
}

} // namespace dpool::util
