#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/dist_header.hpp"
#include "protocol/term_writer.hpp"
#include "transport/dist_stream.hpp"
#include "transport/link_budget.hpp"
#include "transport/packet_recorder.hpp"
#include "transport/spliced_tail.hpp"
#include "util/asio.hpp"
#include "util/bulk_queue.hpp"
#include "util/byte_buffer.hpp"

namespace dpool::transport {

struct LinkLimits {
    // The longest packet taken from the peer (after its atom cache references are expanded, for a link that
    // uses them): a longer one closes the link as soon as its length is read. Memory for a packet is taken as
    // its bytes come in, never for a length alone.
    std::size_t max_packet_bytes = std::size_t{512} << 20;
    // Erlang ticks every net_ticktime/4 when it has sent nothing; four silent periods mean the peer is gone.
    std::chrono::milliseconds tick_interval{15000};
    int silent_ticks_allowed = 4;
    // Above this much queued output the link reports itself busy, as a distribution port does.
    std::size_t busy_limit = std::size_t{1} << 20;
    // A peer that lets this much output pile up is not reading: a packet queued on top of more than this
    // closes the link rather than let the C-node's memory grow without bound. Pools ask first
    // (admits_output), so that a caller's data is refused, not the link closed.
    std::size_t max_queued_bytes = std::size_t{256} << 20;
    // Where the next piece of a big packet, in or out, waits for its turn (low priority); nullptr: at once.
    util::BulkQueue* bulk = nullptr;
    // The output of every link together (nullptr: not counted), and where this kind of link counts its drops.
    std::shared_ptr<OutputBudget> output;
    std::shared_ptr<LinkDrops> drops;
    // Where the tails of big packets go instead of memory (spliced_tail.hpp); nullptr: memory always. Only a
    // plain TCP link splices.
    std::shared_ptr<PipeBudget> pipes;
    // A test aid (--record-packets): where every packet received is recorded; nullptr (the default): nowhere.
    PacketRecorder* recorder = nullptr;
};

// Payloads at least this big are forwarded without a copy: an output packet refers to the bytes of the input
// packet they came in (DistLink::share_packet, write_packet with an owner).
inline constexpr std::size_t kMinBorrowedBytes = 64 * 1024;
// The most one read takes from the socket, and one write gives to it: the bound on how long one link's I/O
// holds the event loop that all links share.
inline constexpr std::size_t kMaxIoBytes = 256 * 1024;
// The most one splice moves between a socket and the pipes of a big packet's tail: a pipe's capacity. More
// than kMaxIoBytes, since none of it crosses into user space; the kernel's part (on loopback the TCP path of
// the receiving socket too) still holds the event loop, for up to about half a millisecond here. 4 pairs of
// bulk runs against 256 KiB: 6 % more relayed per second, 6 % less C-node CPU per GiB (docs/BENCHMARKS.md).
inline constexpr std::size_t kMaxSpliceBytes = kPipeBytes;
// A packet at least this long, on a link with LinkLimits::pipes, is read as its first kSplicePrefixBytes (or
// more, as much as came in with them) and a tail moved into pipes (on_spliced_packet).
inline constexpr std::size_t kMinSplicedBytes = std::size_t{1} << 20;
inline constexpr std::size_t kSplicePrefixBytes = 4096;

class DistLink;

// What went over a link (or several): bytes as read from and written to the stream (framing and ticks
// included), packets handed to the owner and queued by it.
struct LinkTraffic {
    std::uint64_t bytes_in = 0;
    std::uint64_t bytes_out = 0;
    std::uint64_t packets_in = 0;
    std::uint64_t packets_out = 0;

