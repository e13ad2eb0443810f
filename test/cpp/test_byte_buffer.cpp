#include "test_support.hpp"

#include <random>
#include <string>
#include <utility>

#include "util/byte_buffer.hpp"

using dpool::ByteBuffer;

namespace {

// Distinct bytes, so a misplaced or duplicated range shows up in a comparison.
std::string pattern(std::size_t n, char first = 'a')
{
    std::string s(n, '\0');
    for (std::size_t i = 0; i < n; ++i) {
        s[i] = static_cast<char>(first + static_cast<char>(i % 26));
    }
    return s;
}

} // namespace

TEST_CASE("ByteBuffer starts empty and without an allocation", "[byte_buffer]")
{
    ByteBuffer b;
    CHECK(b.empty());
    CHECK(b.size() == 0);
    CHECK(b.capacity() == 0);
    CHECK(b.view().empty());
}

TEST_CASE("ByteBuffer reserves at least 256 bytes, doubling from there", "[byte_buffer]")
{
    CHECK(ByteBuffer(1).capacity() == 256);
    CHECK(ByteBuffer(256).capacity() == 256);
    CHECK(ByteBuffer(257).capacity() == 512);
    CHECK(ByteBuffer(1000).capacity() == 1024);
}

TEST_CASE("ByteBuffer append then consume yields the unread bytes in order", "[byte_buffer]")
{
    ByteBuffer b;
    b.append("hello");
    b.push_back(' ');
    b.append(std::string_view("world"));
    CHECK(b.view() == "hello world");
    CHECK(b.size() == 11);

    b.consume(6);
    CHECK(b.view() == "world");
    CHECK(b.size() == 5);

    b.consume(5);
    CHECK(b.empty());
    // Consuming everything rewinds both cursors, so the whole allocation is tail room again.
    CHECK(b.tail_room() == b.capacity());
    b.append("again");
    CHECK(b.view() == "again");
}

TEST_CASE("ByteBuffer commit records bytes written at tail()", "[byte_buffer]")
{
    ByteBuffer b;
    b.append("ab");
    b.ensure_tail_room(3);
    std::string("cde").copy(b.tail(), 3);
    b.commit(3);
    CHECK(b.view() == "abcde");
}

TEST_CASE("ByteBuffer ensure_tail_room compacts when the unread part is small", "[byte_buffer]")
{
    ByteBuffer b(256);
    REQUIRE(b.capacity() == 256);
    const std::string bytes = pattern(200);
    b.append(bytes);
    b.consume(150); // 50 unread, 150 consumed in front of them
    REQUIRE(b.tail_room() == 56);

    b.ensure_tail_room(150);

    CHECK(b.capacity() == 256); // moved, not grown
    CHECK(b.tail_room() == 206);
    CHECK(b.view() == bytes.substr(150));
}

TEST_CASE("ByteBuffer ensure_tail_room grows when moving would not free enough", "[byte_buffer]")
{
    ByteBuffer b(256);
    const std::string bytes = pattern(200);
    b.append(bytes);
    b.consume(10); // 190 unread: even at the front only 66 bytes would be free

    b.ensure_tail_room(100);

    CHECK(b.capacity() > 256);
    CHECK(b.tail_room() >= 100);
    CHECK(b.view() == bytes.substr(10));
}

TEST_CASE("ByteBuffer ensure_tail_room makes room behind a large unread part", "[byte_buffer]")
{
    ByteBuffer b(256);
    const std::string bytes = pattern(200);
    b.append(bytes);
    b.consume(50); // 150 unread behind 50 consumed: not moved in place, copied to a new allocation

    b.ensure_tail_room(60);

    CHECK(b.tail_room() >= 60);
    CHECK(b.view() == bytes.substr(50));
}

