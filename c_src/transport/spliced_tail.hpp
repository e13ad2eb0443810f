#pragma once
// The rest of a big incoming packet held in pipes instead of the C-node's memory: moved from the caller's
// socket into pipes with splice(2), and from the pipes into a target's socket the same way. The bytes of a
// payload forwarded unchanged then never cross into user space (on loopback the pages are the sender's own:
// no copy at all in the C-node, where reading each byte in and writing it out again was half of its time
// relaying big messages).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

namespace dpool::transport {

// A pipe's two descriptors, closed with it.
class Pipe {
public:
    // A non-blocking pipe of at least `bytes` capacity; nullopt when the kernel gives none (descriptors, or
    // the per-user bound on pipe memory).
    static std::optional<Pipe> open(std::size_t bytes);

    Pipe(Pipe&& other) noexcept;
    Pipe& operator=(Pipe&& other) noexcept;
    Pipe(const Pipe&) = delete;
    Pipe& operator=(const Pipe&) = delete;
    ~Pipe();

    int read_end() const { return fds_[0]; }
    int write_end() const { return fds_[1]; }
    std::size_t capacity() const { return capacity_; }

private:
    Pipe(int read_end, int write_end, std::size_t capacity);
    void reset() noexcept;

    int fds_[2] = {-1, -1};
    std::size_t capacity_ = 0;
};

// The capacity of each pipe: a packet's tail of up to this much in one pipe, one splice to write it on.
inline constexpr std::size_t kPipeBytes = std::size_t{1} << 20;

// What the pipes did, over all links (stats: spliced_packets and the like).
struct PipeCounters {
    std::uint64_t packets = 0;   // big packets whose tail went through pipes
    std::uint64_t bytes = 0;     // bytes moved into pipes
    std::uint64_t fallbacks = 0; // tails read into memory after all: no pipe to be had, or a packet not forwarded
    std::uint64_t idle_closed = 0; // spare pipes closed because none of the tails needed them for an interval
};

// The counters and the pipes open now, as info and the metrics report them.
struct PipeUsage {
    PipeCounters counters;
    std::size_t pipes_open = 0; // in tails or kept empty for the next ones
};

// The pipes of every link together, on the event loop (no atomics): at most `max_pipes` exist at once (two
// descriptors each), and empty ones are kept for the next tails instead of being closed and opened again.
class PipeBudget {
public:
    explicit PipeBudget(std::size_t max_pipes, std::size_t pipe_bytes = kPipeBytes)
        : max_pipes_(max_pipes), pipe_bytes_(pipe_bytes)
    {
    }

    // A pipe from the spares or a new one; nullopt at the bound or when the kernel gives none.
    std::optional<Pipe> take();
    // A pipe that holds no bytes: kept for reuse (up to a few), else closed.
    void give_back(Pipe pipe);
    // A pipe closed with bytes in it (a tail dropped before it was written).
    void closed_one() { --open_; }
    // Closes the spares that stayed unused since the previous call: a spare is taken from the top, so the
    // fewest spares seen since then are those at the bottom that nothing took. Called every interval by the
    // owner (api::Service), so that the pipes kept for bursts of big packets give back their descriptors and
    // the user's pipe allowance (fs.pipe-user-pages-soft, counted by capacity, shared with every process of
    // the user) within two intervals of the last burst. Returns how many it closed.
    std::size_t close_unused_spares();

    std::size_t open_pipes() const { return open_; }
    std::size_t spare_pipes() const { return spares_.size(); }
    std::size_t max_pipes() const { return max_pipes_; }
    PipeCounters& counters() { return counters_; }
    const PipeCounters& counters() const { return counters_; }
    PipeUsage usage() const { return {counters_, open_}; }

private:
    static constexpr std::size_t kMaxSpares = 16;
    std::size_t max_pipes_;
    std::size_t pipe_bytes_;
    std::size_t open_ = 0;
    std::vector<Pipe> spares_;       // the last one is taken first
    std::size_t least_spares_ = 0;   // the fewest spares since the last close_unused_spares
    PipeCounters counters_;
};

// The outcome of moving bytes: how many moved, or why none did.
struct SpliceResult {
    enum class Kind { moved, would_block, end_of_stream, no_pipe, failed };
    Kind kind;
    std::size_t bytes = 0;
    int error = 0; // errno, with failed
};

// The tail of one packet: `size` bytes that come from a socket into pipes (fill_from), then leave for another
// socket (drain_to) or into memory (read_into). Dropped, it closes what it holds or gives empty pipes back.
class SplicedTail {
public:
    SplicedTail(std::shared_ptr<PipeBudget> budget, std::size_t size);
    ~SplicedTail();
    SplicedTail(const SplicedTail&) = delete;
    SplicedTail& operator=(const SplicedTail&) = delete;

    std::size_t size() const { return size_; }
    std::size_t filled() const { return filled_; }
    bool full() const { return filled_ == size_; }
    // In the pipes now: filled and not yet drained or read.
    std::size_t held() const { return filled_ - drained_; }

    // Moves at most `max` of the bytes still to come from the non-blocking socket `fd` into the pipes.
    SpliceResult fill_from(int fd, std::size_t max);
    // Moves at most `max` held bytes, in order, to the non-blocking socket `fd`.
    SpliceResult drain_to(int fd, std::size_t max);
    // Reads every held byte into `out` (room for held() bytes): false if a pipe would not give them.
    bool read_into(char* out);
    // The tail goes into memory after all (PipeCounters::fallbacks).
    void count_fallback() { ++budget_->counters().fallbacks; }

private:
    struct Held {
        Pipe pipe;
        std::size_t in = 0;  // bytes put into it
        std::size_t out = 0; // bytes taken from it
        bool sealed = false; // full before its byte capacity: nothing more goes into it
    };
    // The pipe the next bytes go into; false when no pipe is to be had, or the last one sealed holding less
    // than 1/kLeastFill of its capacity.
    bool room_to_fill();
    static constexpr std::size_t kLeastFill = 8;
    // Lets go of the first pipe once it is emptied and nothing more will go into it.
    void release_drained_front();

    std::shared_ptr<PipeBudget> budget_;
    std::size_t size_;
    std::size_t filled_ = 0;
    std::size_t drained_ = 0;
    std::vector<Held> pipes_; // the front ones are emptied first
    std::size_t front_ = 0;   // the first pipe not yet emptied
};

} // namespace dpool::transport