    LinkTraffic& operator+=(const LinkTraffic& other)
    {
        bytes_in += other.bytes_in;
        bytes_out += other.bytes_out;
        packets_in += other.packets_in;
        packets_out += other.packets_out;
        return *this;
    }
};

// What a link reports to its owner. Calls arrive on the link's executor, never from inside close().
class LinkHandler {
public:
    virtual void on_packet(DistLink& link, std::string_view packet) = 0;
    // A big packet whose first bytes are `prefix` and whose other tail->size() bytes are in the pipes of
    // `tail`. True: the handler took care of it (it may have moved the tail away, to write it out on another
    // link). False: it did nothing, and the link reads the tail into memory and delivers the packet whole
    // with on_packet.
    virtual bool on_spliced_packet(DistLink&, std::string_view /*prefix*/, std::unique_ptr<SplicedTail>& /*tail*/)
    {
        return false;
    }
    virtual void on_drained(DistLink&) {}
    virtual void on_closed(DistLink& link, std::string_view reason) = 0;

protected:
    ~LinkHandler() = default;
};

// One established distribution connection (after the handshake): splits the byte stream into packets,
// answers and sends ticks, notices a silent peer, and writes everything queued during one turn of the event
// loop in one write. Single-threaded: every member runs on the io_context that owns the socket.
//
// The event loop is shared by every link, so no link holds it for long: a read takes at most kMaxIoBytes
// from the socket and a write hands at most kMaxIoBytes to it (a splice of bytes in pipes kMaxSpliceBytes);
// a packet of 8 MiB comes in and goes out in pieces, and (with LinkLimits::bulk) each next piece of it waits
// on the bulk queue, behind the small packets of other links. A big payload forwarded from one link to another
// is not copied (share_packet).
class DistLink : public std::enable_shared_from_this<DistLink> {
public:
    // `atom_cache`: both ends announced DFLAG_DIST_HDR_ATOM_CACHE in the handshake, so every packet starts
    // with a distribution header instead of the pass-through byte (protocol/dist_header.hpp).
    DistLink(DistStream stream, std::string peer_node, LinkLimits limits, bool atom_cache = false);
    ~DistLink();

    DistLink(const DistLink&) = delete;
    DistLink& operator=(const DistLink&) = delete;

    void start(LinkHandler& handler);
    // The owner is going away: no callback reaches it after this.
    void detach() { handler_ = nullptr; }
    void close(std::string_view reason);

    bool is_open() const { return !closed_; }
    const std::string& peer_node() const { return peer_node_; }

    // Output: begin_packet() opens a packet (pass-through, or with a distribution header without references)
    // and returns a writer for its control term and message (each starting with version(), which writes
    // nothing after a distribution header); end_packet() seals it. Packets go out in order. Incoming packets
    // with a distribution header reach the handler rewritten into the pass-through form.
    protocol::TermWriter begin_packet();
    void end_packet();
    // Packets queued in a turn of the event loop go out together once the turn's other work is done. After a
    // packet someone waits for (an answer to a caller, a request to a target), write_now() starts the write of
    // everything queued on the link so far at once, when nothing is being written and the link's output is not
    // deferred behind a big transfer: it leaves ahead of the rest of the turn's work (and of the next read,
    // which mostly finds nothing). What is queued after it follows in the next write.
    void write_now();
    // A whole packet made of bytes encoded already: `head` (the pass-through byte, the control term and the
    // message's version byte) and `body` (the message), with no encoder in between. `head` is copied; so is
    // `body`, unless `owner` keeps it alive and it is at least kMinBorrowedBytes: then the link refers to it
    // until it is written. `tail`, if any, follows `body`: bytes in pipes, spliced into the socket.
    void write_packet(std::string_view head, std::string_view body, const std::shared_ptr<const void>& owner = {},
                      std::unique_ptr<SplicedTail> tail = nullptr);
    std::size_t queued_bytes() const { return pending_.size() + inflight_.unwritten(); }
    bool uses_atom_cache() const { return atom_cache_; }
    // Buffers kept for the next big packets (Spare).
    std::size_t spare_buffers() const { return spare_->buffers.size(); }
    const LinkTraffic& traffic() const { return traffic_; }
    // What the peer holds of the atom cache entries this end defined (packets written with write_packet).
    protocol::AtomCacheOut& atoms_sent() { return atoms_sent_; }
    bool busy() const { return queued_bytes() > limits_.busy_limit; }
    // Whether `bytes` more may be queued under max_queued_bytes: always on a link with nothing queued (a
    // message bigger than the bound goes out alone), never on a closed one.
    bool admits(std::size_t bytes) const
    {
        const std::size_t queued = queued_bytes();
        return !closed_ &&
               (queued == 0 || (bytes <= limits_.max_queued_bytes && queued <= limits_.max_queued_bytes - bytes));
    }
    const LinkLimits& limits() const { return limits_; }

