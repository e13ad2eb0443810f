#include "transport/spliced_tail.hpp"

#include <algorithm>
#include <cerrno>
#include <utility>

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

namespace dpool::transport {

std::optional<Pipe> Pipe::open(std::size_t bytes)
{
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) {
        return std::nullopt;
    }
    Pipe pipe(fds[0], fds[1], 0);
    // A pipe of the default 64 KiB would take 128 of them for an 8 MiB payload: one that cannot be made
    // bigger (pipe-max-size, or the user's pipe memory spent) is not used.
    const int got = ::fcntl(fds[1], F_SETPIPE_SZ, static_cast<int>(bytes));
    if (got < 0 || static_cast<std::size_t>(got) < bytes) {
        return std::nullopt;
    }
    pipe.capacity_ = static_cast<std::size_t>(got);
    return pipe;
}

Pipe::Pipe(int read_end, int write_end, std::size_t capacity) : capacity_(capacity)
{
    fds_[0] = read_end;
    fds_[1] = write_end;
}

Pipe::Pipe(Pipe&& other) noexcept
    : fds_{std::exchange(other.fds_[0], -1), std::exchange(other.fds_[1], -1)}, capacity_(other.capacity_)
{
}

Pipe& Pipe::operator=(Pipe&& other) noexcept
{
    if (this != &other) {
        reset();
        fds_[0] = std::exchange(other.fds_[0], -1);
        fds_[1] = std::exchange(other.fds_[1], -1);
        capacity_ = other.capacity_;
    }
    return *this;
}

Pipe::~Pipe() { reset(); }

void Pipe::reset() noexcept
{
    for (int& fd : fds_) {
        if (fd >= 0) {
            ::close(fd);
            fd = -1;
        }
    }
}

std::optional<Pipe> PipeBudget::take()
{
    if (!spares_.empty()) {
        Pipe pipe = std::move(spares_.back());
        spares_.pop_back();
        least_spares_ = std::min(least_spares_, spares_.size());
        return pipe;
    }
    if (open_ >= max_pipes_) {
        return std::nullopt;
    }
    auto pipe = Pipe::open(pipe_bytes_);
    if (pipe) {
        ++open_;
    }
    return pipe;
}

void PipeBudget::give_back(Pipe pipe)
{
    if (spares_.size() < kMaxSpares) {
        try {
            spares_.push_back(std::move(pipe));
            return;
        } catch (...) {
            // No memory for the list: the pipe is closed instead.
        }
    }
    --open_;
}

std::size_t PipeBudget::close_unused_spares()
{
    const std::size_t unused = std::min(least_spares_, spares_.size());
    spares_.erase(spares_.begin(), spares_.begin() + static_cast<std::ptrdiff_t>(unused)); // closes them
    open_ -= unused;
    counters_.idle_closed += unused;
    least_spares_ = spares_.size();
    return unused;
}

SplicedTail::SplicedTail(std::shared_ptr<PipeBudget> budget, std::size_t size)
    : budget_(std::move(budget)), size_(size)
{
}

SplicedTail::~SplicedTail()
{
    for (std::size_t i = front_; i < pipes_.size(); ++i) {
        if (pipes_[i].in == pipes_[i].out) {
            budget_->give_back(std::move(pipes_[i].pipe));
        } else {
            budget_->closed_one(); // its bytes go with it
        }
    }
}

bool SplicedTail::room_to_fill()
{
    if (!pipes_.empty() && !pipes_.back().sealed && pipes_.back().in < pipes_.back().pipe.capacity()) {
        return true;
    }
    // A pipe full long before its byte capacity (a slot per tiny segment: a peer writing a few bytes at a
    // time) would spend the budget on little data: the rest goes to memory instead.
    if (!pipes_.empty() && pipes_.back().in < pipes_.back().pipe.capacity() / kLeastFill) {
        return false;
    }
    try {
        pipes_.reserve(pipes_.size() + 1); // before a pipe is taken: no allocation can fail while it is held
    } catch (...) {
        return false;
    }
    auto pipe = budget_->take();
    if (!pipe) {
        return false;
    }
    pipes_.push_back(Held{std::move(*pipe)});
    return true;
}

SpliceResult SplicedTail::fill_from(int fd, std::size_t max)
{
    std::size_t want = std::min(max, size_ - filled_);
    for (int attempt = 0; attempt < 2 && want > 0; ++attempt) {
        if (!room_to_fill()) {
            return {SpliceResult::Kind::no_pipe};
        }
        Held& to = pipes_.back();
        const std::size_t n = std::min(want, to.pipe.capacity() - to.in);
        const ssize_t got = ::splice(fd, nullptr, to.pipe.write_end(), nullptr, n, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (got > 0) {
            to.in += static_cast<std::size_t>(got);
            filled_ += static_cast<std::size_t>(got);
            budget_->counters().bytes += static_cast<std::uint64_t>(got);
            return {SpliceResult::Kind::moved, static_cast<std::size_t>(got)};
        }
        if (got == 0) {
            return {SpliceResult::Kind::end_of_stream};
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            return {SpliceResult::Kind::failed, 0, errno};
        }
        // Nothing to read, or the pipe is full before its byte capacity (each slot holds one page or part of
        // one): a pipe that cannot take more is left for a new one.
        pollfd writable{to.pipe.write_end(), POLLOUT, 0};
        if (::poll(&writable, 1, 0) == 1 && (writable.revents & POLLOUT) != 0) {
            return {SpliceResult::Kind::would_block};
        }
        to.sealed = true;
    }
    return {SpliceResult::Kind::would_block};
}

SpliceResult SplicedTail::drain_to(int fd, std::size_t max)
{
    if (front_ == pipes_.size()) {
        return {SpliceResult::Kind::would_block};
    }
    Held& from = pipes_[front_];
    const std::size_t n = std::min(max, from.in - from.out);
    if (n == 0) {
        return {SpliceResult::Kind::would_block}; // the pipe being filled has nothing yet
    }
    const ssize_t put = ::splice(from.pipe.read_end(), nullptr, fd, nullptr, n, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (put > 0) {
        from.out += static_cast<std::size_t>(put);
        drained_ += static_cast<std::size_t>(put);
        release_drained_front();
        return {SpliceResult::Kind::moved, static_cast<std::size_t>(put)};
    }
    if (put < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        return {SpliceResult::Kind::would_block};
    }
    return {SpliceResult::Kind::failed, 0, put < 0 ? errno : EPIPE};
}

void SplicedTail::release_drained_front()
{
    while (front_ < pipes_.size() && pipes_[front_].out == pipes_[front_].in &&
           (front_ + 1 < pipes_.size() || full() || pipes_[front_].sealed)) {
        budget_->give_back(std::move(pipes_[front_].pipe));
        pipes_[front_].in = pipes_[front_].out = 0;
        ++front_;
    }
}

bool SplicedTail::read_into(char* out)
{
    while (front_ < pipes_.size()) {
        Held& from = pipes_[front_];
        while (from.out < from.in) {
            const ssize_t got = ::read(from.pipe.read_end(), out, from.in - from.out);
            if (got <= 0) {
                return false;
            }
            from.out += static_cast<std::size_t>(got);
            drained_ += static_cast<std::size_t>(got);
            out += got;
        }
        if (front_ + 1 == pipes_.size() && !full() && !from.sealed) {
            return true; // the last pipe may take more
        }
        budget_->give_back(std::move(from.pipe));
        from.in = from.out = 0;
        ++front_;
    }
    return true;
}

} // namespace dpool::transport
