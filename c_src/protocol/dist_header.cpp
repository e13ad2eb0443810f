#include "protocol/dist_header.hpp"

#include <array>
#include <cstdint>

#include <boost/container/small_vector.hpp>

#include "protocol/term_reader.hpp"

namespace dpool::protocol {

namespace {

constexpr std::uint8_t kVersion = 131;
constexpr std::uint8_t kPassThroughByte = 'p';

// A bounds-checked cursor over the packet.
struct In {
    const unsigned char* pos;
    const unsigned char* end;

    std::size_t left() const { return static_cast<std::size_t>(end - pos); }
    bool take(std::size_t n, const unsigned char** at)
    {
        if (left() < n) {
            return false;
        }
        *at = pos;
        pos += n;
        return true;
    }
    bool u8(std::uint32_t& v)
    {
        const unsigned char* p = nullptr;
        if (!take(1, &p)) {
            return false;
        }
        v = p[0];
        return true;
    }
    bool u16(std::uint32_t& v)
    {
        const unsigned char* p = nullptr;
        if (!take(2, &p)) {
            return false;
        }
        v = (std::uint32_t{p[0]} << 8) | p[1];
        return true;
    }
    bool u32(std::uint32_t& v)
    {
        const unsigned char* p = nullptr;
        if (!take(4, &p)) {
            return false;
        }
        v = (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | p[3];
        return true;
    }
};

void append_u8(ByteBuffer& out, std::uint32_t v) { out.push_back(static_cast<char>(v)); }

void append_u16(ByteBuffer& out, std::uint32_t v)
{
    const char b[2] = {static_cast<char>(v >> 8), static_cast<char>(v)};
    out.append(b, 2);
}

void append_u32(ByteBuffer& out, std::uint32_t v)
{
    append_u16(out, v >> 16);
    append_u16(out, v & 0xFFFFu);
}

// Whether an atom of `bytes` bytes (with its tag and length, 3 bytes at most) keeps `out` within `out_limit`.
bool atom_fits(const ByteBuffer& out, std::size_t bytes, std::size_t out_limit)
{
    return out.size() + 3 + bytes <= out_limit;
}

bool append_atom(ByteBuffer& out, std::string_view text, std::size_t out_limit)
{
    if (!atom_fits(out, text.size(), out_limit)) {
        return false; // over the bound of the rewritten packet
    }
    if (text.size() <= 255) {
        append_u8(out, tag::small_atom_utf8);
        append_u8(out, static_cast<std::uint32_t>(text.size()));
    } else if (text.size() <= 0xFFFF) {
        append_u8(out, tag::atom_utf8);
        append_u16(out, static_cast<std::uint32_t>(text.size()));
    } else {
        return false;
    }
    out.append(text);
    return true;
}

// The text of an atom cache entry named by a packet's header. A plain pointer and length, so that the arrays of
// them normalize_packet keeps for a header (up to 255 entries, most headers name a few) are left uninitialised
// instead of 10 KiB being zeroed for every packet.
struct AtomText {
    const char* data;
    std::size_t size;