TEST_CASE("ByteBuffer keeps unread bytes intact through any mix of appends and consumes", "[byte_buffer]")
{
    std::mt19937 random(20240611);
    ByteBuffer b;
    std::string model;
    char next = 0;
    for (int step = 0; step < 20000; ++step) {
        if (random() % 2 == 0) {
            const std::size_t n = random() % 700;
            std::string chunk(n, '\0');
            for (char& c : chunk) {
                c = next++;
            }
            b.append(chunk);
            model += chunk;
        } else if (!model.empty()) {
            const std::size_t n = random() % (model.size() + 1);
            b.consume(n);
            model.erase(0, n);
        }
        REQUIRE(b.size() == model.size());
        REQUIRE(b.view() == model);
        REQUIRE(b.tail() == b.data() + b.size());
    }
}

TEST_CASE("ByteBuffer clear keeps the allocation", "[byte_buffer]")
{
    ByteBuffer b;
    b.append(pattern(1000));
    const auto capacity = b.capacity();
    b.clear();
    CHECK(b.empty());
    CHECK(b.capacity() == capacity);
    CHECK(b.tail_room() == capacity);
}

TEST_CASE("ByteBuffer truncate cuts the unread bytes back", "[byte_buffer]")
{
    ByteBuffer b;
    b.append("abcdef");
    b.consume(1);
    b.truncate(3);
    CHECK(b.view() == "bcd");
    b.append("x");
    CHECK(b.view() == "bcdx");
    b.truncate(0);
    CHECK(b.empty());
}

TEST_CASE("ByteBuffer shrink_if_idle frees only an empty buffer above the limit", "[byte_buffer]")
{
    ByteBuffer b;
    b.append(pattern(4000));
    REQUIRE(b.capacity() == 4096);

    SECTION("a buffer with unread bytes keeps its memory")
    {
        b.consume(3999);
        b.shrink_if_idle(1024);
        CHECK(b.capacity() == 4096);
        CHECK(b.view() == pattern(4000).substr(3999));
    }
    SECTION("an empty buffer within the limit keeps its memory")
    {
        b.consume(4000);
        b.shrink_if_idle(4096);
        CHECK(b.capacity() == 4096);
    }
    SECTION("an empty buffer above the limit lets go and stays usable")
    {
        b.consume(4000);
        b.shrink_if_idle(1024);
        CHECK(b.capacity() == 0);
        CHECK(b.empty());
        b.append("after");
        CHECK(b.view() == "after");
        CHECK(b.capacity() == 256);
    }
}

TEST_CASE("ByteBuffer swap exchanges contents, cursors and allocations", "[byte_buffer]")
{
    ByteBuffer a;
    a.append("first-buffer");
    a.consume(6);
    ByteBuffer b;
    b.append(pattern(600));
    const char* a_data = a.data();
    const char* b_data = b.data();
    const auto a_capacity = a.capacity();
    const auto b_capacity = b.capacity();

    a.swap(b);

    CHECK(a.view() == pattern(600));
    CHECK(b.view() == "buffer");
    CHECK(a.data() == b_data);
    CHECK(b.data() == a_data);
    CHECK(a.capacity() == b_capacity);
    CHECK(b.capacity() == a_capacity);
    b.append("!");
    CHECK(b.view() == "buffer!");
}

TEST_CASE("ByteBuffer move leaves the source empty and reusable", "[byte_buffer]")
{
    ByteBuffer source;
    source.append("payload");

    SECTION("move construction")
    {
        ByteBuffer target(std::move(source));
        CHECK(target.view() == "payload");
    }
    SECTION("move assignment")
    {
        ByteBuffer target;
        target.append("old contents");
        target = std::move(source);
        CHECK(target.view() == "payload");
    }
    // The moved-from buffer owns no storage, so it must not claim any bytes or room either; otherwise the next
    // append writes through a null pointer.
    REQUIRE(source.size() == 0);
    REQUIRE(source.capacity() == 0);
    source.append("reused");
    CHECK(source.view() == "reused");
}
