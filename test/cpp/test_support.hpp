#pragma once

// Shared by every test file: the Catch2 configuration (identical in every translation unit) and small helpers
// for building external-term-format bytes, with ei as the independent encoder.

#define CATCH_CONFIG_ENABLE_BENCHMARKING
#include <catch2/catch.hpp>

#include <ei.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace dpool::test {

// An ei_x_buff that frees itself. Each encoder REQUIREs success, so a test never runs on a half-built term.
class EiTerm {
public:
    EiTerm() { REQUIRE(ei_x_new(&x_) == 0); }
    ~EiTerm() { ei_x_free(&x_); }
    EiTerm(const EiTerm&) = delete;
    EiTerm& operator=(const EiTerm&) = delete;

    std::string_view view() const { return {x_.buff, static_cast<std::size_t>(x_.index)}; }
    std::string str() const { return std::string(view()); }

    EiTerm& version() { return check(ei_x_encode_version(&x_)); }
    EiTerm& tuple(long arity) { return check(ei_x_encode_tuple_header(&x_, arity)); }
    EiTerm& map(long pairs) { return check(ei_x_encode_map_header(&x_, pairs)); }
    EiTerm& list(long length) { return check(ei_x_encode_list_header(&x_, length)); }
    EiTerm& nil() { return check(ei_x_encode_empty_list(&x_)); }
    EiTerm& atom(std::string_view text)
    {
        return check(
            ei_x_encode_atom_len_as(&x_, text.data(), static_cast<int>(text.size()), ERLANG_UTF8, ERLANG_UTF8));
    }
    EiTerm& integer(long long value) { return check(ei_x_encode_longlong(&x_, value)); }
    EiTerm& unsigned_integer(unsigned long long value) { return check(ei_x_encode_ulonglong(&x_, value)); }
    EiTerm& floating(double value) { return check(ei_x_encode_double(&x_, value)); }
    EiTerm& string(const std::string& text) { return check(ei_x_encode_string(&x_, text.c_str())); }
    EiTerm& binary(std::string_view bytes)
    {
        return check(ei_x_encode_binary(&x_, bytes.data(), static_cast<int>(bytes.size())));
    }
    EiTerm& bitstring(std::string_view bytes, std::size_t bits)
    {
        return check(ei_x_encode_bitstring(&x_, bytes.data(), 0, bits));
    }
    EiTerm& pid(const std::string& node, unsigned num, unsigned serial, unsigned creation)
    {
        erlang_pid p{};
        copy_node(p.node, node);
        p.num = num;
        p.serial = serial;
        p.creation = creation;
        return check(ei_x_encode_pid(&x_, &p));
    }
    EiTerm& ref(const std::string& node, unsigned creation, const std::vector<unsigned>& ids)
    {
        REQUIRE(ids.size() <= 5);
        erlang_ref r{};
        copy_node(r.node, node);
        r.creation = creation;
        r.len = 0;
        for (unsigned id : ids) {
            r.n[r.len++] = id;
        }
        return check(ei_x_encode_ref(&x_, &r));
    }
    EiTerm& port(const std::string& node, unsigned long long id, unsigned creation)
    {
        erlang_port p{};
        copy_node(p.node, node);
        p.id = id;
        p.creation = creation;
        return check(ei_x_encode_port(&x_, &p));
    }
    EiTerm& fun(const erlang_fun& f) { return check(ei_x_encode_fun(&x_, &f)); }
    // Bytes that are already a term (or part of one), appended as they are.
    EiTerm& raw(std::string_view bytes)
    {
        return check(ei_x_append_buf(&x_, bytes.data(), static_cast<int>(bytes.size())));
    }

private:
    static void copy_node(char* out, const std::string& node)
    {
        REQUIRE(node.size() < MAXATOMLEN_UTF8);
        node.copy(out, node.size());
        out[node.size()] = '\0';
    }
    EiTerm& check(int status)
    {
        REQUIRE(status == 0);
        return *this;
    }

    ei_x_buff x_{};
};

// Big-endian field builders for hand-made terms (encodings ei no longer produces).
inline std::string be16(std::uint16_t v) { return {static_cast<char>(v >> 8), static_cast<char>(v)}; }
inline std::string be32(std::uint32_t v)
{
    return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8), static_cast<char>(v)};
}
inline std::string byte(unsigned v) { return std::string(1, static_cast<char>(v)); }

