#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "protocol/dist_header.hpp"
#include "protocol/term_writer.hpp"
#include "util/asio.hpp"
#include "util/byte_buffer.hpp"

namespace dpool::transport {

struct LinkLimits {
    std::size_t max_packet_bytes = std::size_t{1} << 30;
    // Erlang ticks every net_ticktime/4 when it has sent nothing; four silent periods mean the peer is gone.
    std::chrono::milliseconds tick_interval{15000};
    int silent_ticks_allowed = 4;
    // Above this much queued output the link reports itself busy, as a distribution port does.
    std::size_t busy_limit = std::size_t{1} << 20;
    // A peer that lets this much output pile up is not reading: the link is closed rather than let the
    // C-node's memory grow without bound.
    std::size_t max_queued_bytes = std::size_t{512} << 20;
};

class DistLink;

// What a link reports to its owner. Calls arrive on the link's executor, never from inside close().
class LinkHandler {
public:
    virtual void on_packet(DistLink& link, std::string_view packet) = 0;
    virtual void on_drained(DistLink&) {}
    virtual void on_closed(DistLink& link, std::string_view reason) = 0;

protected:
    ~LinkHandler() = default;
};

// One established distribution connection (after the handshake): splits the byte stream into packets,
// answers and sends ticks, notices a silent peer, and writes everything queued during one turn of the event
// loop in one write. Single-threaded: every member runs on the io_context that owns the socket.
class DistLink : public std::enable_shared_from_this<DistLink> {
public:
    // `atom_cache`: both ends announced DFLAG_DIST_HDR_ATOM_CACHE in the handshake, so every packet starts
    // with a distribution header instead of the pass-through byte (protocol/dist_header.hpp).
    DistLink(tcp::socket socket, std::string peer_node, LinkLimits limits, bool atom_cache = false);
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
    // A whole packet made of bytes encoded already: `head` (the pass-through byte, the control term and the
    // message's version byte) and `body` (the message), copied once each, with no encoder in between.
    void write_packet(std::string_view head, std::string_view body);
    std::size_t queued_bytes() const { return pending_.size() + inflight_.size(); }
    bool uses_atom_cache() const { return atom_cache_; }
    // What the peer holds of the atom cache entries this end defined (packets written with write_packet).
    protocol::AtomCacheOut& atoms_sent() { return atoms_sent_; }
    bool busy() const { return queued_bytes() > limits_.busy_limit; }

private:
    void packet_queued();
    void do_read();
    void on_read(const error_code& ec, std::size_t n);
    bool dispatch_packets();
    void schedule_flush();
    void do_write();
    void on_write(const error_code& ec, std::size_t n);
    void arm_tick();
    void on_tick(const error_code& ec);
    void queue_tick();
    void on_peer_tick();

    tcp::socket socket_;
    asio::steady_timer tick_timer_;
    std::string peer_node_;
    LinkLimits limits_;
    LinkHandler* handler_ = nullptr;

    bool atom_cache_;
    protocol::AtomCacheIn atoms_received_;
    protocol::AtomCacheOut atoms_sent_;
    ByteBuffer normalized_; // an incoming packet rewritten into the pass-through form

    ByteBuffer in_;
    ByteBuffer pending_;
    ByteBuffer inflight_;
    std::size_t packet_start_ = 0;
    std::size_t read_chunk_;

    bool closed_ = false;
    bool writing_ = false;
    bool flush_posted_ = false;
    bool was_busy_ = false;
    bool read_since_tick_ = false;
    bool wrote_since_tick_ = false;
    // Data or a tick of our own went out since the peer's last tick; answers to ticks do not count.
    bool wrote_since_peer_tick_ = false;
    int silent_ticks_ = 0;
};

} // namespace dpool::transport
