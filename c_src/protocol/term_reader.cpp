#include "protocol/term_reader.hpp"

#include <cstring>

namespace dpool::protocol {

namespace {

// A cursor over [pos, end) whose reads fail instead of running past the end.
struct Cursor {
    const char* pos;
    const char* end;

    std::size_t left() const { return static_cast<std::size_t>(end - pos); }

    bool take(std::size_t n, const char** out = nullptr)
    {
        if (left() < n) {
            return false;
        }
        if (out != nullptr) {
            *out = pos;
        }
        pos += n;
        return true;
    }

    bool u8(std::uint8_t& v)
    {
        if (left() < 1) {
            return false;
        }
        v = static_cast<std::uint8_t>(*pos++);
        return true;
    }

    bool u16(std::uint16_t& v)
    {
        if (left() < 2) {
            return false;
        }
        const auto* p = reinterpret_cast<const unsigned char*>(pos);
        v = static_cast<std::uint16_t>((p[0] << 8) | p[1]);
        pos += 2;
        return true;
    }

    bool u32(std::uint32_t& v)
    {
        if (left() < 4) {
            return false;
        }
        const auto* p = reinterpret_cast<const unsigned char*>(pos);
        v = (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | p[3];
        pos += 4;
        return true;
    }

    bool atom(std::string_view& text)
    {
        std::uint8_t t = 0;
        if (!u8(t)) {
            return false;
        }
        std::size_t len = 0;
        if (t == tag::small_atom || t == tag::small_atom_utf8) {
            std::uint8_t n = 0;
            if (!u8(n)) {
                return false;
            }
            len = n;
        } else if (t == tag::atom || t == tag::atom_utf8) {
            std::uint16_t n = 0;
            if (!u16(n)) {
                return false;
            }
            len = n;
        } else {
            return false;
        }
        const char* p = nullptr;
        if (!take(len, &p)) {
            return false;
        }
        text = {p, len};
        return true;
    }
};

} // namespace

std::optional<std::uint8_t> TermReader::peek_tag() const
{
    if (pos_ == end_) {
        return std::nullopt;
    }
    return static_cast<std::uint8_t>(*pos_);
}

bool TermReader::version()
{
    if (peek_tag() != tag::version) {
        return false;
    }
    ++pos_;
    return true;
}

bool TermReader::nil()
{
    if (peek_tag() != tag::nil) {
        return false;
    }
    ++pos_;
    return true;
}

std::optional<std::uint32_t> TermReader::tuple_header()
{
    Cursor c{pos_, end_};
    std::uint8_t t = 0;
    if (!c.u8(t)) {
        return std::nullopt;
    }
    std::uint32_t arity = 0;
    if (t == tag::small_tuple) {
        std::uint8_t n = 0;
        if (!c.u8(n)) {
            return std::nullopt;
        }
        arity = n;
    } else if (t == tag::large_tuple) {
        if (!c.u32(arity)) {
            return std::nullopt;
        }
    } else {
        return std::nullopt;
    }
    pos_ = c.pos;
    return arity;
}

std::optional<std::uint32_t> TermReader::map_header()
{
    Cursor c{pos_, end_};
    std::uint8_t t = 0;
    std::uint32_t arity = 0;
    if (!c.u8(t) || t != tag::map || !c.u32(arity)) {
        return std::nullopt;
    }
    pos_ = c.pos;
    return arity;
}

std::optional<std::uint32_t> TermReader::list_header()
{
    Cursor c{pos_, end_};
    std::uint8_t t = 0;
    std::uint32_t length = 0;
    if (!c.u8(t) || t != tag::list || !c.u32(length)) {
        return std::nullopt;
    }
    pos_ = c.pos;
    return length;
}

std::optional<std::string_view> TermReader::atom()
{
    Cursor c{pos_, end_};
    std::string_view text;
    if (!c.atom(text)) {
        return std::nullopt;
    }
    pos_ = c.pos;
    return text;
}

std::optional<std::int64_t> TermReader::integer()
{
    Cursor c{pos_, end_};
    std::uint8_t t = 0;
    if (!c.u8(t)) {
        return std::nullopt;
    }
    std::int64_t value = 0;
    if (t == tag::small_integer) {
        std::uint8_t v = 0;
        if (!c.u8(v)) {
            return std::nullopt;
        }
        value = v;
    } else if (t == tag::integer) {
        std::uint32_t v = 0;
        if (!c.u32(v)) {
            return std::nullopt;
        }
        value = static_cast<std::int32_t>(v);
    } else if (t == tag::small_big) {
        std::uint8_t n = 0;
        std::uint8_t sign = 0;
        const char* digits = nullptr;
        if (!c.u8(n) || !c.u8(sign) || n > 8 || !c.take(n, &digits)) {
            return std::nullopt;
        }
        std::uint64_t magnitude = 0;
        for (int i = n - 1; i >= 0; --i) {
            magnitude = (magnitude << 8) | static_cast<unsigned char>(digits[i]);
        }
        if (sign == 0) {
            if (magnitude > static_cast<std::uint64_t>(INT64_MAX)) {
                return std::nullopt;
            }
            value = static_cast<std::int64_t>(magnitude);
        } else {
            if (magnitude > static_cast<std::uint64_t>(INT64_MAX) + 1) {
                return std::nullopt;
            }
            value = static_cast<std::int64_t>(0 - magnitude);
        }
    } else {
        return std::nullopt;
    }
    pos_ = c.pos;
    return value;
}

std::optional<std::string_view> TermReader::binary()
{
    Cursor c{pos_, end_};
    std::uint8_t t = 0;
    std::uint32_t len = 0;
    const char* p = nullptr;
    if (!c.u8(t) || t != tag::binary || !c.u32(len) || !c.take(len, &p)) {
        return std::nullopt;
    }
    pos_ = c.pos;
    return std::string_view{p, len};
}

std::optional<PidView> TermReader::pid()
{
    Cursor c{pos_, end_};
    std::uint8_t t = 0;
    if (!c.u8(t) || (t != tag::new_pid && t != tag::pid)) {
        return std::nullopt;
    }
    PidView v;
    if (!c.atom(v.node) || !c.u32(v.id) || !c.u32(v.serial)) {
        return std::nullopt;
    }
    if (t == tag::new_pid) {
        if (!c.u32(v.creation)) {
            return std::nullopt;
        }
    } else {
        std::uint8_t creation = 0;
        if (!c.u8(creation)) {
            return std::nullopt;
        }
        v.creation = creation;
    }
    v.encoded = {pos_, static_cast<std::size_t>(c.pos - pos_)};
    pos_ = c.pos;
    return v;
}

std::optional<RefView> TermReader::ref()
{
    Cursor c{pos_, end_};
    std::uint8_t t = 0;
    if (!c.u8(t) || (t != tag::newer_reference && t != tag::new_reference)) {
        return std::nullopt;
    }
    RefView v;
    std::uint16_t count = 0;
    if (!c.u16(count) || count == 0 || count > v.ids.size() || !c.atom(v.node)) {
        return std::nullopt;
    }
    if (t == tag::newer_reference) {
        if (!c.u32(v.creation)) {
            return std::nullopt;
        }
    } else {
        std::uint8_t creation = 0;
        if (!c.u8(creation)) {
            return std::nullopt;
        }
        v.creation = creation;
    }
    for (std::uint16_t i = 0; i < count; ++i) {
        if (!c.u32(v.ids[i])) {
            return std::nullopt;
        }
    }
    v.id_count = static_cast<std::uint8_t>(count);
    v.encoded = {pos_, static_cast<std::size_t>(c.pos - pos_)};
    pos_ = c.pos;
    return v;
}

std::optional<std::string_view> TermReader::skip()
{
    Cursor c{pos_, end_};
    // Terms still to skip. Each pending term needs at least one byte, which bounds this by the input size.
    std::uint64_t pending = 1;
    while (pending > 0) {
        if (pending > c.left()) {
            return std::nullopt;
        }
        --pending;
        std::uint8_t t = 0;
        if (!c.u8(t)) {
            return std::nullopt;
        }
        std::uint8_t u8v = 0;
        std::uint16_t u16v = 0;
        std::uint32_t u32v = 0;
        std::string_view atom_text;
        bool ok = true;
        switch (t) {
        case tag::small_integer:
            ok = c.take(1);
            break;
        case tag::integer:
            ok = c.take(4);
            break;
        case tag::new_float:
            ok = c.take(8);
            break;
        case tag::float_ext:
            ok = c.take(31);
            break;
        case tag::atom:
        case tag::atom_utf8:
            ok = c.u16(u16v) && c.take(u16v);
            break;
        case tag::small_atom:
        case tag::small_atom_utf8:
            ok = c.u8(u8v) && c.take(u8v);
            break;
        case tag::nil:
            break;
        case tag::string:
            ok = c.u16(u16v) && c.take(u16v);
            break;
        case tag::binary:
            ok = c.u32(u32v) && c.take(u32v);
            break;
        case tag::bit_binary:
            ok = c.u32(u32v) && c.take(1) && c.take(u32v);
            break;
        case tag::small_big:
            ok = c.u8(u8v) && c.take(1) && c.take(u8v);
            break;
        case tag::large_big:
            ok = c.u32(u32v) && c.take(1) && c.take(u32v);
            break;
        case tag::small_tuple:
            ok = c.u8(u8v);
            pending += u8v;
            break;
        case tag::large_tuple:
            ok = c.u32(u32v);
            pending += u32v;
            break;
        case tag::list:
            ok = c.u32(u32v);
            pending += std::uint64_t{u32v} + 1; // elements and the tail
            break;
        case tag::map:
            ok = c.u32(u32v);
            pending += 2 * std::uint64_t{u32v};
            break;
        case tag::pid:
            ok = c.atom(atom_text) && c.take(9);
            break;
        case tag::new_pid:
            ok = c.atom(atom_text) && c.take(12);
            break;
        case tag::port:
            ok = c.atom(atom_text) && c.take(5);
            break;
        case tag::new_port:
            ok = c.atom(atom_text) && c.take(8);
            break;
        case tag::v4_port:
            ok = c.atom(atom_text) && c.take(12);
            break;
        case tag::reference:
            ok = c.atom(atom_text) && c.take(5);
            break;
        case tag::new_reference:
            ok = c.u16(u16v) && c.atom(atom_text) && c.take(1) && c.take(4 * std::size_t{u16v});
            break;
        case tag::newer_reference:
            ok = c.u16(u16v) && c.atom(atom_text) && c.take(4) && c.take(4 * std::size_t{u16v});
            break;
        case tag::export_ext:
            pending += 3; // module, function, arity
            break;
        case tag::new_fun:
            // Size counts the whole term after the tag, the size field included.
            ok = c.u32(u32v) && u32v >= 4 && c.take(u32v - 4);
            break;
        case tag::fun:
            ok = c.u32(u32v);
            pending += 4 + std::uint64_t{u32v}; // pid, module, index, uniq, free variables
            break;
        default:
            ok = false; // atom cache references, compressed and unknown terms are not valid here
            break;
        }
        if (!ok) {
            return std::nullopt;
        }
    }
    std::string_view term{pos_, static_cast<std::size_t>(c.pos - pos_)};
    pos_ = c.pos;
    return term;
}

bool is_single_term(std::string_view bytes)
{
    TermReader r(bytes);
    return r.skip().has_value() && r.at_end();
}

} // namespace dpool::protocol
