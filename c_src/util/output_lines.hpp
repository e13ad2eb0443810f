#pragma once

#include <limits.h> // PIPE_BUF
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include <spdlog/async_logger.h>
#include <spdlog/details/thread_pool.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

#include "util/log.hpp"

namespace dpool::util {

// Writes each record as one line of the file descriptor `fd` (log::to_one_line): a message can hold text from
// outside (a caller's pool name, a path in its options), which must not forge a level, metadata or
// [dpool_event] line. It waits for room (poll) before each piece of at most PIPE_BUF bytes, which a pipe then
// takes without blocking (a socket is written with MSG_DONTWAIT: its POLLOUT promises less), so that once
// `stopping` is set it gives up within kPollMs instead of waiting for a reader that may never read again; the
// lines still queued are then dropped. One sink serves one thread.
class FdLineSink final : public spdlog::sinks::base_sink<spdlog::details::null_mutex> {
public:
    static constexpr int kPollMs = 100;

    FdLineSink(int fd, std::shared_ptr<const std::atomic<bool>> stopping)
        : fd_(fd), socket_(is_socket(fd)), stopping_(std::move(stopping))
    {
    }

protected:
    void sink_it_(const spdlog::details::log_msg& msg) override
    {
        std::string text(msg.payload.data(), msg.payload.size());
        log::to_one_line(text);
        const spdlog::details::log_msg clean(msg.time, msg.source, msg.logger_name, msg.level, text);
        spdlog::memory_buf_t line;
        formatter_->format(clean, line);
        write_all(line.data(), line.size());
    }
    void flush_() override {}

private:
    void write_all(const char* data, std::size_t size)
    {
        std::size_t at = 0;
        while (at < size && !gave_up_) {
            pollfd ready{fd_, POLLOUT, 0};
            const int polled = ::poll(&ready, 1, kPollMs);
            if (polled == 0) {
                gave_up_ = stopping_->load();
                continue;
            }
            if (polled < 0 && errno == EINTR) {
                continue;
            }
            if (polled < 0 || (ready.revents & (POLLERR | POLLHUP | POLLNVAL)) != 0) {
                return; // no reader any more: the line goes nowhere
            }
            const std::size_t piece = std::min<std::size_t>(size - at, PIPE_BUF);
            const ssize_t n = socket_ ? ::send(fd_, data + at, piece, MSG_DONTWAIT | MSG_NOSIGNAL)
                                      : ::write(fd_, data + at, piece);
            if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
                continue;
            }
            if (n < 0) {
                return; // EPIPE (SIGPIPE is ignored) and the like
            }
            at += static_cast<std::size_t>(n);
        }
    }

    static bool is_socket(int fd)
    {
        struct stat st {};
        return ::fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
    }

    int fd_;
    bool socket_;
    std::shared_ptr<const std::atomic<bool>> stopping_;
    bool gave_up_ = false;
};

// The C-node's output: its log (standard error) and its lines for the node that started it (standard output:
// READY, the [dpool_event] lines), written by a thread of their own from a bounded queue, in the order they
// were made, so that a reader that stops reading (the node that started the C-node frozen, a terminal on
// hold) fills its pipe and holds that thread, never the event loop. When the two go to different files
// (a terminal and a log file, say) each has its queue and thread, so that one stalled reader does not hold
// the other's lines; when they are one file (the embedded C-node's port takes both) they share one, which
// keeps them in order and never splits a line longer than PIPE_BUF with another. When a queue is full its
// oldest line gives way; dropped() counts those (info: output_lines_dropped). At the end what is queued is
// written, unless the reader has not taken anything for FdLineSink::kPollMs: then it is dropped, and the
// C-node still exits.
class OutputLines {
public:
    // Room for this many lines not yet written, per output; each takes about 400 bytes, reserved at the start.
    static constexpr std::size_t kQueueLines = 1024;

    // The log to `log_fd`, the other lines to `out_fd` (the unit tests give pipes).
    explicit OutputLines(int out_fd = STDOUT_FILENO, int log_fd = STDERR_FILENO)
        : log_fd_(log_fd),
          stopping_(std::make_shared<std::atomic<bool>>(false)),
          log_pool_(std::make_shared<spdlog::details::thread_pool>(kQueueLines, 1)),
          out_pool_(same_file(out_fd, log_fd) ? log_pool_
                                              : std::make_shared<spdlog::details::thread_pool>(kQueueLines, 1)),
          log_(std::make_shared<spdlog::async_logger>("dpool_cnode", std::make_shared<FdLineSink>(log_fd, stopping_),
                                                      log_pool_, spdlog::async_overflow_policy::overrun_oldest)),
          out_(std::make_shared<spdlog::async_logger>("dpool_out", std::make_shared<FdLineSink>(out_fd, stopping_),
                                                      out_pool_, spdlog::async_overflow_policy::overrun_oldest))
    {
        log_->set_pattern(kLogPattern);
        out_->set_pattern("%v");
    }
    // The pools' threads serve every queued line before they stop (their destructors join them). spdlog's
    // default logger, when it is log(), would outlive its thread: what is logged from then on is written at
    // once, by a logger of its own (giving up on a stalled reader as the thread does).
    ~OutputLines()
    {
        stopping_->store(true);
        if (spdlog::default_logger_raw() == log_.get()) {
            try {
                auto direct = std::make_shared<spdlog::logger>("dpool_cnode",
                                                               std::make_shared<FdLineSink>(log_fd_, stopping_));
                direct->set_pattern(kLogPattern);
                direct->set_level(log_->level());
                spdlog::set_default_logger(std::move(direct));
            } catch (...) {
                // Out of memory at the end: log() stays the default, and what it is given then is reported by
                // spdlog's error handler instead of written (never a crash).
            }
        }
    }
    OutputLines(const OutputLines&) = delete;
    OutputLines& operator=(const OutputLines&) = delete;

    // The logger to make spdlog's default (the C-node's log).
    const std::shared_ptr<spdlog::async_logger>& log() const { return log_; }
    // One line of standard output.
    void line(std::string_view text) { out_->info("{}", text); }
    std::uint64_t dropped() const
    {
        return log_pool_->overrun_counter() + (shared() ? 0 : out_pool_->overrun_counter());
    }
    // Whether both outputs share one queue and thread (they go to one file).
    bool shared() const { return out_pool_ == log_pool_; }

private:
    static bool same_file(int a, int b)
    {
        struct stat sa {};
        struct stat sb {};
        return a == b || (::fstat(a, &sa) == 0 && ::fstat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
                          sa.st_ino == sb.st_ino);
    }

    static constexpr const char* kLogPattern = "[dpool_cnode] %l: %v";

    int log_fd_;
    std::shared_ptr<std::atomic<bool>> stopping_;
    std::shared_ptr<spdlog::details::thread_pool> log_pool_;
    std::shared_ptr<spdlog::details::thread_pool> out_pool_;
    std::shared_ptr<spdlog::async_logger> log_;
    std::shared_ptr<spdlog::async_logger> out_;
};

} // namespace dpool::util
