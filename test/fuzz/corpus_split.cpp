// dpool_fuzz_split: turns the links and handshakes recorded by a C-node started with --record-packets into the
// seed inputs of each fuzz target, with the C-node's own decoders:
//
//   dpool_fuzz_split <recorded dir> <out dir>
//
// For every <peer>.<n>.frames file (one link, packets framed as on the wire): dist_header takes the link's
// stream from its start (where the atom cache fills) to after its 1st, 2nd, 4th, 8th... packet, at most
// kMaxStreamBytes; control every packet (rewritten from the atom-cache form
// as DistLink does); term_reader every control term and message; requests every message that is a caller's
// envelope; pool_options the Target and Options of each `new` and of each pool of a restore; call_exit the
// reason of every MONITOR_P_EXIT; handshake_accept and handshake_connect the messages of a few recorded
// handshakes (handshake-<side>.<n>.frames), as the peer's byte stream. Each input goes to
// <out dir>/<target>/<hash of its bytes> (duplicates once).
// Then it prints how many inputs each target got and which requests of the request table (api::request_table)
// were seen, and fails when a target got none or a request of the table never came: the recording test
// (distribute_pool_fuzz_corpus_SUITE) sends every one.

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "api/requests.hpp"
#include "protocol/control.hpp"
#include "protocol/dist_header.hpp"
#include "protocol/framing.hpp"
#include "protocol/term_reader.hpp"
#include "util/byte_buffer.hpp"

namespace fs = std::filesystem;
using dpool::protocol::TermReader;

namespace {

// Seeds stay small: the fuzzer mutates small inputs faster, and the corpus is committed.
constexpr std::size_t kMaxInputBytes = 16 * 1024;
constexpr std::size_t kMaxStreamBytes = 16 * 1024;
constexpr std::size_t kMaxPacketBytes = std::size_t{1} << 30;

const char* const kTargets[] = {"term_reader",  "dist_header",      "control",          "call_exit",
                                "requests",     "pool_options",     "handshake_accept", "handshake_connect"};
// Real handshakes differ only in their challenges and digests: a few of each side are seeds enough.
constexpr std::size_t kMaxHandshakeInputs = 8;

std::uint64_t fnv1a(std::string_view bytes)
{
    std::uint64_t h = 0xcbf29ce484222325u;
    for (const char c : bytes) {
        h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3u;
    }
    return h;
}

class Corpus {
public:
    explicit Corpus(fs::path dir) : dir_(std::move(dir))
    {
        for (const char* target : kTargets) {
            fs::create_directories(dir_ / target);
            counts_[target] = 0;
        }
    }
    void add(const char* target, std::string_view input)
    {
        if (input.empty() || input.size() > kMaxInputBytes) {
            return;
        }
        char name[17];
        std::snprintf(name, sizeof name, "%016llx", static_cast<unsigned long long>(fnv1a(input)));
        const fs::path file = dir_ / target / name;
        if (fs::exists(file)) {
            return;
        }
        std::ofstream(file, std::ios::binary).write(input.data(), static_cast<std::streamsize>(input.size()));
        ++counts_[target];
    }
    const std::map<std::string, std::size_t>& counts() const { return counts_; }
    std::size_t count(const std::string& target) const { return counts_.at(target); }

private:
    fs::path dir_;
    std::map<std::string, std::size_t> counts_;
};

// The name and arity of a request, as decode_request finds its entry in the request table.
const dpool::api::RequestSpec* request_spec(std::string_view request)
{
    TermReader r(request);
    if (const auto name = r.atom()) {
        return dpool::api::find_request(*name, 0);
    }
    const auto arity = r.tuple_header();
    const auto name = arity && *arity > 0 ? r.atom() : std::nullopt;
    return name ? dpool::api::find_request(*name, *arity) : nullptr;
}

// Target and Options back to back, after `r` (positioned on the Target).
void add_target_and_options(Corpus& corpus, TermReader& r)
{
    const std::string_view from = r.rest();
    if (r.skip() && r.skip()) {
        corpus.add("pool_options", from.substr(0, from.size() - r.rest().size()));
    }
}

void add_pool_options(Corpus& corpus, const dpool::api::RequestSpec& spec, std::string_view request)
{
    TermReader r(request);
    if (!r.tuple_header() || !r.atom()) {
        return;
    }
    if (spec.name == "new") {
        add_target_and_options(corpus, r);
    } else if (spec.name == "restore") {
        const auto count = r.list_header();
        for (std::uint32_t i = 0; count && i < *count; ++i) {
            if (r.tuple_header() != 3u || !r.skip()) {
                return;
            }
            add_target_and_options(corpus, r);
        }
    }
}

void add_message(Corpus& corpus, std::string_view message, std::set<std::string_view>& seen)
{
    TermReader m(message);
    if (m.version()) {
        corpus.add("term_reader", m.rest());
    }
    const auto env = dpool::api::parse_envelope(message);
    if (!env) {
        return;
    }
    corpus.add("requests", message);
    if (const auto* spec = request_spec(env->request)) {
        seen.insert(spec->name);
        add_pool_options(corpus, *spec, env->request);
    }
}

void add_packet(Corpus& corpus, std::string_view packet, std::set<std::string_view>& seen)
{
    corpus.add("control", packet);
    const auto control = dpool::protocol::parse_packet(packet);
    if (!control) {
        return;
    }
    TermReader r(packet.substr(1));
    if (r.version()) {
        if (const auto term = r.skip()) {
            corpus.add("term_reader", *term);
        }
    }
    if (control->op == dpool::protocol::ControlOp::monitor_p_exit) {
        corpus.add("call_exit", control->reason);
    }
    if (!control->payload.empty()) {
        add_message(corpus, control->payload, seen);
    }
}

// One recorded handshake (handshake-<side>.<n>.frames: the peer's message bodies, framed as packets are): the
// peer's byte stream as it came, each body after its 2-byte length, for the target handshake_<side>. False when
// the recording is not a stream of whole messages.
bool split_handshake(Corpus& corpus, const std::string& side, std::string_view recorded)
{
    const std::string target = "handshake_" + side;
    std::string stream;
    std::string_view in = recorded;
    while (!in.empty()) {
        const auto frame = dpool::protocol::next_frame(in, kMaxPacketBytes);
        if (frame.kind != dpool::protocol::Frame::Kind::packet || frame.packet.size() > 0xFFFF) {
            return false;
        }
        in.remove_prefix(frame.size);
        stream.push_back(static_cast<char>(frame.packet.size() >> 8));
        stream.push_back(static_cast<char>(frame.packet.size() & 0xFF));
        stream.append(frame.packet);
    }
    if (corpus.counts().count(target) == 0) {
        return false; // a side that has no target
    }
    if (corpus.count(target) < kMaxHandshakeInputs) {
        corpus.add(target.c_str(), stream);
    }
    return true;
}

// One recorded link. False when the recording is not a stream of whole packets.
bool split_link(Corpus& corpus, std::string_view stream, std::set<std::string_view>& seen)
{
    dpool::protocol::AtomCacheIn cache;
    dpool::ByteBuffer normalized;
    std::size_t packets = 0;
    std::size_t next_cut = 1;
    std::string_view in = stream;
    while (!in.empty()) {
        const auto frame = dpool::protocol::next_frame(in, kMaxPacketBytes);
        if (frame.kind != dpool::protocol::Frame::Kind::packet) {
            return false;
        }
        in.remove_prefix(frame.size);
        const std::size_t read = stream.size() - in.size();
        if (++packets == next_cut && read <= kMaxStreamBytes) {
            corpus.add("dist_header", stream.substr(0, read));
            next_cut *= 2;
        }
        std::string_view packet = frame.packet;
        if (packet.front() != dpool::protocol::kPassThrough) {
            normalized.clear();
            if (!dpool::protocol::normalize_packet(packet, cache, normalized)) {
                return false;
            }
            packet = normalized.view();
        }
        add_packet(corpus, packet, seen);
    }
    return true;
}

} // namespace