    // While on_packet runs: an owner of the bytes of the packet being delivered, if `part` lies in it (else
    // nullptr). The packet's bytes then stay where they are for as long as the owner lives, so views into
    // them stay valid after on_packet returns; the link reads on into a buffer of its own. Packets rewritten
    // from the atom-cache form are not shared.
    std::shared_ptr<const void> share_packet(std::string_view part);

private:
    // `packet_bytes` were just queued.
    void packet_queued(std::size_t packet_bytes);
    // Reports the change of queued_bytes() since the last call to the output budget.
    void account_output();
    // A packet begun and never ended (an exception, out of memory, left it): its bytes are taken back.
    void drop_open_packet();
    // Closes the link because memory for a packet could not be had.
    void out_of_memory(std::size_t packet_bytes);
    // Closes the link because memory it needed could not be had (`what`: the reason it reports), and counts it.
    void close_out_of_memory(std::string_view what);
    void do_read();
    // Room in in_ for `want` more bytes, in a spare buffer when the packet ending at `packet_end` (0: none
    // known yet) fits one; false when the memory could not be had (the link is closed then).
    bool make_room(std::size_t want, std::size_t packet_end);
    // Whether the packet coming in goes into pipes (LinkLimits::pipes): it starts to when its prefix is in.
    bool splice_candidate() const;
    bool start_tail();
    void read_tail();
    // The whole tail came in: to the handler (on_spliced_packet), or into memory and on as a packet.
    void finish_tail();
    // Reads what the pipes hold of the packet into in_ and reads on into memory; false when the link closed.
    bool materialize_tail();
    // After bytes came in: the whole packets among them to the handler, then the next read.
    void process_input(bool filled);
    // Reads the packet ending at `packet_end` into a spare buffer large enough, if there is one.
    void take_spare(std::size_t packet_end);
    // Reading a packet of at least kMinBorrowedBytes of which a part came in.
    bool amid_big_packet() const;
    // The next read, or the next write of the output in flight: now, or, with a bulk queue, when it is the bulk
    // queue's turn.
    void defer_read();
    void defer_write();
    void on_read(const error_code& ec, std::size_t n);
    bool dispatch_packets();
    // Hands one packet to the handler (rewritten into the pass-through form if it has a distribution header);
    // false when the link closed over it.
    bool deliver(std::string_view packet);
    void schedule_flush();
    void do_write();
    // The write position is in `tail`'s bytes (held by pipes): splice them into the socket.
    void write_tail(SplicedTail* tail);
    void on_write(const error_code& ec, std::size_t n);
    void arm_tick();
    void on_tick(const error_code& ec);
    void queue_tick();
    void on_peer_tick();

    DistStream stream_;
    asio::steady_timer tick_timer_;
    std::string peer_node_;
    LinkLimits limits_;
    LinkHandler* handler_ = nullptr;

    bool atom_cache_;
    protocol::AtomCacheIn atoms_received_;
    protocol::AtomCacheOut atoms_sent_;
    ByteBuffer normalized_; // an incoming packet rewritten into the pass-through form
    std::unique_ptr<LinkRecording> recording_; // with LinkLimits::recorder only

