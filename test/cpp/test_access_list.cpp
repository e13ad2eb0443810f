#include "test_support.hpp"

#include <string>
#include <vector>

#include "api/access_list.hpp"
#include "api/refused_callers.hpp"

using dpool::api::AddressRange;
using dpool::api::CallerAccess;
using dpool::api::glob_match;
using dpool::api::NodePattern;
using dpool::api::RefusedCallers;
using dpool::api::TargetAccess;

namespace asio = boost::asio;

namespace {

bool matches(std::string_view pattern, std::string_view node)
{
    const auto p = NodePattern::parse(pattern);
    REQUIRE(p);
    return p->matches(node);
}

bool in_range(std::string_view range, std::string_view address)
{
    const auto r = AddressRange::parse(range);
    REQUIRE(r);
    return r->contains(asio::ip::make_address(address));
}

} // namespace

TEST_CASE("glob_match: '*' is any run of characters, everything else itself", "[access]")
{
    CHECK(glob_match("", "", false));
    CHECK(glob_match("*", "", false));
    CHECK(glob_match("*", "anything", false));
    CHECK(glob_match("app_*", "app_", false));
    CHECK(glob_match("app_*", "app_1", false));
    CHECK_FALSE(glob_match("app_*", "ap", false));
    CHECK_FALSE(glob_match("app_*", "xapp_1", false));
    CHECK(glob_match("*_worker", "a_b_worker", false));
    CHECK_FALSE(glob_match("*_worker", "a_worker_", false));
    CHECK(glob_match("a*b*c", "aXbYbZc", false));
    CHECK(glob_match("a*b*c", "abc", false));
    CHECK_FALSE(glob_match("a*b*c", "acb", false));
    CHECK(glob_match("**a**", "xa", false));
    CHECK_FALSE(glob_match("abc", "abcd", false));
    CHECK_FALSE(glob_match("abcd", "abc", false));
    CHECK_FALSE(glob_match("Host", "host", false));
    CHECK(glob_match("Host", "host", true));
    // '.', '?', '[' are themselves: no regular expression, no other wildcard.
    CHECK_FALSE(glob_match("10.0.0.1", "10x0x0x1", false));
    CHECK_FALSE(glob_match("a?", "ab", false));
    // The worst case of a backtracking matcher is linear here: many stars against a long text that fails late.
    const std::string stars(200, '*');
    CHECK_FALSE(glob_match(stars + "b", std::string(5000, 'a'), false));
}

TEST_CASE("NodePattern: alive@host globs, a host alone, case only in the host", "[access]")
{
    CHECK(matches("app_*@10.0.0.*", "app_1@10.0.0.7"));
    CHECK_FALSE(matches("app_*@10.0.0.*", "app_1@10.0.1.7"));
    CHECK_FALSE(matches("app_*@10.0.0.*", "web_1@10.0.0.7"));
    CHECK(matches("*@host", "anyone@host"));
    CHECK(matches("*@host", "anyone@HOST"));
    CHECK_FALSE(matches("*@host", "anyone@host.example"));
    CHECK(matches("Caller@h", "Caller@h"));
    CHECK_FALSE(matches("Caller@h", "caller@h")); // the alive part keeps its case, as OTP compares node names
    CHECK(matches("db.example.com", "orders@db.example.com"));
    CHECK(matches("*.example.com", "x@db.example.com"));
    CHECK_FALSE(matches("db.example.com", "orders@db.example.org"));
    CHECK(matches("caller@127.0.0.1", "caller@127.0.0.1"));
    // What is no node name matches nothing.
    CHECK_FALSE(matches("*", "no_at_sign"));
    CHECK_FALSE(matches("*@*", ""));
    // Refused patterns.
    for (const std::string& bad : std::vector<std::string>{"", "a@b@c", "@host", "alive@", "a b@h", "a@h/x", "a?@h",
                                                           "a[1]@h", "a@h\n", std::string(512, 'a')}) {
        CAPTURE(bad);
        CHECK_FALSE(NodePattern::parse(bad));
    }
    CHECK(NodePattern::parse(std::string(255, 'a') + "@" + std::string(255, 'h')));
}