    std::string_view view() const { return {data, size}; }
};

// Copies the atom at `in` (the node of a pid, port or reference): an atom, or an ATOM_CACHE_REF replaced by the
// atom it stands for. Anything else is no node, as TermReader finds too. Sets `too_large` when the copy would
// take `out` beyond `out_limit`.
bool rewrite_node(In& in, std::span<const AtomText> refs, ByteBuffer& out, std::size_t out_limit, bool& too_large)
{
    std::uint32_t t = 0;
    std::uint32_t n = 0;
    const unsigned char* text = nullptr;
    if (!in.u8(t)) {
        return false;
    }
    if (t == kAtomCacheRef) {
        if (!in.u8(n) || n >= refs.size()) {
            return false;
        }
        // Atoms are at most 65535 bytes: only the bound refuses one (as in rewrite_term).
        too_large = !append_atom(out, refs[n].view(), out_limit);
        return !too_large;
    }
    const bool long_form = t == tag::atom || t == tag::atom_utf8;
    if (!long_form && t != tag::small_atom && t != tag::small_atom_utf8) {
        return false;
    }
    if (!(long_form ? in.u16(n) : in.u8(n)) || !in.take(n, &text)) {
        return false;
    }
    if (!atom_fits(out, n, out_limit)) {
        too_large = true;
        return false;
    }
    append_u8(out, t);
    if (long_form) {
        append_u16(out, n);
    } else {
        append_u8(out, n);
    }
    out.append(text, n);
    return true;
}

// What is left to copy of the term being rewritten: `terms` more terms, `raw` bytes as they are, or the
// Size field of a NEW_FUN_EXT (at output offset `n`) to set once its contents are written.
enum class Step : std::uint8_t { terms, raw, fun_size };
struct Work {
    Step step;
    std::uint64_t n;
};

// Copies one term from `in` to `out`, every ATOM_CACHE_REF i replaced by the atom refs[i], as long as `out`
// stays within `out_limit` bytes (too_large beyond). Nesting is kept on an explicit stack, so a deeply nested
// term cannot exhaust the C++ stack; terms still owed never exceed the bytes left, which bounds the stack by
// the input size.
Normalized rewrite_term(In& in, std::span<const AtomText> refs, ByteBuffer& out, std::size_t out_limit)
{
    bool too_large = false;
    // Held inline up to a depth that ordinary messages stay within (a request is three levels deep), so that a
    // packet costs no allocation here.
    boost::container::small_vector<Work, 16> stack{{Step::terms, 1}};
    std::uint64_t owed = 1; // terms still to read
    const auto push_terms = [&](std::uint64_t n) {
        if (n == 0) {
            return true;
        }
        owed += n;
        stack.push_back({Step::terms, n});
        return owed <= in.left();
    };
    const auto copy = [&](std::size_t n) {
        const unsigned char* p = nullptr;
        if (!in.take(n, &p)) {
            return false;
        }
        if (out.size() + n > out_limit) {
            too_large = true;
            return false;
        }
        out.append(p, n);
        return true;
    };
    const auto failed = [&] { return too_large ? Normalized::too_large : Normalized::malformed; };
    while (!stack.empty()) {
        Work& top = stack.back();
        if (top.step == Step::raw) {
            const auto n = top.n;
            stack.pop_back();
            if (!copy(n)) {
                return failed();
            }
            continue;
        }
        if (top.step == Step::fun_size) {
            const std::size_t at = top.n;
            stack.pop_back();
            const auto size = static_cast<std::uint32_t>(out.size() - at);
            char* p = out.data() + at;
            p[0] = static_cast<char>(size >> 24);
            p[1] = static_cast<char>(size >> 16);
            p[2] = static_cast<char>(size >> 8);
            p[3] = static_cast<char>(size);
            continue;
        }
        if (top.n == 0) {
            stack.pop_back();
            continue;
        }
        --top.n; // `top` may dangle once something is pushed below
        --owed;
        std::uint32_t t = 0;
        if (!in.u8(t)) {
            return Normalized::malformed;
        }
        if (t == kAtomCacheRef) {
            std::uint32_t i = 0;
            if (!in.u8(i) || i >= refs.size()) {
                return Normalized::malformed;
            }
            if (!append_atom(out, refs[i].view(), out_limit)) {
                return Normalized::too_large; // atoms are at most 65535 bytes: only the bound refuses one
            }
            continue;
        }
        append_u8(out, t);
        std::uint32_t n = 0;
        std::uint32_t m = 0;
        bool ok = true;
        switch (t) {
        case tag::small_integer:
            ok = copy(1);
            break;
        case tag::integer:
            ok = copy(4);
            break;
        case tag::new_float:
            ok = copy(8);
            break;
        case tag::float_ext:
            ok = copy(31);
            break;
        case tag::atom:
        case tag::atom_utf8:
            ok = in.u16(n) && (append_u16(out, n), copy(n));
            break;
        case tag::small_atom:
        case tag::small_atom_utf8:
        case tag::small_big:
            // small_big: the digit count, then the sign byte and the digits.
            ok = in.u8(n) && (append_u8(out, n), copy(t == tag::small_big ? n + std::size_t{1} : n));
            break;
        case tag::large_big:
            ok = in.u32(n) && (append_u32(out, n), copy(std::size_t{n} + 1)); // sign byte, digits
            break;
        case tag::nil:
            break;
        case tag::string:
            ok = in.u16(n) && (append_u16(out, n), copy(n));
            break;
        case tag::binary:
            ok = in.u32(n) && (append_u32(out, n), copy(n));
            break;
        case tag::bit_binary:
            ok = in.u32(n) && (append_u32(out, n), copy(std::size_t{n} + 1)); // bits in the last byte, bytes
            break;
        case tag::small_tuple:
            ok = in.u8(n) && (append_u8(out, n), push_terms(n));
            break;
        case tag::large_tuple:
            ok = in.u32(n) && (append_u32(out, n), push_terms(n));
            break;
        case tag::list:
            // The elements, then the tail: the tail goes on the stack first.
            ok = in.u32(n) && (append_u32(out, n), push_terms(1)) && push_terms(n);
            break;
        case tag::map:
            ok = in.u32(n) && (append_u32(out, n), push_terms(2 * std::uint64_t{n}));
            break;
        case tag::new_pid:
        case tag::pid:
        case tag::new_port:
        case tag::v4_port:
        case tag::port:
        case tag::reference:
            // The node atom, then fixed fields.
            ok = rewrite_node(in, refs, out, out_limit, too_large);
            stack.push_back({Step::raw, t == tag::new_pid ? 12u
                                        : t == tag::pid   ? 9u
                                        : t == tag::new_port ? 8u
                                        : t == tag::v4_port  ? 12u
                                                             : 5u});
            break;
        case tag::newer_reference:
        case tag::new_reference:
            // Id count, node atom, creation (4 bytes, or 1 in the older form), the ids.
            ok = in.u16(n) && (append_u16(out, n), rewrite_node(in, refs, out, out_limit, too_large));
            stack.push_back({Step::raw, (t == tag::newer_reference ? 4u : 1u) + 4 * std::uint64_t{n}});
            break;
        case tag::export_ext:
            ok = push_terms(3);
            break;
        case tag::new_fun: {
            // Size counts the whole term after the tag, Size included; references make it change.
            const std::size_t size_at = out.size();
            const unsigned char* fixed = nullptr;
            ok = copy(4) && in.take(1 + 16 + 4 + 4, &fixed);
            if (ok) {
                out.append(fixed, 1 + 16 + 4 + 4);
                m = (std::uint32_t{fixed[21]} << 24) | (std::uint32_t{fixed[22]} << 16) |
                    (std::uint32_t{fixed[23]} << 8) | fixed[24];
                stack.push_back({Step::fun_size, size_at});
                ok = push_terms(4 + std::uint64_t{m}); // module, old index, old uniq, pid, free variables
            }
            break;
        }
        case tag::fun:
            ok = in.u32(m) && (append_u32(out, m), push_terms(4 + std::uint64_t{m}));
            break;
        default:
            ok = false; // compressed terms, fragments, local terms: not sent to a C-node that did not ask
            break;
        }
        if (!ok) {
            return failed();
        }
    }
    return Normalized::ok;
}

} // namespace

void write_dist_header(ByteBuffer& out, std::span<const AtomRef> refs)
{
    append_u8(out, kVersion);
    append_u8(out, kDistHeader);
    append_u8(out, static_cast<std::uint32_t>(refs.size()));
    if (refs.empty()) {
        return;
    }
    bool long_atoms = false;
    for (const auto& r : refs) {
        long_atoms = long_atoms || r.text.size() > 255;
    }
    std::array<unsigned char, 256 / 2 + 1> flags{};
    const std::size_t count = refs.size();
    for (std::size_t i = 0; i < count; ++i) {
        const unsigned nibble = (refs[i].is_new ? 8u : 0u) | ((refs[i].index >> 8) & 7u);
        flags[i / 2] = static_cast<unsigned char>(flags[i / 2] | (nibble << (4 * (i & 1))));
    }
    flags[count / 2] = static_cast<unsigned char>(flags[count / 2] | ((long_atoms ? 1u : 0u) << (4 * (count & 1))));
    out.append(flags.data(), count / 2 + 1);
    for (const auto& r : refs) {
        append_u8(out, r.index & 0xFFu);
        if (r.is_new) {
            if (long_atoms) {
                append_u16(out, static_cast<std::uint32_t>(r.text.size()));
            } else {
                append_u8(out, static_cast<std::uint32_t>(r.text.size()));
            }
            out.append(r.text);
        }
    }
}

Normalized normalize_packet(std::string_view packet, AtomCacheIn& cache, ByteBuffer& out, std::size_t max_bytes)
{
    In in{reinterpret_cast<const unsigned char*>(packet.data()),
          reinterpret_cast<const unsigned char*>(packet.data()) + packet.size()};
    std::uint32_t version = 0;
    std::uint32_t kind = 0;
    std::uint32_t count = 0;
    if (!in.u8(version) || !in.u8(kind) || !in.u8(count) || version != kVersion || kind != kDistHeader) {
        return Normalized::malformed;
    }
    std::array<AtomText, 255> refs; // the first `count` are set below
    // New entries take effect once the whole packet is read: a malformed packet leaves the cache alone.
    struct Defined {
        std::uint16_t index;
        AtomText text;
    };
    std::array<Defined, 255> defined; // the first `defined_count` are set
    std::size_t defined_count = 0;
    if (count > 0) {
        const unsigned char* flags = nullptr;
        if (!in.take(count / 2 + 1, &flags)) {
            return Normalized::malformed;
        }
        const bool long_atoms = ((flags[count / 2] >> (4 * (count & 1))) & 1u) != 0;
        for (std::uint32_t i = 0; i < count; ++i) {
            const unsigned nibble = (flags[i / 2] >> (4 * (i & 1))) & 0xFu;
            std::uint32_t internal = 0;
            if (!in.u8(internal)) {
                return Normalized::malformed;
            }
            const auto index = static_cast<std::uint16_t>(((nibble & 7u) << 8) | internal);
            if ((nibble & 8u) != 0) {
                std::uint32_t length = 0;
                const unsigned char* text = nullptr;
                if (!(long_atoms ? in.u16(length) : in.u8(length)) || !in.take(length, &text)) {
                    return Normalized::malformed;
                }
                refs[i] = AtomText{reinterpret_cast<const char*>(text), length};
                defined[defined_count++] = {index, refs[i]};
                continue;
            }
            // An entry defined earlier in this header, or in an earlier packet.
            bool found = false;
            for (std::size_t d = defined_count; d > 0 && !found; --d) {
                if (defined[d - 1].index == index) {
                    refs[i] = defined[d - 1].text;
                    found = true;
                }
            }
            if (!found) {
                const std::string* known = cache.find(index);
                if (known == nullptr) {
                    return Normalized::malformed;
                }
                refs[i] = AtomText{known->data(), known->size()};
            }
        }
    }
    const std::span<const AtomText> used(refs.data(), count);
    const std::size_t start = out.size();
    const std::size_t out_limit = max_bytes > SIZE_MAX - start ? SIZE_MAX : start + max_bytes;
    append_u8(out, kPassThroughByte);
    append_u8(out, kVersion);
    auto result = rewrite_term(in, used, out, out_limit);
    if (result == Normalized::ok && in.left() > 0) {
        append_u8(out, kVersion);
        result = rewrite_term(in, used, out, out_limit);
        if (result == Normalized::ok && in.left() > 0) {
            result = Normalized::malformed;
        }
    }
    if (result != Normalized::ok) {
        out.truncate(start);
        return result;
    }
    for (std::size_t d = 0; d < defined_count; ++d) {
        cache.set(defined[d].index, defined[d].text.view());
    }
    return Normalized::ok;
}

} // namespace dpool::protocol
