#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

namespace dpool::protocol {

// External term format tags used by the reader and writer (erts/doc/specs/external_term_format).
namespace tag {
inline constexpr std::uint8_t version = 131;
inline constexpr std::uint8_t new_float = 70;
inline constexpr std::uint8_t bit_binary = 77;
inline constexpr std::uint8_t new_pid = 88;
inline constexpr std::uint8_t new_port = 89;
inline constexpr std::uint8_t newer_reference = 90;
inline constexpr std::uint8_t small_integer = 97;
inline constexpr std::uint8_t integer = 98;
inline constexpr std::uint8_t float_ext = 99;
inline constexpr std::uint8_t atom = 100;
inline constexpr std::uint8_t reference = 101;
inline constexpr std::uint8_t port = 102;
inline constexpr std::uint8_t pid = 103;
inline constexpr std::uint8_t small_tuple = 104;
inline constexpr std::uint8_t large_tuple = 105;
inline constexpr std::uint8_t nil = 106;
inline constexpr std::uint8_t string = 107;
inline constexpr std::uint8_t list = 108;
inline constexpr std::uint8_t binary = 109;
inline constexpr std::uint8_t small_big = 110;
inline constexpr std::uint8_t large_big = 111;
inline constexpr std::uint8_t new_fun = 112;
inline constexpr std::uint8_t export_ext = 113;
inline constexpr std::uint8_t new_reference = 114;
inline constexpr std::uint8_t small_atom = 115;
inline constexpr std::uint8_t map = 116;
inline constexpr std::uint8_t fun = 117;
inline constexpr std::uint8_t atom_utf8 = 118;
inline constexpr std::uint8_t small_atom_utf8 = 119;
inline constexpr std::uint8_t v4_port = 120;
} // namespace tag

struct PidView {
    std::string_view node;
    std::uint32_t id = 0;
    std::uint32_t serial = 0;
    std::uint32_t creation = 0;
    std::string_view encoded; // the whole term, tag included
};

struct RefView {
    std::string_view node;
    std::uint32_t creation = 0;
    std::array<std::uint32_t, 5> ids{};
    std::uint8_t id_count = 0;
    std::string_view encoded;
};

// A bounds-checked reader of the external term format. ei's decoders trust their input and may read past the
// end of a truncated or hostile term, so everything that comes off a socket is read with this instead.
// Each read either succeeds and advances, or fails and leaves the position unchanged.
class TermReader {
public:
    explicit TermReader(std::string_view bytes) : pos_(bytes.data()), end_(bytes.data() + bytes.size()) {}

    bool at_end() const { return pos_ == end_; }
    std::string_view rest() const { return {pos_, static_cast<std::size_t>(end_ - pos_)}; }
    std::optional<std::uint8_t> peek_tag() const;

    bool version();
    bool nil();
    std::optional<std::uint32_t> tuple_header();
    std::optional<std::uint32_t> map_header();
    // LIST_EXT only: the element count; the tail follows the elements. An empty list is nil(), and a list
    // of small integers may come as a STRING_EXT, which this does not read.
    std::optional<std::uint32_t> list_header();
    std::optional<std::string_view> atom();
    // Integers that fit in 64 bits (small, 32-bit and bignums up to 8 bytes).
    std::optional<std::int64_t> integer();
    std::optional<std::string_view> binary();
    std::optional<PidView> pid();
    std::optional<RefView> ref();
    // Skips one complete term of any kind and returns its bytes. Nesting is handled without recursion, so a
    // deeply nested term cannot exhaust the stack.
    std::optional<std::string_view> skip();

private:
    const char* pos_;
    const char* end_;
};

// True when `bytes` is exactly one well-formed term (no version byte).
bool is_single_term(std::string_view bytes);

} // namespace dpool::protocol