TEST_CASE("AddressRange: IPv4 addresses and CIDR ranges", "[access]")
{
    CHECK(in_range("127.0.0.1", "127.0.0.1"));
    CHECK_FALSE(in_range("127.0.0.1", "127.0.0.2"));
    CHECK(in_range("127.0.0.0/8", "127.255.1.2"));
    CHECK_FALSE(in_range("127.0.0.0/8", "128.0.0.1"));
    CHECK(in_range("10.0.0.0/30", "10.0.0.3"));
    CHECK_FALSE(in_range("10.0.0.0/30", "10.0.0.4"));
    CHECK(in_range("0.0.0.0/0", "203.0.113.9"));
    CHECK(in_range("192.168.1.7/32", "192.168.1.7"));
    // IPv4-mapped IPv6 (a dual-stack listener) is its IPv4 address; other IPv6 addresses are in no range.
    CHECK(in_range("127.0.0.0/8", "::ffff:127.0.0.2"));
    CHECK_FALSE(in_range("0.0.0.0/0", "::1"));
    for (const std::string bad : {"", "127.0.0", "127.0.0.1.2", "256.0.0.1", "1.2.3.4/33", "1.2.3.4/", "1.2.3.4/x",
                                  "10.0.0.1/8", "a.b.c.d", "1..2.3", "-1.0.0.0", "1.2.3.4 ", "::1", "1.2.3.4/-1"}) {
        CAPTURE(bad);
        CHECK_FALSE(AddressRange::parse(bad));
    }
}

TEST_CASE("CallerAccess: each list given must be satisfied, and none given lets every caller in", "[access]")
{
    const auto local = asio::ip::make_address("127.0.0.1");
    const auto other = asio::ip::make_address("127.0.0.2");
    CallerAccess open;
    CHECK_FALSE(open.restricted());
    CHECK_FALSE(open.refusal("anyone@anywhere", local));

    CallerAccess names;
    names.nodes.push_back(*NodePattern::parse("app_*@127.0.0.1"));
    names.nodes.push_back(*NodePattern::parse("ops@127.0.0.1"));
    CHECK(names.restricted());
    CHECK_FALSE(names.refusal("app_7@127.0.0.1", other));
    CHECK_FALSE(names.refusal("ops@127.0.0.1", local));
    const auto refused = names.refusal("web@127.0.0.1", local);
    REQUIRE(refused);
    CHECK(refused->find("--allow-caller") != std::string::npos);

    CallerAccess both = names;
    both.addresses.push_back(*AddressRange::parse("127.0.0.1"));
    CHECK_FALSE(both.refusal("app_1@127.0.0.1", local));
    const auto from_elsewhere = both.refusal("app_1@127.0.0.1", other);
    REQUIRE(from_elsewhere);
    CHECK(from_elsewhere->find("127.0.0.2") != std::string::npos);
    CHECK(both.refusal("web@127.0.0.1", local));

    CallerAccess addresses;
    addresses.addresses.push_back(*AddressRange::parse("127.0.0.0/30"));
    CHECK_FALSE(addresses.refusal("anyone@h", other));
    CHECK(addresses.refusal("anyone@h", asio::ip::make_address("127.0.0.9")));
}

TEST_CASE("TargetAccess: no pattern allows every target", "[access]")
{
    TargetAccess any;
    CHECK(any.allows("x@y"));
    TargetAccess some;
    some.nodes.push_back(*NodePattern::parse("db_*@10.0.0.*"));
    some.nodes.push_back(*NodePattern::parse("cache.internal"));
    CHECK(some.allows("db_1@10.0.0.5"));
    CHECK(some.allows("redis@cache.internal"));
    CHECK_FALSE(some.allows("db_1@10.0.1.5"));
    CHECK_FALSE(some.allows("evil@example.com"));
}

TEST_CASE("RefusedCallers: each name logged once, a bounded table, the rest counted", "[access]")
{
    RefusedCallers refused(2);
    CHECK(refused.record("a@h") == RefusedCallers::Log::first);
    CHECK(refused.record("a@h") == RefusedCallers::Log::again);
    CHECK(refused.record("b@h") == RefusedCallers::Log::first);
    CHECK(refused.record("c@h") == RefusedCallers::Log::table_full);
    CHECK(refused.record("d@h") == RefusedCallers::Log::table_full);
    CHECK(refused.record("b@h") == RefusedCallers::Log::again);
    CHECK(refused.count() == 6);
    CHECK(refused.unlogged() == 2);
    CHECK(refused.names() == 2);
}