// ATOM_EXT (latin-1, 16-bit length) and SMALL_ATOM_EXT (latin-1, 8-bit length).
inline std::string atom_ext(std::string_view text)
{
    return byte(100) + be16(static_cast<std::uint16_t>(text.size())) + std::string(text);
}
inline std::string small_atom_ext(std::string_view text)
{
    return byte(115) + byte(static_cast<unsigned>(text.size())) + std::string(text);
}
// SMALL_ATOM_UTF8_EXT, as ei and ERTS write short atoms today.
inline std::string small_atom_utf8_ext(std::string_view text)
{
    return byte(119) + byte(static_cast<unsigned>(text.size())) + std::string(text);
}

// A copy of `bytes` in an allocation of exactly that size, so that ASan (a build with
// -DDPOOL_SANITIZE=address,undefined) or valgrind sees any read past the end.
class ExactCopy {
public:
    explicit ExactCopy(std::string_view bytes) : size_(bytes.size()), storage_(std::make_unique<char[]>(bytes.size()))
    {
        bytes.copy(storage_.get(), bytes.size());
    }
    std::string_view view() const { return {storage_.get(), size_}; }

private:
    std::size_t size_;
    std::unique_ptr<char[]> storage_;
};

// A term (no version byte) printed compactly, for comparisons: atoms, integers, binaries (as <<"text">>),
// tuples, lists and maps; anything else as '?'. REQUIREs that the bytes hold exactly one term.
inline void print_term_at(const char* buf, int& index, std::string& out)
{
    int type = 0;
    int size = 0;
    REQUIRE(ei_get_type(buf, &index, &type, &size) == 0);
    const auto join = [&](int count, const char* open, const char* close) {
        out += open;
        for (int i = 0; i < count; ++i) {
            out += i > 0 ? "," : "";
            print_term_at(buf, index, out);
        }
        out += close;
    };
    switch (type) {
    case ERL_ATOM_EXT:
    case ERL_SMALL_ATOM_EXT:
    case ERL_ATOM_UTF8_EXT:
    case ERL_SMALL_ATOM_UTF8_EXT: {
        std::string text(static_cast<std::size_t>(size) * 2 + 1, '\0');
        REQUIRE(ei_decode_atom_as(buf, &index, text.data(), static_cast<int>(text.size()), ERLANG_UTF8, nullptr,
                                  nullptr) == 0);
        out += text.c_str();
        return;
    }
    case ERL_SMALL_INTEGER_EXT:
    case ERL_INTEGER_EXT:
    case ERL_SMALL_BIG_EXT: {
        long long v = 0;
        REQUIRE(ei_decode_longlong(buf, &index, &v) == 0);
        out += std::to_string(v);
        return;
    }
    case ERL_BINARY_EXT: {
        std::string bytes(static_cast<std::size_t>(size), '\0');
        long length = 0;
        REQUIRE(ei_decode_binary(buf, &index, bytes.data(), &length) == 0);
        out += "<<\"" + bytes + "\">>";
        return;
    }
    case ERL_SMALL_TUPLE_EXT:
    case ERL_LARGE_TUPLE_EXT: {
        int arity = 0;
        REQUIRE(ei_decode_tuple_header(buf, &index, &arity) == 0);
        join(arity, "{", "}");
        return;
    }
    case ERL_NIL_EXT:
    case ERL_LIST_EXT: {
        int length = 0;
        REQUIRE(ei_decode_list_header(buf, &index, &length) == 0);
        join(length, "[", "]");
        if (length > 0) {
            REQUIRE(ei_decode_list_header(buf, &index, &length) == 0); // the tail: []
        }
        return;
    }
    case ERL_MAP_EXT: {
        int pairs = 0;
        REQUIRE(ei_decode_map_header(buf, &index, &pairs) == 0);
        join(2 * pairs, "#{", "}");
        return;
    }
    default:
        REQUIRE(ei_skip_term(buf, &index) == 0);
        out += "?";
    }
}

inline std::string print_term(std::string_view bytes)
{
    const std::string copy(bytes);
    std::string out;
    int index = 0;
    print_term_at(copy.data(), index, out);
    REQUIRE(static_cast<std::size_t>(index) == copy.size());
    return out;
}

} // namespace dpool::test
