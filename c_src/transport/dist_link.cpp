#include "transport/dist_link.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <new>
#include <string>
#include <utility>

#include <fmt/format.h>

#include "protocol/control.hpp"
#include "protocol/framing.hpp"

namespace dpool::transport {

namespace {

constexpr std::size_t kLengthBytes = protocol::kFrameLengthBytes;
// Reads start small, so an idle connection holds little memory, and grow while the peer keeps them full.
constexpr std::size_t kMinReadChunk = 4096;
constexpr std::size_t kMaxReadChunk = kMaxIoBytes;
// Pieces one write gathers: own bytes around a few borrowed payloads.
constexpr std::size_t kMaxWriteBuffers = 8;
// After a large message, buffers above this are released once empty.
constexpr std::size_t kKeepBufferBytes = 1024 * 1024;
// Packets up to this size are read into a buffer of their whole size, taken when their length is read.
constexpr std::size_t kWholePacketBytes = std::size_t{16} << 20;

} // namespace

DistLink::DistLink(DistStream stream, std::string peer_node, LinkLimits limits, bool atom_cache)
    : stream_(std::move(stream)),
      tick_timer_(stream_.get_executor()),
      peer_node_(std::move(peer_node)),
      limits_(limits),
      atom_cache_(atom_cache),
      read_chunk_(kMinReadChunk)
{
    error_code ignored;
    stream_.socket().set_option(tcp::no_delay(true), ignored);
    spare_->buffers.reserve(kMaxSpares);
}

DistLink::~DistLink()
{
    error_code ignored;
    stream_.socket().close(ignored);
    if (limits_.output) {
        limits_.output->remove(accounted_);
    }
}

void DistLink::start(LinkHandler& handler)
{
    handler_ = &handler;
    if (limits_.recorder != nullptr) {
        recording_ = limits_.recorder->open(peer_node_);
    }
    do_read();
    arm_tick();
}

void DistLink::close(std::string_view reason)
{
    if (closed_) {
        return;
    }
    closed_ = true;
    error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.socket().close(ignored);
    tick_timer_.cancel();
    tail_in_.reset(); // its pipes go now, not with the link
    pending_.clear();
    packet_open_ = false;
    if (!writing_) {
        inflight_.clear(); // else on_write clears it: the socket may use its bytes until the write ends
    }
    account_output();
    // Reported from the event loop, never from inside close(): the owner may be in the middle of a callback.
    asio::post(stream_.get_executor(), [self = shared_from_this(), why = std::string(reason)] {
        if (auto* h = self->handler_) {
            self->handler_ = nullptr;
            h->on_closed(*self, why);
        }
    });
}

void DistLink::do_read()
{
    if (closed_) {
        return;
    }
    if (tail_in_ || start_tail()) {
        read_tail();
        return;
    }
    // Room for the next chunk; amid a packet whose length is known, room for the whole packet when it is at
    // most kWholePacketBytes, and beyond, room that grows with what came in of it (doubling it at most) up to
    // the whole packet. Growing copies what came in each time (an 8 MiB payload read in doubling buffers is
    // copied once more in all, into pages touched for the first time: a third of the C-node's time when it
    // relays big messages), so a packet of ordinary size gets its buffer at once: a block that large is
    // mapped, not touched, and its pages become resident only as the bytes come in. A length beyond the bound
    // still costs what the peer sent, never what it announced: one that announces 1 GiB and sends 10 bytes
    // costs a few KiB.
    std::size_t want = read_chunk_;
    std::size_t packet_end = 0;
    if (in_.size() >= kLengthBytes) {
        const std::size_t total = kLengthBytes + protocol::frame_length(in_.data());
        if (total > in_.size() && in_.size() < kLengthBytes + kSplicePrefixBytes && splice_candidate()) {
            want = kLengthBytes + kSplicePrefixBytes - in_.size(); // the prefix first, in its own buffer
        } else if (total > in_.size()) {
            want = total <= kWholePacketBytes ? total - in_.size()
                                              : std::max(want, std::min(total - in_.size(), in_.size()));
            packet_end = total;
        }
    }
    if (!make_room(want, packet_end)) {
        return;
    }
    // Room is made for the whole packet at once, but it is read in pieces: see kMaxIoBytes.
    read_size_ = std::min(in_.tail_room(), kMaxIoBytes);
    stream_.async_read_some(asio::buffer(in_.tail(), read_size_),
                            [self = shared_from_this()](const error_code& ec, std::size_t n) { self->on_read(ec, n); });
}

void DistLink::on_read(const error_code& ec, std::size_t n)
{
    if (closed_) {
        return;
    }
    if (ec) {
        // A TLS peer that closes without close_notify reads as a truncated stream: the same to us.
        close(ec == asio::error::eof || ec == ssl::error::stream_truncated ? "peer closed the connection"
                                                                           : ec.message());
        return;
    }
    const bool filled = n == read_size_;
    in_.commit(n);
    traffic_.bytes_in += n;
    read_since_tick_ = true;
    process_input(filled);
}

void DistLink::process_input(bool filled)
{
    if (!dispatch_packets()) {
        return;
    }
    read_chunk_ = filled ? std::min(read_chunk_ * 2, kMaxReadChunk) : read_chunk_;
    in_.shrink_if_idle(kKeepBufferBytes);
    if (amid_big_packet()) {
        defer_read();
    } else {
        do_read();
    }
}

bool DistLink::splice_candidate() const
{
    if (!limits_.pipes || splice_declined_ || stream_.encrypted() || recording_ || in_.size() < kLengthBytes) {
        return false;
    }
    const std::size_t length = protocol::frame_length(in_.data());
    // A packet with a distribution header is rewritten before it is handled: it needs all its bytes.
    return length >= kMinSplicedBytes && length <= limits_.max_packet_bytes &&
           (!atom_cache_ || in_.size() == kLengthBytes || in_.data()[kLengthBytes] == protocol::kPassThrough);
}

bool DistLink::start_tail()
{
    if (!splice_candidate() || in_.size() < kLengthBytes + kSplicePrefixBytes) {
        return false;
    }
    const std::size_t total = kLengthBytes + protocol::frame_length(in_.data());
    if (total <= in_.size()) {
        return false; // all in already
    }
    error_code ec;
    stream_.socket().native_non_blocking(true, ec);
    if (ec) {
        splice_declined_ = true;
        return false;
    }
    try {
        tail_in_ = std::make_unique<SplicedTail>(limits_.pipes, total - in_.size());
    } catch (const std::bad_alloc&) {
        splice_declined_ = true;
        return false;
    }
    ++limits_.pipes->counters().packets;
    return true;
}

void DistLink::read_tail()
{
    const auto moved = tail_in_->fill_from(stream_.socket().native_handle(), kMaxSpliceBytes);
    const bool woken = std::exchange(tail_woken_, false);
    switch (moved.kind) {
    case SpliceResult::Kind::moved:
        traffic_.bytes_in += moved.bytes;
        read_since_tick_ = true;
        if (tail_in_->full()) {
            finish_tail();
        } else if (limits_.bulk != nullptr) {
            defer_read();
        } else {
            asio::post(stream_.get_executor(), [self = shared_from_this()] { self->do_read(); });
        }
        return;
    case SpliceResult::Kind::would_block:
        if (woken) {
            // Readable, yet splice takes nothing: it stops at TCP urgent data, which a read skips. A peer that
            // sends some would have the loop spin here; what came is read into memory and the packet goes on.
            tail_in_->count_fallback();
            if (materialize_tail()) {
                do_read();
            }
            return;
        }
        stream_.socket().async_wait(tcp::socket::wait_read, [self = shared_from_this()](const error_code& ec) {
            if (self->closed_) {
                return;
            }
            if (ec) {
                self->close(ec.message());
                return;
            }
            self->tail_woken_ = true;
            self->read_tail();
        });
        return;
    case SpliceResult::Kind::end_of_stream:
        close("peer closed the connection");
        return;
    case SpliceResult::Kind::no_pipe:
        tail_in_->count_fallback();
        if (materialize_tail()) {
            do_read();
        }
        return;
    case SpliceResult::Kind::failed:
        close(error_code(moved.error, asio::error::get_system_category()).message());
        return;
    }
}

void DistLink::finish_tail()
{
    auto self = shared_from_this(); // the handler may drop its last reference
    // The handler's own for the call: closing the link from it does not pull the tail away under it.
    auto tail = std::move(tail_in_);
    bool handled = handler_ == nullptr;
    if (handler_ != nullptr) {
        const std::string_view prefix(in_.data() + kLengthBytes, in_.size() - kLengthBytes);
        try {
            handled = handler_->on_spliced_packet(*this, prefix, tail);
        } catch (const std::bad_alloc&) {
            out_of_memory(kLengthBytes + prefix.size());
            return;
        }
    }
    if (closed_) {
        return;
    }
    if (handled) {
        ++traffic_.packets_in;
        in_.consume(in_.size()); // the prefix: nothing beyond the packet was read
        in_.shrink_if_idle(kKeepBufferBytes);
        do_read();
        return;
    }
    tail->count_fallback();
    tail_in_ = std::move(tail);
    if (materialize_tail()) {
        process_input(false);
    }
}

bool DistLink::materialize_tail()
{
    const std::size_t packet_end = kLengthBytes + protocol::frame_length(in_.data());
    const std::size_t held = tail_in_->held();
    // Room as do_read makes it: the whole packet up to kWholePacketBytes, else what came in (never what was
    // only announced).
    const std::size_t want = packet_end <= kWholePacketBytes ? packet_end - in_.size() : held;
    if (!make_room(want, packet_end)) {
        return false; // closed: the tail went with it
    }
    const bool read = tail_in_->read_into(in_.tail());
    tail_in_.reset();
    if (!read) {
        close("a pipe did not give back the bytes put into it");
        return false;
    }
    in_.commit(held);
    splice_declined_ = true; // until this packet is delivered
    return true;
}

bool DistLink::make_room(std::size_t want, std::size_t packet_end)
{
    try {
        if (packet_end != 0 && in_.tail_room() < want) {
            take_spare(packet_end);
        }
        in_.ensure_tail_room(want, packet_end);
        return true;
    } catch (const std::bad_alloc&) {
        out_of_memory(packet_end);
        return false;
    }
}

bool DistLink::amid_big_packet() const
{
    if (in_.size() < kLengthBytes) {
        return false;
    }
    const std::size_t length = protocol::frame_length(in_.data());
    return length >= kMinBorrowedBytes && kLengthBytes + length > in_.size();
}

void DistLink::defer_read()
{
    if (limits_.bulk == nullptr) {
        do_read();
        return;
    }
    limits_.bulk->defer([self = shared_from_this()] { self->do_read(); });
}

bool DistLink::dispatch_packets()
{
    // Keep this link alive even if the handler drops its last reference while handling a packet.
    auto self = shared_from_this();
    while (true) {
        const auto frame = protocol::next_frame(in_.view(), limits_.max_packet_bytes);
        if (frame.kind == protocol::Frame::Kind::incomplete) {
            break;
        }
        if (frame.kind == protocol::Frame::Kind::too_large) {
            if (limits_.drops) {
                ++limits_.drops->oversized_packets;
            }
            close(fmt::format("packet of {} bytes, larger than the limit of {}", protocol::frame_length(in_.data()),
                              limits_.max_packet_bytes));
            return false;
        }
        if (frame.kind == protocol::Frame::Kind::tick) {
            in_.consume(frame.size);
            on_peer_tick();
            continue;
        }
        const std::string_view packet = frame.packet;
        // Memory that a packet's handling needs and cannot have ends this link, not the C-node.
        try {
            if (recording_) {
                recording_->record(packet);
            }
            if (!deliver(packet)) {
                return false;
            }
        } catch (const std::bad_alloc&) {
            delivering_ = {};
            delivering_owner_.reset();
            out_of_memory(packet.size());
            return false;
        }
        if (closed_) {
            delivering_owner_.reset();
            return false;
        }
        if (delivering_owner_) {
            delivering_owner_.reset(); // the packet left with its buffer: in_ holds what came after it
        } else {
            in_.consume(frame.size);
        }
        splice_declined_ = false;
    }
    return true;
}

bool DistLink::deliver(std::string_view packet)
{
    ++traffic_.packets_in;
    if (!atom_cache_ || packet.front() == protocol::kPassThrough) {
        if (handler_ != nullptr) {
            delivering_ = packet;
            handler_->on_packet(*this, packet);
            delivering_ = {};
        }
        return true;
    }
    normalized_.clear();
    switch (protocol::normalize_packet(packet, atoms_received_, normalized_, limits_.max_packet_bytes)) {
    case protocol::Normalized::ok:
        break;
    case protocol::Normalized::too_large:
        if (limits_.drops) {
            ++limits_.drops->oversized_packets;
        }
        close("packet larger than the limit once its atom cache references are expanded");
        return false;
    case protocol::Normalized::malformed:
        // Its new cache entries are lost with it: later packets could name the wrong atoms.
        close("malformed distribution header");
        return false;
    }
    if (handler_ != nullptr) {
        handler_->on_packet(*this, normalized_.view());
    }
    normalized_.clear();
    normalized_.shrink_if_idle(kKeepBufferBytes);
    return true;
}

void DistLink::out_of_memory(std::size_t packet_bytes)
{
    close_out_of_memory(fmt::format("out of memory for a packet of {} bytes", packet_bytes));
}

void DistLink::close_out_of_memory(std::string_view what)
{
    if (limits_.drops) {
        ++limits_.drops->out_of_memory;
    }
    close(what);
}

std::shared_ptr<const void> DistLink::share_packet(std::string_view part)
{
    const char* begin = delivering_.data();
    if (begin == nullptr || part.data() < begin || part.data() + part.size() > begin + delivering_.size()) {
        return nullptr;
    }
    if (!delivering_owner_) {
        // The buffer goes to the owner whole (the packet stays where it is); in_ starts afresh with the bytes
        // read beyond the packet, at most one read's worth, in the spare buffer if there is one.
        const std::size_t used = kLengthBytes + delivering_.size();
        delivering_owner_ = std::make_shared<SharedPacket>();
        delivering_owner_->buffer = std::move(in_);
        delivering_owner_->home = spare_;
        in_ = ByteBuffer();
        const ByteBuffer& shared = delivering_owner_->buffer;
        in_.append(shared.data() + used, shared.size() - used);
    }
    return delivering_owner_;
}

void DistLink::take_spare(std::size_t packet_end)
{
    auto& spares = spare_->buffers;
    const auto fits = std::find_if(spares.begin(), spares.end(),
                                   [&](const ByteBuffer& b) { return b.capacity() >= packet_end; });
    if (fits == spares.end()) {
        return;
    }
    ByteBuffer taken = std::move(*fits);
    spares.erase(fits);
    taken.clear();
    taken.append(in_.view()); // what came in of the packet so far: at most one read
    in_ = std::move(taken);
    spare_->used_since_tick = true;
}

DistLink::SharedPacket::~SharedPacket()
{
    const auto spare = home.lock();
    if (spare && spare->buffers.size() < kMaxSpares && buffer.capacity() <= kWholePacketBytes) {
        buffer.clear();
        try {
            spare->buffers.push_back(std::move(buffer)); // room for kMaxSpares is reserved: no allocation
        } catch (const std::bad_alloc&) {
            // A destructor must not throw: the buffer is freed instead of kept.
        }
    }
}

void DistLink::on_peer_tick()
{
    // Answered, as ei does, so a peer with a shorter net_ticktime than ours always hears from us in time;
    // but only if nothing else went out since its previous tick, and answers do not count as output, so two
    // peers that both answer ticks exchange one answer and stop instead of bouncing ticks for ever.
    if (!wrote_since_peer_tick_) {
        queue_tick();
    }
    wrote_since_peer_tick_ = false;
}

void DistLink::Output::clear()
{
    own.clear();
    borrowed.clear(); // lets go of the owners
    borrowed_bytes = 0;
    written = 0;
}

void DistLink::Output::swap(Output& other) noexcept
{
    own.swap(other.own);
    borrowed.swap(other.borrowed);
    std::swap(borrowed_bytes, other.borrowed_bytes);
    std::swap(written, other.written);
}

void DistLink::drop_open_packet()
{
    if (packet_open_) {
        pending_.own.truncate(packet_start_);
        packet_open_ = false;
    }
}

protocol::TermWriter DistLink::begin_packet()
{
    drop_open_packet();
    ByteBuffer& out = pending_.own;
    packet_start_ = out.size();
    packet_open_ = true;
    out.ensure_tail_room(64);
    if (atom_cache_) {
        const char header[kLengthBytes + 3] = {0, 0, 0, 0, static_cast<char>(131), protocol::kDistHeader, 0};
        out.append(header, sizeof header);
        return protocol::TermWriter(out, false);
    }
    char header[kLengthBytes + 1] = {0, 0, 0, 0, protocol::kPassThrough};
    out.append(header, sizeof header);
    return protocol::TermWriter(out);
}

void DistLink::end_packet()
{
    packet_open_ = false;
    if (closed_) {
        pending_.clear();
        return;
    }
    // Nothing is borrowed inside a packet made with begin_packet: its length is all in the own bytes.
    const std::size_t length = pending_.own.size() - packet_start_ - kLengthBytes;
    protocol::put_frame_length(pending_.own.data() + packet_start_, static_cast<std::uint32_t>(length));
    packet_queued(kLengthBytes + length);
}

void DistLink::write_packet(std::string_view head, std::string_view body, const std::shared_ptr<const void>& owner,
                            std::unique_ptr<SplicedTail> tail)
{
    if (closed_) {
        return;
    }
    drop_open_packet();
    const std::size_t tail_bytes = tail ? tail->size() : 0;
    const std::size_t length = head.size() + body.size() + tail_bytes;
    const bool borrow = owner && body.size() >= kMinBorrowedBytes;
    // Over TLS every byte goes through the encryption: a tail is read into memory and written as own bytes.
    const bool tail_in_memory = tail && stream_.encrypted();
    const std::size_t own_body = borrow ? 0 : body.size();
    ByteBuffer& out = pending_.own;
    out.ensure_tail_room(kLengthBytes + head.size() + own_body + (tail_in_memory ? tail_bytes : 0));
    // Room for the segments before anything is committed: a failed allocation must not leave a length that
    // announces bytes never queued.
    pending_.borrowed.reserve(pending_.borrowed.size() + 2);
    char* at = out.tail();
    if (tail_in_memory) {
        // Read first, to where its bytes go (after the own ones before it): a pipe that does not give them
        // back leaves nothing queued.
        tail->count_fallback();
        if (!tail->read_into(at + kLengthBytes + head.size() + own_body)) {
            close("a pipe did not give back the bytes put into it");
            return;
        }
    }
    protocol::put_frame_length(at, static_cast<std::uint32_t>(length));
    if (!head.empty()) { // an empty view may have no data: memcpy must not see that null
        std::memcpy(at + kLengthBytes, head.data(), head.size());
    }
    if (borrow) {
        out.commit(kLengthBytes + head.size());
        pending_.borrowed.push_back(Borrowed{out.size(), body, owner, nullptr});
        pending_.borrowed_bytes += body.size();
    } else {
        if (!body.empty()) { // an empty view may have no data: memcpy must not see that null
            std::memcpy(at + kLengthBytes + head.size(), body.data(), body.size());
        }
        out.commit(kLengthBytes + head.size() + body.size());
    }
    if (tail_in_memory) {
        out.commit(tail_bytes); // read in above
    } else if (tail) {
        pending_.borrowed.push_back(Borrowed{out.size(), {}, nullptr, std::move(tail)});
        pending_.borrowed_bytes += tail_bytes;
    }
    packet_queued(kLengthBytes + length);
}

void DistLink::packet_queued(std::size_t packet_bytes)
{
    ++traffic_.packets_out;
    wrote_since_peer_tick_ = true;
    // Judged by what was queued before this packet, so that one packet bigger than the bound still goes out
    // on a link that had nothing queued.
    if (queued_bytes() - packet_bytes > limits_.max_queued_bytes) {
        if (limits_.drops) {
            ++limits_.drops->unread_output;
        }
        close("peer does not read: output queue over its limit");
        return;
    }
    account_output();
    // Noted now, when the owner may see busy() and hold answers back: counted at the next write instead, the
    // bytes then in flight could be under the limit by themselves and on_drained would never come.
    was_busy_ = was_busy_ || busy();
    schedule_flush();
}

void DistLink::queue_tick()
{
    if (closed_) {
        return;
    }
    drop_open_packet();
    const char tick[kLengthBytes] = {0, 0, 0, 0};
    pending_.own.append(tick, sizeof tick);
    account_output();
    schedule_flush();
}

void DistLink::account_output()
{
    const std::size_t now = queued_bytes();
    if (limits_.output) {
        if (now > accounted_) {
            limits_.output->add(now - accounted_);
        } else {
            limits_.output->remove(accounted_ - now);
        }
    }
    accounted_ = now;
}

void DistLink::defer_write()
{
    if (limits_.bulk == nullptr) {
        do_write();
        return;
    }
    limits_.bulk->defer([self = shared_from_this()] {
        self->write_deferred_ = false;
        self->do_write();
    });
    write_deferred_ = true; // only once queued: queuing may run out of memory, and nothing would run then
}

void DistLink::schedule_flush()
{
    // Everything queued during this turn of the event loop goes out in one write.
    if (writing_ || flush_posted_ || write_deferred_) {
        return;
    }
    flush_posted_ = true;
    asio::post(stream_.get_executor(), [self = shared_from_this()] {
        self->flush_posted_ = false;
        self->do_write();
    });
}

void DistLink::write_now()
{
    // A flush posted already finds the link writing, or nothing left, and does nothing.
    try {
        do_write();
    } catch (const std::bad_alloc&) {
        // Closing a link that could not start its write needs a little memory too. The caller's own work (an
        // answer's bookkeeping, a request's deadline) must not be cut short by this one.
    }
}

void DistLink::do_write()
{
    if (closed_ || writing_ || write_deferred_) {
        return;
    }
    // Handlers never run while another has a packet open: one open now was left by an exception.
    drop_open_packet();
    if (inflight_.empty()) {
        if (pending_.empty()) {
            return;
        }
        pending_.swap(inflight_);
    }
    std::array<asio::const_buffer, kMaxWriteBuffers> buffers{};
    const auto gathered = next_write(buffers.data(), buffers.size()); // the unused ones stay empty
    writing_ = true;
    wrote_since_tick_ = true;
    was_busy_ = was_busy_ || busy();
    // Starting the write allocates its operation, and that may fail. Bytes of it may have left by then (a TLS
    // record is written before its completion is allocated, a splice moves bytes before its completion is
    // posted), so the output cannot go on where it stopped, and a link left `writing_` would never write again:
    // the link ends, as when a packet it reads cannot be handled.
    try {
        if (gathered.bytes == 0) {
            write_tail(gathered.stopped_at);
            return;
        }
        stream_.async_write_some(buffers, [self = shared_from_this()](const error_code& ec, std::size_t n) {
            self->on_write(ec, n);
        });
    } catch (const std::bad_alloc&) {
        writing_ = false;
        close_out_of_memory("out of memory for a write");
    }
}

void DistLink::write_tail(SplicedTail* tail)
{
    error_code ec;
    if (tail != nullptr) {
        stream_.socket().native_non_blocking(true, ec);
    }
    const auto moved = tail == nullptr || ec ? SpliceResult{SpliceResult::Kind::failed, 0, EINVAL}
                                             : tail->drain_to(stream_.socket().native_handle(), kMaxSpliceBytes);
    // Completed from the event loop, as an asynchronous write is.
    switch (moved.kind) {
    case SpliceResult::Kind::moved:
        asio::post(stream_.get_executor(), [self = shared_from_this(), n = moved.bytes] { self->on_write({}, n); });
        return;
    case SpliceResult::Kind::would_block:
        stream_.socket().async_wait(tcp::socket::wait_write, [self = shared_from_this()](const error_code& ec) {
            if (ec || self->closed_) {
                self->on_write(ec, 0); // closed: lets go of the output, the tail's pipes with it
                return;
            }
            self->writing_ = false;
            self->do_write();
        });
        return;
    default:
        asio::post(stream_.get_executor(),
                   [self = shared_from_this(), ec = error_code(moved.error, asio::error::get_system_category())] {
                       self->on_write(ec, 0);
                   });
        return;
    }
}

DistLink::Gathered DistLink::next_write(asio::const_buffer* out, std::size_t max_buffers) const
{
    std::size_t skip = inflight_.written;
    std::size_t budget = kMaxIoBytes;
    std::size_t count = 0;
    const auto add = [&](const char* bytes, std::size_t n) {
        if (n <= skip) {
            skip -= n;
            return;
        }
        bytes += skip;
        n -= skip;
        skip = 0;
        if (budget == 0 || count == max_buffers) {
            return;
        }
        n = std::min(n, budget);
        out[count++] = asio::const_buffer(bytes, n);
        budget -= n;
    };
    const char* own = inflight_.own.data();
    std::size_t own_done = 0;
    for (const auto& b : inflight_.borrowed) {
        add(own + own_done, b.at - own_done);
        own_done = b.at;
        if (b.tail) {
            if (b.tail->size() <= skip) {
                skip -= b.tail->size();
                continue;
            }
            return {kMaxIoBytes - budget, b.tail.get()}; // bytes in pipes are spliced, not gathered
        }
        add(b.bytes.data(), b.bytes.size());
    }
    add(own + own_done, inflight_.own.size() - own_done);
    return {kMaxIoBytes - budget, nullptr};
}

void DistLink::on_write(const error_code& ec, std::size_t n)
{
    writing_ = false;
    traffic_.bytes_out += n;
    if (ec && !closed_) {
        close(ec.message()); // lets go of the output
    }
    if (closed_) {
        inflight_.clear();
        account_output();
        return;
    }
    inflight_.written += n;
    account_output();
    if (inflight_.unwritten() == 0) {
        inflight_.clear();
        inflight_.own.shrink_if_idle(kKeepBufferBytes);
        do_write();
    } else if (inflight_.unwritten() >= kMinBorrowedBytes) {
        defer_write(); // the rest of a big output
    } else {
        do_write();
    }
    if (was_busy_ && !busy()) {
        was_busy_ = false;
        if (handler_ != nullptr) {
            handler_->on_drained(*this);
        }
    }
}

void DistLink::arm_tick()
{
    tick_timer_.expires_after(limits_.tick_interval);
    tick_timer_.async_wait([self = shared_from_this()](const error_code& ec) { self->on_tick(ec); });
}

void DistLink::on_tick(const error_code& ec)
{
    if (ec || closed_) {
        return;
    }
    if (read_since_tick_) {
        silent_ticks_ = 0;
    } else if (++silent_ticks_ >= limits_.silent_ticks_allowed) {
        close("net tick timeout");
        return;
    }
    if (!wrote_since_tick_ && !writing_) {
        queue_tick();
        wrote_since_peer_tick_ = true;
    }
    read_since_tick_ = false;
    wrote_since_tick_ = false;
    in_.shrink_if_idle(kKeepBufferBytes);
    if (!spare_->used_since_tick) {
        spare_->buffers.clear(); // no big packet came in for a tick: their memory goes
    }
    spare_->used_since_tick = false;
    arm_tick();
}

} // namespace dpool::transport