    // Bytes to write: the link's own (control terms, small packets, ticks) with borrowed ones (big payloads of
    // packets from other links, kept alive by their owners) inserted at offsets of the own bytes.
    struct Borrowed {
        std::size_t at; // offset in `own` before which these bytes go
        std::string_view bytes;
        std::shared_ptr<const void> owner;
        std::unique_ptr<SplicedTail> tail; // or these bytes, in pipes (`bytes` empty)

        std::size_t size() const { return tail ? tail->size() : bytes.size(); }
    };
    struct Output {
        ByteBuffer own;
        std::vector<Borrowed> borrowed;
        std::size_t borrowed_bytes = 0;
        std::size_t written = 0; // the bytes from the start that the socket took already (output in flight)

        std::size_t size() const { return own.size() + borrowed_bytes; }
        std::size_t unwritten() const { return size() - written; }
        bool empty() const { return size() == 0; }
        void clear();
        void swap(Output& other) noexcept;
    };
    // Gathers at most kMaxIoBytes of `inflight_` from what is written on, as at most `max_buffers` socket
    // buffers, stopping before bytes in pipes; the rest of `out` is left as it is.
    struct Gathered {
        std::size_t bytes;
        SplicedTail* stopped_at; // the tail the gathering stopped before, if it did
    };
    Gathered next_write(asio::const_buffer* out, std::size_t max_buffers) const;

    ByteBuffer in_;
    Output pending_;
    Output inflight_;
    std::size_t packet_start_ = 0; // offset of the open packet's length in pending_.own
    bool packet_open_ = false;     // begin_packet() without its end_packet() yet
    std::size_t accounted_ = 0;    // the queued bytes last reported to limits_.output
    std::size_t read_chunk_;
    std::size_t read_size_ = 0; // asked of the socket by the read in progress
    // Buffers that shared packets' owners gave back when the last borrower let go (SharedPacket): the next
    // big packets are read into them, so their pages are not faulted in again (page faults on fresh 8 MiB
    // buffers were a third of the C-node's time relaying big messages). A packet is still being written out
    // while the next ones come in, so a link keeps up to kMaxSpares; they are freed at a tick without use.
    static constexpr std::size_t kMaxSpares = 2;
    struct Spare {
        std::vector<ByteBuffer> buffers;
        bool used_since_tick = false;
    };
    // The buffer of a packet that left with its bytes (share_packet); when the last borrower lets go, the
    // buffer goes back to its link's spares (if the link is still there and keeps fewer than kMaxSpares).
    struct SharedPacket {
        ByteBuffer buffer;
        std::weak_ptr<Spare> home;
        ~SharedPacket();
    };
    // The packet on_packet is delivering (in in_), and the owner of in_'s former buffer once it was shared.
    std::string_view delivering_;
    std::shared_ptr<SharedPacket> delivering_owner_;
    std::shared_ptr<Spare> spare_ = std::make_shared<Spare>();
    // The tail of the packet coming in, while it goes into pipes; and whether the packet coming in is read
    // into memory after all (no pipe, or its handler did not take it).
    std::unique_ptr<SplicedTail> tail_in_;
    bool splice_declined_ = false;
    bool tail_woken_ = false; // the socket was reported readable since the tail's last splice


    bool closed_ = false;
    bool writing_ = false;
    bool flush_posted_ = false;
    // The rest of a big output waits on the bulk queue: nothing else may write meanwhile (a flush would send
    // it at normal priority), and the link has one bulk item for it at most.
    bool write_deferred_ = false;
    bool was_busy_ = false;
    bool read_since_tick_ = false;
    bool wrote_since_tick_ = false;
    // Data or a tick of our own went out since the peer's last tick; answers to ticks do not count.
    bool wrote_since_peer_tick_ = false;
    int silent_ticks_ = 0;
    LinkTraffic traffic_;
};

} // namespace dpool::transport
