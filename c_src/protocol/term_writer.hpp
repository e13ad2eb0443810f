#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "util/byte_buffer.hpp"

namespace dpool::protocol {

// Appends terms in the external term format to a ByteBuffer, through ei's encoders. Room is reserved before
// each encoder runs (ei writes without bounds), and nothing is allocated once the buffer has grown to size.
class TermWriter {
public:
    explicit TermWriter(ByteBuffer& out) : out_(out) {}
    // `versioned` false: version() writes nothing, for the terms after a distribution header, which carry
    // no version byte of their own.
    TermWriter(ByteBuffer& out, bool versioned) : out_(out), versioned_(versioned) {}

    void version();
    void tuple(std::size_t arity);
    void map(std::size_t arity);
    // A list header followed by `length` terms and a tail; list(0) is the empty list itself.
    void list(std::size_t length);
    void nil();
    void atom(std::string_view text);
    void integer(std::int64_t value);
    void binary(std::string_view bytes);
    // A term that is already encoded (without version byte), copied as is.
    void raw(std::string_view encoded) { out_.append(encoded); }

    ByteBuffer& buffer() { return out_; }

private:
    ByteBuffer& out_;
    bool versioned_ = true;
};

} // namespace dpool::protocol
