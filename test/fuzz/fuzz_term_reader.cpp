// Fuzz target: protocol::TermReader, the bounds-checked reader of the external term format that every other
// decoder is built on. Input: term bytes without the version byte (a control term or a message as they come
// off a link, in the corpus). Checked: skip() and is_single_term agree; each typed read either advances over
// exactly the term that skip() would skip, or fails and leaves the position unchanged.

#include "fuzz_support.hpp"
#include "protocol/term_reader.hpp"

using dpool::protocol::TermReader;
namespace tag = dpool::protocol::tag;

namespace {

// Reads the term at `r` with the typed read its tag calls for (containers: their header only, so that the
// walk goes on into their elements). False when there is none or it failed: the caller skips the term.
bool typed_read(TermReader& r)
{
    switch (*r.peek_tag()) {
    case tag::small_tuple:
    case tag::large_tuple:
        return r.tuple_header().has_value();
    case tag::map:
        return r.map_header().has_value();
    case tag::list:
        return r.list_header().has_value();
    case tag::nil:
        return r.nil();
    case tag::atom:
    case tag::atom_utf8:
    case tag::small_atom:
    case tag::small_atom_utf8:
        return r.atom().has_value();
    case tag::small_integer:
    case tag::integer:
    case tag::small_big:
        return r.integer().has_value();
    case tag::binary:
        return r.binary().has_value();
    case tag::pid:
    case tag::new_pid:
        return r.pid().has_value();
    case tag::new_reference:
    case tag::newer_reference:
        return r.ref().has_value();
    default:
        return false;
    }
}

bool is_container(std::uint8_t t)
{
    return t == tag::small_tuple || t == tag::large_tuple || t == tag::map || t == tag::list;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    const std::string_view input = dpool::fuzz::bytes(data, size);

    TermReader whole(input);
    const auto term = whole.skip();
    if (term) {
        DPOOL_FUZZ_CHECK(term->data() == input.data());
        DPOOL_FUZZ_CHECK(whole.rest().size() == input.size() - term->size());
        DPOOL_FUZZ_CHECK(dpool::protocol::is_single_term(*term));
        DPOOL_FUZZ_CHECK(dpool::protocol::is_single_term(input) == whole.at_end());
    } else {
        DPOOL_FUZZ_CHECK(whole.rest() == input);
        DPOOL_FUZZ_CHECK(!dpool::protocol::is_single_term(input));
    }

    // A walk over the input, term by term, each read as the decoders read it.
    TermReader r(input);
    while (!r.at_end()) {
        const TermReader before = r;
        const std::uint8_t t = *r.peek_tag();
        if (typed_read(r)) {
            DPOOL_FUZZ_CHECK(r.rest().size() < before.rest().size());
            if (!is_container(t)) {
                TermReader skipped = before;
                DPOOL_FUZZ_CHECK(skipped.skip().has_value());
                DPOOL_FUZZ_CHECK(skipped.rest().data() == r.rest().data());
            }
            continue;
        }
        DPOOL_FUZZ_CHECK(r.rest() == before.rest());
        if (!r.skip()) {
            DPOOL_FUZZ_CHECK(r.rest() == before.rest());
            break;
        }
    }
    return 0;
}
