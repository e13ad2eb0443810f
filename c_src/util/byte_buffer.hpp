#pragma once

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <memory>
#include <string_view>
#include <utility>

namespace dpool {

// A growable byte buffer with a read cursor: writers append at the tail, readers consume from the head.
// Growth never zero-fills, so making room for an 8 MiB payload costs no extra pass over it, and clear()
// keeps the allocation, so a buffer reused for every message allocates only when a message outgrows it.
class ByteBuffer {
public:
    ByteBuffer() = default;
    explicit ByteBuffer(std::size_t capacity) { ensure_tail_room(capacity); }

    // A moved-from buffer is empty and reusable.
    ByteBuffer(ByteBuffer&& other) noexcept
        : storage_(std::move(other.storage_)),
          capacity_(std::exchange(other.capacity_, 0)),
          head_(std::exchange(other.head_, 0)),
          tail_(std::exchange(other.tail_, 0))
    {
    }
    ByteBuffer& operator=(ByteBuffer&& other) noexcept
    {
        ByteBuffer taken(std::move(other));
        swap(taken);
        return *this;
    }
    ByteBuffer(const ByteBuffer&) = delete;
    ByteBuffer& operator=(const ByteBuffer&) = delete;

    // The unread bytes.
    char* data() { return storage_.get() + head_; }
    const char* data() const { return storage_.get() + head_; }
    std::size_t size() const { return tail_ - head_; }
    bool empty() const { return tail_ == head_; }
    std::string_view view() const { return {data(), size()}; }

    std::size_t capacity() const { return capacity_; }
    std::size_t tail_room() const { return capacity_ - tail_; }
    char* tail() { return storage_.get() + tail_; }

    // Records n bytes written at tail().
    void commit(std::size_t n) { tail_ += n; }

    // Drops n bytes from the head.
    void consume(std::size_t n)
    {
        head_ += n;
        if (head_ == tail_) {
            head_ = tail_ = 0;
        }
    }

    void clear() { head_ = tail_ = 0; }

    // Cuts the unread bytes back to the first n (n <= size()).
    void truncate(std::size_t n) { tail_ = head_ + n; }

    // Makes room for n more bytes at the tail: first by moving unread bytes to the front, then by growing.
    // Growth doubles the capacity, but not beyond `enough` bytes when that holds the unread bytes and the n
    // more: a reader that knows how big its message is asks for no more than the message.
    void ensure_tail_room(std::size_t n, std::size_t enough = 0)
    {
        if (tail_room() >= n) {
            return;
        }
        const std::size_t used = size();
        if (head_ > 0 && capacity_ - used >= n && used <= head_) {
            // Only move when the move is cheap compared with what it frees.
            std::memmove(storage_.get(), data(), used);
            head_ = 0;
            tail_ = used;
            return;
        }
        std::size_t new_capacity = capacity_ == 0 ? kMinCapacity : capacity_;
        while (new_capacity - used < n) {
            new_capacity *= 2;
        }
        if (enough >= used + n && new_capacity > enough) {
            new_capacity = std::max(enough, capacity_);
        }
        if (new_capacity == capacity_) {
            // Room enough once the unread bytes move to the front: cheaper than a new block and a copy.
            std::memmove(storage_.get(), data(), used);
            head_ = 0;
            tail_ = used;
            return;
        }
        auto grown = std::make_unique_for_overwrite<char[]>(new_capacity);
        if (used > 0) {
            std::memcpy(grown.get(), data(), used);
        }
        storage_ = std::move(grown);
        capacity_ = new_capacity;
        head_ = 0;
        tail_ = used;
    }

    void append(const void* bytes, std::size_t n)
    {
        if (n == 0) {
            return; // an empty view may have no data: memcpy must not see that null
        }
        ensure_tail_room(n);
        std::memcpy(tail(), bytes, n);
        tail_ += n;
    }
    void append(std::string_view bytes) { append(bytes.data(), bytes.size()); }

    void push_back(char c)
    {
        ensure_tail_room(1);
        storage_[tail_++] = c;
    }

    // Frees the allocation of an empty buffer that grew beyond `keep` bytes (after a large message), so an
    // idle connection does not hold on to the memory of its largest message.
    void shrink_if_idle(std::size_t keep)
    {
        if (empty() && capacity_ > keep) {
            storage_.reset();
            capacity_ = head_ = tail_ = 0;
        }
    }

    void swap(ByteBuffer& other) noexcept
    {
        std::swap(storage_, other.storage_);
        std::swap(capacity_, other.capacity_);
        std::swap(head_, other.head_);
        std::swap(tail_, other.tail_);
    }

private:
    static constexpr std::size_t kMinCapacity = 256;

    std::unique_ptr<char[]> storage_;
    std::size_t capacity_ = 0;
    std::size_t head_ = 0;
    std::size_t tail_ = 0;
};

} // namespace dpool
