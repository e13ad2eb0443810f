#include "protocol/node_identity.hpp"

#include <ei.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace dpool::protocol {

namespace {

constexpr std::uint32_t kLowRefBits = 18; // the first reference word carries 18 bits, as ERTS keeps it
constexpr std::uint32_t kLowRefMask = (1U << kLowRefBits) - 1;

void put_u32(char* p, std::uint32_t v)
{
    p[0] = static_cast<char>(v >> 24);
    p[1] = static_cast<char>(v >> 16);
    p[2] = static_cast<char>(v >> 8);
    p[3] = static_cast<char>(v);
}

template <class T>
void copy_node_name(T& term, const std::string& name)
{
    if (name.size() >= sizeof(term.node)) {
        throw std::invalid_argument("node name too long");
    }
    std::memcpy(term.node, name.c_str(), name.size() + 1);
}

} // namespace

NodeIdentity::NodeIdentity(std::string node_name, std::uint32_t creation, std::uint32_t ref_salt)
    : node_name_(std::move(node_name)), creation_(creation), ref_salt_(ref_salt)
{
    erlang_pid pid{};
    copy_node_name(pid, node_name_);
    pid.num = 1;
    pid.serial = 0;
    pid.creation = creation_;
    ByteBuffer buf;
    buf.ensure_tail_room(node_name_.size() * 2 + 32);
    int index = 0;
    if (ei_encode_pid(buf.tail(), &index, &pid) != 0) {
        throw std::invalid_argument("cannot encode pid");
    }
    self_pid_.assign(buf.tail(), static_cast<std::size_t>(index));

    erlang_ref ref{};
    copy_node_name(ref, node_name_);
    ref.len = 3;
    ref.creation = creation_;
    index = 0;
    buf.ensure_tail_room(node_name_.size() * 2 + 32);
    if (ei_encode_ref(buf.tail(), &index, &ref) != 0) {
        throw std::invalid_argument("cannot encode reference");
    }
    ref_template_.assign(buf.tail(), static_cast<std::size_t>(index));
}

void NodeIdentity::write_ref(TermWriter& out, std::uint64_t counter) const
{
    ByteBuffer& buf = out.buffer();
    buf.append(ref_template_);
    char* ids = buf.tail() - 12; // the three id words end the term
    put_u32(ids, static_cast<std::uint32_t>(counter & kLowRefMask));
    put_u32(ids + 4, static_cast<std::uint32_t>(counter >> kLowRefBits));
    put_u32(ids + 8, ref_salt_);
}

std::optional<std::uint64_t> NodeIdentity::ref_number(const RefView& ref) const
{
    if (ref.id_count != 3 || ref.ids[2] != ref_salt_ || ref.creation != creation_ || ref.ids[0] > kLowRefMask ||
        ref.node != node_name_) {
        return std::nullopt;
    }
    return std::uint64_t{ref.ids[0]} | (std::uint64_t{ref.ids[1]} << kLowRefBits);
}

std::optional<NodeName> parse_node_name(std::string_view name)
{
    if (name.empty() || name.size() > 255) {
        return std::nullopt;
    }
    const auto at = name.find('@');
    if (at == std::string_view::npos || at == 0 || at + 1 == name.size() ||
        name.find('@', at + 1) != std::string_view::npos) {
        return std::nullopt;
    }
    NodeName parts{name.substr(0, at), name.substr(at + 1)};
    for (char c : parts.alive) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                        c == '-';
        if (!ok) {
            return std::nullopt;
        }
    }
    for (char c : parts.host) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                        c == '-' || c == '_' || c == ':';
        if (!ok) {
            return std::nullopt;
        }
    }
    return parts;
}

bool same_host(std::string_view a, std::string_view b)
{
    const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
    return a.size() == b.size() &&
           std::equal(a.begin(), a.end(), b.begin(), [&](char x, char y) { return lower(x) == lower(y); });
}

bool same_node(std::string_view a, std::string_view b)
{
    const auto x = parse_node_name(a);
    const auto y = parse_node_name(b);
    return x && y && x->alive == y->alive && same_host(x->host, y->host);
}

} // namespace dpool::protocol
