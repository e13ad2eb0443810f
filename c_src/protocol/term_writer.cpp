#include "protocol/term_writer.hpp"

#include <ei.h>

#include <stdexcept>

namespace dpool::protocol {

namespace {

// Runs one ei encoder at the buffer's tail after reserving `max_size` bytes for it.
template <class Encode>
void encode_into(ByteBuffer& out, std::size_t max_size, Encode&& encode)
{
    out.ensure_tail_room(max_size);
    int index = 0;
    if (encode(out.tail(), &index) != 0) {
        // Only reachable with arguments this program never builds (an atom over 255 characters).
        throw std::invalid_argument("ei encoder rejected its input");
    }
    out.commit(static_cast<std::size_t>(index));
}

} // namespace

void TermWriter::version()
{
    if (!versioned_) {
        return;
    }
    encode_into(out_, 1, [](char* b, int* i) { return ei_encode_version(b, i); });
}

void TermWriter::tuple(std::size_t arity)
{
    encode_into(out_, 5, [arity](char* b, int* i) { return ei_encode_tuple_header(b, i, static_cast<int>(arity)); });
}

void TermWriter::map(std::size_t arity)
{
    encode_into(out_, 5, [arity](char* b, int* i) { return ei_encode_map_header(b, i, static_cast<int>(arity)); });
}

void TermWriter::list(std::size_t length)
{
    encode_into(out_, 5, [length](char* b, int* i) { return ei_encode_list_header(b, i, static_cast<int>(length)); });
}

void TermWriter::nil()
{
    encode_into(out_, 1, [](char* b, int* i) { return ei_encode_empty_list(b, i); });
}

void TermWriter::atom(std::string_view text)
{
    // Latin-1 input may double in size as UTF-8; plus tag and length.
    encode_into(out_, text.size() * 2 + 3, [text](char* b, int* i) {
        return ei_encode_atom_len_as(b, i, text.data(), static_cast<int>(text.size()), ERLANG_UTF8, ERLANG_UTF8);
    });
}

void TermWriter::integer(std::int64_t value)
{
    encode_into(out_, 11, [value](char* b, int* i) { return ei_encode_longlong(b, i, value); });
}

void TermWriter::binary(std::string_view bytes)
{
    encode_into(out_, bytes.size() + 5, [bytes](char* b, int* i) {
        return ei_encode_binary(b, i, bytes.data(), static_cast<long>(bytes.size()));
    });
}

} // namespace dpool::protocol