int main(int argc, char** argv)
{
    if (argc != 3) {
        std::fprintf(stderr, "usage: %s <recorded dir> <out dir>\n", argv[0]);
        return 2;
    }
    Corpus corpus(argv[2]);
    std::set<std::string_view> seen;
    std::size_t links = 0;
    bool ok = true;
    for (const auto& entry : fs::directory_iterator(argv[1])) {
        if (entry.path().extension() != ".frames") {
            continue;
        }
        std::ifstream in(entry.path(), std::ios::binary);
        const std::string stream{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
        const std::string file = entry.path().filename().string();
        if (file.rfind("handshake-", 0) == 0) {
            const std::string side = file.substr(10, file.find('.') - 10);
            if (!split_handshake(corpus, side, stream)) {
                std::fprintf(stderr, "%s: not a handshake's whole messages\n", entry.path().c_str());
                ok = false;
            }
            continue;
        }
        if (!split_link(corpus, stream, seen)) {
            std::fprintf(stderr, "%s: not a stream of whole, well-formed packets\n", entry.path().c_str());
            ok = false;
        }
        ++links;
    }
    std::printf("%zu links\n", links);
    for (const auto& [target, count] : corpus.counts()) {
        std::printf("%-14s %zu inputs\n", target.c_str(), count);
        ok = ok && count > 0;
    }
    for (const auto& spec : dpool::api::request_table()) {
        const bool was_seen = seen.count(spec.name) > 0;
        std::printf("request %-18s %s\n", std::string(spec.name).c_str(), was_seen ? "seen" : "MISSING");
        ok = ok && was_seen;
    }
    return ok ? 0 : 1;
}
