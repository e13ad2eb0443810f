#include "test_support.hpp"

#include <cstdint>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <utility>
#include <variant>
#include <vector>

#include "api/requests.hpp"

using namespace dpool::api;
using dpool::test::EiTerm;

namespace {

using Build = std::function<void(EiTerm&)>;

std::string term(const Build& build)
{
    EiTerm t;
    build(t);
    return t.str();
}

std::string message(const Build& build)
{
    EiTerm t;
    t.version();
    build(t);
    return t.str();
}

// The error atom of a rejection, or a description of what was decoded instead.
std::string rejection(const Decoded& d)
{
    if (const auto* r = std::get_if<Rejected>(&d)) {
        return std::string(r->error);
    }
    return "<accepted as alternative " + std::to_string(d.index()) + ">";
}

template <class T> T accepted(const Decoded& d)
{
    INFO("decoded as: " << rejection(d));
    REQUIRE(std::holds_alternative<T>(d));
    return std::get<T>(d);
}

std::string rejection_of(const Build& build) { return rejection(decode_request(term(build))); }

// A ConfigError as the caller reads it (the Why of {error, {invalid_config, Why}}), printed.
std::string printed_config_error(const ConfigError& e)
{
    dpool::ByteBuffer buf;
    dpool::protocol::TermWriter w(buf);
    write_config_error(w, e);
    return dpool::test::print_term(buf.view());
}

// The Why of a `new` request's rejection, printed; the request's bytes are kept while it is printed.
std::string why_of(const Build& build)
{
    const std::string request = term(build);
    const auto d = decode_request(request);
    const auto* r = std::get_if<Rejected>(&d);
    REQUIRE(r != nullptr);
    REQUIRE(r->config.has_value());
    return printed_config_error(*r->config);
}

const std::string kTarget = "target@127.0.0.1";

std::string options_map(const std::vector<std::pair<std::string, long long>>& entries)
{
    EiTerm t;
    t.map(static_cast<long>(entries.size()));
    for (const auto& [key, value] : entries) {
        t.atom(key).integer(value);
    }
    return t.str();
}

Parsed<dpool::pool::PoolConfig, ConfigError> options(const std::vector<std::pair<std::string, long long>>& entries,
                                                     const std::string& target = kTarget)
{
    return parse_pool_options(target, options_map(entries));
}

} // namespace

// --- envelopes ---------------------------------------------------------------------------------------------------

TEST_CASE("parse_envelope reads a $gen_call", "[requests]")
{
    const std::string tag = term([](EiTerm& t) { t.list(1).atom("alias").ref("caller@host", 5, {1, 2, 3}); });
    const std::string request = term([](EiTerm& t) { t.tuple(2).atom("stats").integer(3); });
    const std::string bytes = message(
        [&](EiTerm& t) { t.tuple(3).atom("$gen_call").tuple(2).pid("caller@host", 10, 2, 5).raw(tag).raw(request); });

    const auto env = parse_envelope(bytes);
    REQUIRE(env.has_value());
    CHECK(env->is_call);
    CHECK(env->from.node == "caller@host");
    CHECK(env->from.id == 10);
    CHECK(env->from.serial == 2);
    CHECK(env->from.creation == 5);
    CHECK(env->tag == tag);
    CHECK(env->request == request);
}

TEST_CASE("parse_envelope reads a $gen_cast", "[requests]")
{
    const std::string request = term([](EiTerm& t) { t.tuple(4).atom("checkin").integer(1).integer(2).integer(3); });
    const std::string bytes = message([&](EiTerm& t) { t.tuple(2).atom("$gen_cast").raw(request); });
    const auto env = parse_envelope(bytes);
    REQUIRE(env.has_value());
    CHECK_FALSE(env->is_call);
    CHECK(env->request == request);
    CHECK(env->tag.empty());
}

TEST_CASE("parse_envelope drops every other shape", "[requests]")
{
    const Build from = [](EiTerm& t) { t.tuple(2).pid("caller@host", 1, 0, 1).atom("tag"); };
    const std::string valid_call = message([&](EiTerm& t) {
        t.tuple(3).atom("$gen_call");
        from(t);
        t.atom("pools");
    });
    REQUIRE(parse_envelope(valid_call).has_value());

    const std::vector<std::string> junk = {
        "",
        valid_call.substr(1), // no version byte
        valid_call.substr(0, valid_call.size() - 1), // cut short
        valid_call + "\x6a", // trailing byte
        message([](EiTerm& t) { t.atom("pools"); }), // a bare request
        message([](EiTerm& t) { t.tuple(2).atom("other").atom("pools"); }),
        message([](EiTerm& t) { t.tuple(3).atom("$gen_call").atom("from").atom("pools"); }),
        message([](EiTerm& t) { t.tuple(3).atom("$gen_call").tuple(2).atom("notpid").atom("tag").atom("pools"); }),
        message([](EiTerm& t) { t.tuple(3).atom("$gen_call").tuple(1).pid("c@h", 1, 0, 1).atom("pools"); }),
        message([&](EiTerm& t) {
            t.tuple(4).atom("$gen_call");
            from(t);
            t.atom("pools").atom("extra");
        }),
        message([](EiTerm& t) { t.tuple(2).atom("$gen_call").atom("pools"); }),
        message([](EiTerm& t) { t.tuple(3).atom("$gen_cast").atom("pools").atom("extra"); }),
        message([](EiTerm& t) { t.tuple(1).atom("$gen_cast"); }),
        message([](EiTerm& t) { t.tuple(2).binary("$gen_cast").atom("pools"); }),
    };
    for (const auto& bytes : junk) {
        CAPTURE(bytes);
        CHECK_FALSE(parse_envelope(bytes).has_value());
    }
}

// --- requests ----------------------------------------------------------------------------------------------------

TEST_CASE("decode_request: pools, info, lanes and ping", "[requests]")
{
    accepted<ListPools>(decode_request(term([](EiTerm& t) { t.atom("pools"); })));
    accepted<Info>(decode_request(term([](EiTerm& t) { t.atom("info"); })));
    accepted<ListLanes>(decode_request(term([](EiTerm& t) { t.atom("lanes"); })));
    accepted<Ping>(decode_request(term([](EiTerm& t) { t.atom("ping"); })));
    CHECK(rejection_of([](EiTerm& t) { t.tuple(1).atom("lanes"); }) == "badarg");
    CHECK(rejection_of([](EiTerm& t) { t.tuple(1).atom("ping"); }) == "badarg");
    CHECK(rejection_of([](EiTerm& t) { t.tuple(2).atom("ping").integer(1); }) == "badarg");
    CHECK(rejection_of([](EiTerm& t) { t.atom("hello"); }) == "badarg");
}

TEST_CASE("decode_request: new", "[requests]")
{
    const std::string opts = options_map({{"max_connections", 4}});
    SECTION("target as an atom")
    {
        const auto n = accepted<NewPool>(
            decode_request(term([&](EiTerm& t) { t.tuple(3).atom("new").atom(kTarget).raw(opts); })));
        CHECK(n.config.target == kTarget);
        CHECK(n.config.max_connections == 4);
        CHECK(n.config.min_connections == 4);
    }
    SECTION("target as a binary")
    {
        const auto n = accepted<NewPool>(
            decode_request(term([&](EiTerm& t) { t.tuple(3).atom("new").binary(kTarget).raw(opts); })));
        CHECK(n.config.target == kTarget);
    }
    SECTION("wrong shapes are invalid_config, with why")
    {
        CHECK(rejection_of([&](EiTerm& t) { t.tuple(3).atom("new").integer(42).raw(opts); }) == "invalid_config");
        CHECK(why_of([&](EiTerm& t) { t.tuple(3).atom("new").integer(42).raw(opts); }) == "{bad_target,42}");
        CHECK(why_of([&](EiTerm& t) { t.tuple(3).atom("new").atom("no_host").raw(opts); })
              == "{bad_target,no_host}");
        CHECK(rejection_of([&](EiTerm& t) { t.tuple(3).atom("new").atom(kTarget).atom("not_a_map"); })
              == "invalid_config");
        CHECK(why_of([&](EiTerm& t) { t.tuple(3).atom("new").atom(kTarget).atom("not_a_map"); })
              == "{bad_options,not_a_map}");
        // Arities the library never sends.
        CHECK(rejection_of([&](EiTerm& t) { t.tuple(2).atom("new").atom(kTarget); }) == "badarg");
        CHECK(rejection_of([&](EiTerm& t) { t.tuple(4).atom("new").atom(kTarget).raw(opts).atom("x"); })
              == "badarg");
        CHECK(rejection_of([&](EiTerm& t) { t.tuple(3).atom("new").atom("no_host").raw(opts); }) == "invalid_config");
        CHECK(rejection_of([&](EiTerm& t) {
                  t.tuple(3).atom("new").atom(kTarget).raw(options_map({{"max_connections", 0}}));
              })
              == "invalid_config");
    }
}

TEST_CASE("decode_request: checkout", "[requests]")
{
    const auto with_default = accepted<Checkout>(
        decode_request(term([](EiTerm& t) { t.tuple(3).atom("checkout").integer(7).atom("default"); })));
    CHECK(with_default.pool == 7);
    CHECK_FALSE(with_default.timeout_ms.has_value());

    const auto with_ms = accepted<Checkout>(
        decode_request(term([](EiTerm& t) { t.tuple(3).atom("checkout").integer(7).integer(250); })));
    CHECK(with_ms.timeout_ms == 250u);

    const auto longest = accepted<Checkout>(
        decode_request(term([](EiTerm& t) { t.tuple(3).atom("checkout").integer(0).integer(0xFFFFFFFFLL); })));
    CHECK(longest.timeout_ms == 0xFFFFFFFFu);

    CHECK(rejection_of([](EiTerm& t) { t.tuple(3).atom("checkout").integer(7).atom("never"); }) == "badarg");
    CHECK(rejection_of([](EiTerm& t) { t.tuple(3).atom("checkout").integer(7).integer(-5); }) == "badarg");
    CHECK(rejection_of([](EiTerm& t) { t.tuple(3).atom("checkout").integer(7).integer(1LL << 32); }) == "badarg");
    CHECK(rejection_of([](EiTerm& t) { t.tuple(3).atom("checkout").integer(7).floating(1.0); }) == "badarg");
    CHECK(rejection_of([](EiTerm& t) { t.tuple(2).atom("checkout").integer(7); }) == "badarg");
    CHECK(rejection_of([](EiTerm& t) { t.tuple(3).atom("checkout").integer(-1).atom("default"); }) == "invalid_pool");
    CHECK(rejection_of([](EiTerm& t) { t.tuple(3).atom("checkout").atom("bar").atom("default"); }) == "invalid_pool");
}

TEST_CASE("decode_request: checkin", "[requests]")
{
    const auto c = accepted<Checkin>(
        decode_request(term([](EiTerm& t) { t.tuple(4).atom("checkin").integer(1).integer(2).integer(1LL << 40); })));
    CHECK(c.lease.pool == 1);
    CHECK(c.lease.conn == 2);
    CHECK(c.lease.lease == 1ull << 40);
    CHECK_FALSE(c.discard);

    CHECK(rejection_of([](EiTerm& t) { t.tuple(4).atom("checkin").integer(1).integer(-1).integer(3); })
          == "invalid_connection");
    CHECK(rejection_of([](EiTerm& t) { t.tuple(4).atom("checkin").integer(1).integer(1LL << 32).integer(3); })
          == "invalid_connection");
    CHECK(rejection_of([](EiTerm& t) { t.tuple(4).atom("checkin").integer(1).integer(2).atom("lease"); })
          == "invalid_connection");
    CHECK(rejection_of([](EiTerm& t) { t.tuple(4).atom("checkin").integer(1).integer(2).integer(-3); })
          == "invalid_connection");
    CHECK(rejection_of([](EiTerm& t) { t.tuple(4).atom("checkin").atom("p").integer(2).integer(3); })
          == "invalid_pool");
}

TEST_CASE("decode_request: discard is a checkin of a broken connection", "[requests]")
{
    const auto c = accepted<Checkin>(
        decode_request(term([](EiTerm& t) { t.tuple(4).atom("discard").integer(1).integer(2).integer(3); })));
    CHECK(c.lease.pool == 1);
    CHECK(c.lease.conn == 2);
    CHECK(c.lease.lease == 3);
    CHECK(c.discard);
    CHECK(rejection_of([](EiTerm& t) { t.tuple(4).atom("discard").integer(1).integer(2).atom("x"); })
          == "invalid_connection");
    CHECK(rejection_of([](EiTerm& t) { t.tuple(3).atom("discard").integer(1).integer(2); }) == "badarg");
}

TEST_CASE("decode_request: cancel", "[requests]")
{
    const std::string pid = term([](EiTerm& t) { t.pid("caller@host", 3, 0, 1); });
    const std::string tag = term([](EiTerm& t) { t.tuple(2).atom("alias").ref("caller@host", 1, {1, 2, 3}); });
    const std::string request = term([&](EiTerm& t) { t.tuple(4).atom("cancel").integer(9).raw(pid).raw(tag); });
    const auto c = accepted<Cancel>(decode_request(request));
    CHECK(c.pool == 9);
    CHECK(c.pid == pid);
    CHECK(c.tag == tag);

    CHECK(rejection_of([&](EiTerm& t) { t.tuple(4).atom("cancel").integer(9).atom("nopid").raw(tag); }) == "badarg");
}

TEST_CASE("decode_request: send", "[requests]")
{
    const std::string dest = term([](EiTerm& t) { t.tuple(2).atom("name").atom(kTarget); });
    const std::string msg = term([](EiTerm& t) { t.list(2).integer(1).integer(2).nil(); });
    const std::string request
        = term([&](EiTerm& t) { t.tuple(6).atom("send").integer(1).integer(2).integer(3).raw(dest).raw(msg); });
    const auto s = accepted<Send>(decode_request(request));
    CHECK(s.lease.pool == 1);
    CHECK(s.lease.conn == 2);
    CHECK(s.lease.lease == 3);
    CHECK(s.destination == dest);
    CHECK(s.message == msg);

    CHECK(s.lease.checkout_tag.empty());

    // A pipelined lease: the atom checkout and the checkout's tag in place of the ids.
    const std::string tag = term([](EiTerm& t) { t.list(1).atom("alias").atom("not_a_ref_but_any_term"); });
    const std::string by_tag = term(
        [&](EiTerm& t) { t.tuple(6).atom("send").integer(1).atom("checkout").raw(tag).raw(dest).raw(msg); });
    const auto p = accepted<Send>(decode_request(by_tag));
    CHECK(p.lease.pool == 1);
    CHECK(p.lease.checkout_tag == tag);
    CHECK(p.destination == dest);
    CHECK(p.message == msg);
    const std::string lease_of = term([&](EiTerm& t) { t.tuple(3).atom("lease_of").integer(4).raw(tag); });
    const auto of = accepted<LeaseOf>(decode_request(lease_of));
    CHECK(of.pool == 4);
    CHECK(of.tag == tag);

    CHECK(rejection_of([&](EiTerm& t) { t.tuple(6).atom("send").integer(1).atom("c").integer(3).raw(dest).raw(msg); })
          == "invalid_connection");
    CHECK(rejection_of([&](EiTerm& t) { t.tuple(5).atom("send").integer(1).integer(2).integer(3).raw(dest); })
          == "badarg");
}

TEST_CASE("decode_request: send_many", "[requests]")
{
    const std::string name = term([](EiTerm& t) { t.atom("sink"); });
    const std::string at_node = term([](EiTerm& t) { t.tuple(2).atom("name").atom(kTarget); });
    const std::string m1 = term([](EiTerm& t) { t.binary("one"); });
    const std::string m2 = term([](EiTerm& t) { t.tuple(2).atom("m").integer(2); });
    // The request's bytes outlive the views into them that decode_request gives.
    const std::string request = term([&](EiTerm& t) {
        t.tuple(5).atom("send_many").integer(1).integer(2).integer(3).list(2);
        t.tuple(2).raw(name).raw(m1);
        t.tuple(2).raw(at_node).raw(m2);
        t.nil();
    });
    const auto many = accepted<SendMany>(decode_request(request));
    CHECK(many.lease.pool == 1);
    CHECK(many.lease.conn == 2);
    CHECK(many.lease.lease == 3);
    REQUIRE(many.messages.size() == 2);
    CHECK(many.messages[0] == std::pair<std::string_view, std::string_view>(name, m1));
    CHECK(many.messages[1] == std::pair<std::string_view, std::string_view>(at_node, m2));
    const auto none = accepted<SendMany>(
        decode_request(term([&](EiTerm& t) { t.tuple(5).atom("send_many").integer(1).integer(2).integer(3).nil(); })));
    CHECK(none.messages.empty());

    // Lease ids that cannot be ones; elements that are no {Dest, Msg}; improper, forged and non-lists.
    CHECK(rejection_of([&](EiTerm& t) { t.tuple(5).atom("send_many").integer(1).atom("c").integer(3).nil(); })
          == "invalid_connection");
    CHECK(rejection_of([&](EiTerm& t) {
              t.tuple(5).atom("send_many").integer(1).integer(2).integer(3).list(1).raw(m1).nil();
          }) == "badarg");
    CHECK(rejection_of([&](EiTerm& t) {
              t.tuple(5).atom("send_many").integer(1).integer(2).integer(3).list(1).tuple(3).raw(name).raw(m1).raw(m1);
              t.nil();
          }) == "badarg");
    CHECK(rejection_of([&](EiTerm& t) {
              t.tuple(5).atom("send_many").integer(1).integer(2).integer(3).list(1).tuple(2).raw(name).raw(m1);
              t.raw(m1);
          }) == "badarg");
    CHECK(rejection_of([&](EiTerm& t) {
              t.tuple(5).atom("send_many").integer(1).integer(2).integer(3).list(9).tuple(2).raw(name).raw(m1);
              t.nil();
          }) == "badarg");
    CHECK(rejection_of([&](EiTerm& t) { t.tuple(5).atom("send_many").integer(1).integer(2).integer(3).raw(m1); })
          == "badarg");
}

TEST_CASE("decode_request: request", "[requests]")
{
    const std::string dest = term([](EiTerm& t) { t.atom("rex"); });
    const std::string req = term([](EiTerm& t) { t.tuple(2).atom("is_auth").atom("me@host"); });
    const auto make = [&](const Build& timeout) {
        return term([&](EiTerm& t) {
            t.tuple(7).atom("request").integer(1).integer(2).integer(3).raw(dest);
            timeout(t);
            t.raw(req);
        });
    };

    const std::string request = make([](EiTerm& t) { t.integer(1000); });
    const auto with_ms = accepted<Request>(decode_request(request));
    CHECK(with_ms.lease.pool == 1);
    CHECK(with_ms.lease.conn == 2);
    CHECK(with_ms.lease.lease == 3);
    CHECK(with_ms.destination == dest);
    CHECK(with_ms.timeout_ms == 1000u);
    CHECK(with_ms.request == req);

    const auto infinite = accepted<Request>(decode_request(make([](EiTerm& t) { t.atom("infinity"); })));
    CHECK_FALSE(infinite.timeout_ms.has_value());

    CHECK(rejection(decode_request(make([](EiTerm& t) { t.integer(-1); }))) == "badarg");
    CHECK(rejection(decode_request(make([](EiTerm& t) { t.integer(1LL << 40); }))) == "badarg");
    CHECK(rejection(decode_request(make([](EiTerm& t) { t.atom("x"); }))) == "badarg");
    CHECK(rejection(decode_request(make([](EiTerm& t) { t.atom("default"); }))) == "badarg");
    CHECK(rejection_of([&](EiTerm& t) {
              t.tuple(7).atom("request").integer(1).integer(2).integer(-3).raw(dest).integer(5).raw(req);
          })
          == "invalid_connection");
}

TEST_CASE("decode_request: pooled_send", "[requests][oneshot]")
{
    const std::string dest = term([](EiTerm& t) { t.atom("sink"); });
    const std::string msg = term([](EiTerm& t) { t.tuple(2).atom("hello").integer(1); });
    // Decoded views point into the request: it is kept while they are looked at.
    const std::string plain_request
        = term([&](EiTerm& t) { t.tuple(4).atom("pooled_send").integer(7).raw(dest).raw(msg); });
    const auto plain = accepted<PooledSend>(decode_request(plain_request));
    CHECK(plain.pool == 7);
    CHECK(plain.destination == dest);
    CHECK(plain.message == msg);
    CHECK_FALSE(plain.acquire_timeout_ms.has_value());

    const auto waiting = accepted<PooledSend>(decode_request(
        term([&](EiTerm& t) { t.tuple(5).atom("pooled_send").integer(7).raw(dest).raw(msg).integer(0); })));
    CHECK(waiting.acquire_timeout_ms == 0u);
    const auto by_default = accepted<PooledSend>(decode_request(
        term([&](EiTerm& t) { t.tuple(5).atom("pooled_send").integer(7).raw(dest).raw(msg).atom("default"); })));
    CHECK_FALSE(by_default.acquire_timeout_ms.has_value());

    CHECK(rejection_of([&](EiTerm& t) { t.tuple(4).atom("pooled_send").integer(-7).raw(dest).raw(msg); })
          == "invalid_pool");
    CHECK(rejection_of([&](EiTerm& t) { t.tuple(5).atom("pooled_send").integer(7).raw(dest).raw(msg).integer(-1); })
          == "badarg");
    CHECK(rejection_of([&](EiTerm& t) { t.tuple(5).atom("pooled_send").integer(7).raw(dest).raw(msg).atom("never"); })
          == "badarg");
    CHECK(rejection_of([&](EiTerm& t) { t.tuple(3).atom("pooled_send").integer(7).raw(dest); }) == "badarg");
    CHECK(rejection_of([&](EiTerm& t) {
              t.tuple(6).atom("pooled_send").integer(7).raw(dest).raw(msg).integer(1).integer(2);
          })
          == "badarg");
}

TEST_CASE("decode_request: pooled_request", "[requests][oneshot]")
{
    const std::string dest = term([](EiTerm& t) { t.atom("rex"); });
    const std::string req = term([](EiTerm& t) { t.tuple(5).atom("call").atom("erlang").atom("node").nil().atom("user"); });
    // Decoded views point into the request: it is kept while they are looked at.
    const std::string plain_request
        = term([&](EiTerm& t) { t.tuple(5).atom("pooled_request").integer(3).raw(dest).integer(250).raw(req); });
    const auto plain = accepted<PooledRequest>(decode_request(plain_request));
    CHECK(plain.pool == 3);
    CHECK(plain.destination == dest);
    CHECK(plain.timeout_ms == 250u);
    CHECK(plain.request == req);
    CHECK_FALSE(plain.acquire_timeout_ms.has_value());

    const auto full = accepted<PooledRequest>(decode_request(term([&](EiTerm& t) {
        t.tuple(6).atom("pooled_request").integer(3).raw(dest).atom("infinity").raw(req).integer(42);
    })));
    CHECK_FALSE(full.timeout_ms.has_value());
    CHECK(full.acquire_timeout_ms == 42u);
    const auto by_default = accepted<PooledRequest>(decode_request(term([&](EiTerm& t) {
        t.tuple(6).atom("pooled_request").integer(3).raw(dest).integer(1).raw(req).atom("default");
    })));
    CHECK_FALSE(by_default.acquire_timeout_ms.has_value());

    // The request timeout takes infinity, not default; the acquire timeout default, not infinity.
    CHECK(rejection_of([&](EiTerm& t) { t.tuple(5).atom("pooled_request").integer(3).raw(dest).atom("default").raw(req); })
          == "badarg");
    CHECK(rejection_of([&](EiTerm& t) {
              t.tuple(6).atom("pooled_request").integer(3).raw(dest).integer(1).raw(req).atom("infinity");
          })
          == "badarg");
    CHECK(rejection_of([&](EiTerm& t) { t.tuple(5).atom("pooled_request").integer(3).raw(dest).integer(-1).raw(req); })
          == "badarg");
    CHECK(rejection_of([&](EiTerm& t) { t.tuple(5).atom("pooled_request").atom("p").raw(dest).integer(1).raw(req); })
          == "invalid_pool");
    CHECK(rejection_of([&](EiTerm& t) { t.tuple(4).atom("pooled_request").integer(3).raw(dest).integer(1); }) == "badarg");
}

TEST_CASE("decode_request: call and pooled_call take M, F and a proper list A, as one view", "[requests][call]")
{
    const std::vector<Build> good_args = {
        [](EiTerm& t) { t.nil(); },
        [](EiTerm& t) { t.list(2).integer(1).tuple(1).atom("x").nil(); },
        [](EiTerm& t) { t.string("abc"); }, // [97, 98, 99] as a STRING_EXT
        [](EiTerm& t) { t.list(1).binary("bytes").nil(); },
    };
    for (const auto& args : good_args) {
        const std::string mfa = term([&](EiTerm& t) {
            t.atom("lists");
            t.atom("reverse");
            args(t);
        });
        CAPTURE(mfa);
        // Decoded views point into the request: each request is kept while its result is looked at.
        const std::string call_request = term([&](EiTerm& t) {
            t.tuple(8).atom("call").integer(1).integer(2).integer(3).raw(mfa).integer(500);
        });
        const auto call = accepted<Call>(decode_request(call_request));
        CHECK(std::tie(call.lease.pool, call.lease.conn, call.lease.lease) == std::make_tuple(1u, 2u, 3u));
        CHECK(call.mfa == mfa);
        CHECK(call.timeout_ms == 500u);

        const std::string pooled_request =
            term([&](EiTerm& t) { t.tuple(6).atom("pooled_call").integer(9).raw(mfa).atom("infinity"); });
        const auto pooled = accepted<PooledCall>(decode_request(pooled_request));
        CHECK(pooled.pool == 9);
        CHECK(pooled.mfa == mfa);
        CHECK_FALSE(pooled.timeout_ms.has_value());
        CHECK_FALSE(pooled.acquire_timeout_ms.has_value());
        const std::string waiting_request =
            term([&](EiTerm& t) { t.tuple(7).atom("pooled_call").integer(9).raw(mfa).integer(10).integer(0); });
        const auto waiting = accepted<PooledCall>(decode_request(waiting_request));
        CHECK(waiting.mfa == mfa);
        CHECK(waiting.timeout_ms == 10u);
        CHECK(waiting.acquire_timeout_ms == 0u);
        const std::string default_request =
            term([&](EiTerm& t) { t.tuple(7).atom("pooled_call").integer(9).raw(mfa).integer(10).atom("default"); });
        const auto by_default = accepted<PooledCall>(decode_request(default_request));
        CHECK_FALSE(by_default.acquire_timeout_ms.has_value());
    }

    // Not atoms, not a proper list: badarg; a bad lease: invalid_connection; a bad pool: invalid_pool.
    // {call, Pool, Conn, Lease, M, F, A, ...} and {pooled_call, Pool, M, F, A, ...}, each part written by a builder.
    const auto call = [](const Build& ids, const Build& mfa, const Build& rest) {
        return rejection_of([&](EiTerm& t) {
            t.tuple(8).atom("call");
            ids(t);
            mfa(t);
            rest(t);
        });
    };
    const auto pooled_call = [](long arity, const Build& pool, const Build& mfa, const Build& rest) {
        return rejection_of([&](EiTerm& t) {
            t.tuple(arity).atom("pooled_call");
            pool(t);
            mfa(t);
            rest(t);
        });
    };
    const Build lease = [](EiTerm& t) { t.integer(1).integer(2).integer(3); };
    const Build pool = [](EiTerm& t) { t.integer(1); };
    const Build five = [](EiTerm& t) { t.integer(5); };
    const std::vector<Build> bad_mfas = {
        [](EiTerm& t) { t.binary("lists").atom("reverse").nil(); },
        [](EiTerm& t) { t.atom("lists").string("reverse").nil(); },
        [](EiTerm& t) { t.atom("lists").atom("reverse").atom("a"); },
        [](EiTerm& t) { t.atom("lists").atom("reverse").tuple(0); },
        [](EiTerm& t) { t.atom("lists").atom("reverse").list(1).integer(1).integer(2); }, // [1 | 2]
        [](EiTerm& t) { t.atom("lists").atom("reverse").list(2).integer(1).integer(2).atom("t"); },
    };
    for (const auto& mfa : bad_mfas) {
        CHECK(call(lease, mfa, five) == "badarg");
        CHECK(pooled_call(6, pool, mfa, five) == "badarg");
    }
    const Build mfa = [](EiTerm& t) { t.atom("erlang").atom("node").nil(); };
    CHECK(call([](EiTerm& t) { t.integer(1).integer(-2).integer(3); }, mfa, five) == "invalid_connection");
    CHECK(pooled_call(6, [](EiTerm& t) { t.atom("p"); }, mfa, five) == "invalid_pool");
    // The call timeout takes infinity, not default; the acquire timeout default, not infinity.
    CHECK(pooled_call(6, pool, mfa, [](EiTerm& t) { t.atom("default"); }) == "badarg");
    CHECK(pooled_call(7, pool, mfa, [](EiTerm& t) { t.integer(1).atom("infinity"); }) == "badarg");
    CHECK(call(lease, mfa, [](EiTerm& t) { t.integer(-1); }) == "badarg");
    CHECK(pooled_call(5, pool, mfa, [](EiTerm&) {}) == "badarg");
}

TEST_CASE("decode_request: cast_batch", "[requests][oneshot]")
{
    const std::string dest = term([](EiTerm& t) { t.atom("sink"); });
    const std::string m1 = term([](EiTerm& t) { t.tuple(2).atom("m").integer(1); });
    const std::string m2 = term([](EiTerm& t) { t.binary("two"); });
    const std::string m3 = term([](EiTerm& t) { t.integer(100000); });

    // Decoded views point into the request: it is kept while they are looked at.
    const std::string request = term(
        [&](EiTerm& t) { t.tuple(4).atom("cast_batch").integer(9).raw(dest).list(3).raw(m1).raw(m2).raw(m3).nil(); });
    const auto batch = accepted<CastBatch>(decode_request(request));
    CHECK(batch.pool == 9);
    CHECK(batch.destination == dest);
    CHECK_FALSE(batch.keyed);
    REQUIRE(batch.messages.size() == 3);
    CHECK(batch.messages[0].term == m1);
    CHECK(batch.messages[1].term == m2);
    CHECK(batch.messages[2].term == m3);

    const auto empty =
        accepted<CastBatch>(decode_request(term([&](EiTerm& t) { t.tuple(4).atom("cast_batch").integer(9).raw(dest).nil(); })));
    CHECK(empty.messages.empty());

    // [1, 2, 255] travels as a STRING_EXT: each element becomes a term of its own.
    const auto bytes = accepted<CastBatch>(decode_request(
        term([&](EiTerm& t) { t.tuple(4).atom("cast_batch").integer(9).raw(dest).string(std::string("\x01\x02\xff", 3)); })));
    REQUIRE(bytes.messages.size() == 3);
    CHECK(bytes.messages[0].term == term([](EiTerm& t) { t.integer(1); }));
    CHECK(bytes.messages[1].term == term([](EiTerm& t) { t.integer(2); }));
    CHECK(bytes.messages[2].term == term([](EiTerm& t) { t.integer(255); }));

    // Improper lists, a forged length and a non-list are badarg.
    CHECK(rejection_of([&](EiTerm& t) { t.tuple(4).atom("cast_batch").integer(9).raw(dest).list(1).raw(m1).raw(m2); })
          == "badarg");
    CHECK(rejection_of([&](EiTerm& t) { t.tuple(4).atom("cast_batch").integer(9).raw(dest).list(5).raw(m1).nil(); })
          == "badarg");
    CHECK(rejection_of([&](EiTerm& t) { t.tuple(4).atom("cast_batch").integer(9).raw(dest).raw(m1); }) == "badarg");
    CHECK(rejection_of([&](EiTerm& t) { t.tuple(4).atom("cast_batch").integer(-9).raw(dest).nil(); }) == "invalid_pool");
    CHECK(rejection_of([&](EiTerm& t) { t.tuple(3).atom("cast_batch").integer(9).raw(dest); }) == "badarg");
}

TEST_CASE("decode_request: cast_batch_keyed", "[requests][oneshot]")
{
    const std::string dest = term([](EiTerm& t) { t.tuple(2).atom("sink").atom(kTarget); });
    const std::string m1 = term([](EiTerm& t) { t.atom("a"); });
    const std::string m2 = term([](EiTerm& t) { t.list(1).integer(7).nil(); });
    // Decoded views point into the request: it is kept while they are looked at.
    const std::string request = term([&](EiTerm& t) {
        t.tuple(4).atom("cast_batch_keyed").integer(2).raw(dest).list(2);
        t.tuple(2).integer(0).raw(m1);
        t.tuple(2).integer(0xFFFFFFFFLL).raw(m2);
        t.nil();
    });
    const auto batch = accepted<CastBatch>(decode_request(request));
    CHECK(batch.keyed);
    REQUIRE(batch.messages.size() == 2);
    CHECK(batch.messages[0].hash == 0u);
    CHECK(batch.messages[0].term == m1);
    CHECK(batch.messages[1].hash == 0xFFFFFFFFu);
    CHECK(batch.messages[1].term == m2);

    const auto bad_element = [&](const Build& element) {
        return rejection_of([&](EiTerm& t) {
            t.tuple(4).atom("cast_batch_keyed").integer(2).raw(dest).list(1);
            element(t);
            t.nil();
        });
    };
    CHECK(bad_element([&](EiTerm& t) { t.raw(m1); }) == "badarg");                              // no pair
    CHECK(bad_element([&](EiTerm& t) { t.tuple(2).integer(-1).raw(m1); }) == "badarg");         // negative hash
    CHECK(bad_element([&](EiTerm& t) { t.tuple(2).integer(1LL << 32).raw(m1); }) == "badarg");  // hash too big
    CHECK(bad_element([&](EiTerm& t) { t.tuple(2).atom("k").raw(m1); }) == "badarg");           // not a hash
    CHECK(bad_element([&](EiTerm& t) { t.tuple(3).integer(1).raw(m1).raw(m1); }) == "badarg");  // a triple
    // Small integers cannot be {Hash, Msg} pairs.
    CHECK(rejection_of([&](EiTerm& t) { t.tuple(4).atom("cast_batch_keyed").integer(2).raw(dest).string("ab"); })
          == "badarg");
}

TEST_CASE("decode_request: stats and destroy", "[requests]")
{
    CHECK(accepted<Stats>(decode_request(term([](EiTerm& t) { t.tuple(2).atom("stats").integer(5); }))).pool == 5);
    CHECK(accepted<Destroy>(decode_request(term([](EiTerm& t) { t.tuple(2).atom("destroy").integer(6); }))).pool == 6);
    const auto largest
        = accepted<Stats>(decode_request(term([](EiTerm& t) { t.tuple(2).atom("stats").integer(INT64_MAX); })));
    CHECK(largest.pool == static_cast<std::uint64_t>(INT64_MAX));

    CHECK(rejection_of([](EiTerm& t) { t.tuple(2).atom("stats").integer(-1); }) == "invalid_pool");
    CHECK(rejection_of([](EiTerm& t) { t.tuple(2).atom("stats").atom("foo"); }) == "invalid_pool");
    CHECK(rejection_of([](EiTerm& t) { t.tuple(2).atom("stats").unsigned_integer(1ULL << 63); }) == "invalid_pool");
    CHECK(rejection_of([](EiTerm& t) { t.tuple(2).atom("destroy").integer(-1); }) == "invalid_pool");
    CHECK(rejection_of([](EiTerm& t) { t.tuple(1).atom("stats"); }) == "badarg");
    // destroy/2 drains for the default time; {destroy, Pool, DrainMs} for 0..600000 ms.
    CHECK(accepted<Destroy>(decode_request(term([](EiTerm& t) { t.tuple(2).atom("destroy").integer(6); })))
              .drain_timeout_ms == 5000);
    const auto drained
        = accepted<Destroy>(decode_request(term([](EiTerm& t) { t.tuple(3).atom("destroy").integer(6).integer(0); })));
    CHECK(drained.pool == 6);
    CHECK(drained.drain_timeout_ms == 0);
    CHECK(accepted<Destroy>(decode_request(term([](EiTerm& t) { t.tuple(3).atom("destroy").integer(6).integer(600000); })))
              .drain_timeout_ms == 600000);
    CHECK(rejection_of([](EiTerm& t) { t.tuple(3).atom("destroy").integer(6).integer(600001); }) == "badarg");
    CHECK(rejection_of([](EiTerm& t) { t.tuple(3).atom("destroy").integer(6).atom("infinity"); }) == "badarg");
    CHECK(rejection_of([](EiTerm& t) { t.tuple(3).atom("destroy").integer(-6).integer(1); }) == "invalid_pool");
    CHECK(rejection_of([](EiTerm& t) { t.tuple(3).atom("stats").integer(1).integer(2); }) == "badarg");
}

TEST_CASE("decode_request: remove_target, and the form answered with the member's id", "[requests]")
{
    // The request's bytes are kept: what is decoded views them.
    const std::string plain_request
        = term([&](EiTerm& t) { t.tuple(4).atom("remove_target").integer(7).atom(kTarget).integer(100); });
    const auto plain = accepted<RemoveTarget>(decode_request(plain_request));
    CHECK(plain.group == 7);
    CHECK(plain.target == kTarget);
    CHECK(plain.drain_timeout_ms == 100);
    CHECK_FALSE(plain.answer_member_id);
    const auto naming = accepted<RemoveTarget>(decode_request(term([&](EiTerm& t) {
        t.tuple(5).atom("remove_target").integer(7).atom(kTarget).integer(100).atom("member_id");
    })));
    CHECK(naming.drain_timeout_ms == 100);
    CHECK(naming.answer_member_id);
    CHECK(rejection_of([&](EiTerm& t) {
              t.tuple(5).atom("remove_target").integer(7).atom(kTarget).integer(100).atom("member");
          }) == "badarg");
    CHECK(rejection_of([&](EiTerm& t) {
              t.tuple(5).atom("remove_target").integer(7).atom(kTarget).integer(100).integer(1);
          }) == "badarg");
}

TEST_CASE("decode_request: unknown shapes are badarg", "[requests]")
{
    const std::vector<std::string> unknown = {
        term([](EiTerm& t) { t.tuple(1).atom("hello"); }),
        term([](EiTerm& t) { t.tuple(0); }),
        term([](EiTerm& t) { t.nil(); }),
        term([](EiTerm& t) { t.integer(42); }),
        term([](EiTerm& t) { t.binary("pools"); }),
        term([](EiTerm& t) { t.tuple(2).integer(1).integer(2); }),
        term([](EiTerm& t) { t.tuple(2).atom("hello").integer(1); }),
        term([](EiTerm& t) { t.tuple(3).atom("pools").integer(1).integer(2); }),
        term([](EiTerm& t) { t.tuple(2).atom("checkout").integer(1); }),
        term([](EiTerm& t) { t.tuple(4).atom("send").integer(1).integer(2).integer(3); }),
        term([](EiTerm& t) { t.tuple(6).atom("request").integer(1).integer(2).integer(3).integer(4).integer(5); }),
    };
    for (const auto& request : unknown) {
        CAPTURE(request);
        CHECK(rejection(decode_request(request)) == "badarg");
    }
}

TEST_CASE("decode_request: an unknown operation is badarg whatever its arguments", "[requests]")
{
    // docs/PROTOCOL.md: "A request of unknown shape inside a valid envelope is answered {error, badarg}."
    // invalid_pool is the error of a known pool operation given a bad pool id, not of an unknown operation.
    CHECK(rejection_of([](EiTerm& t) { t.tuple(2).atom("hello").atom("world"); }) == "badarg");
    CHECK(rejection_of([](EiTerm& t) { t.tuple(2).atom("hello").integer(-1); }) == "badarg");
    CHECK(rejection_of([](EiTerm& t) { t.tuple(3).atom("frobnicate").binary("x").integer(1); }) == "badarg");
}

// --- restore -----------------------------------------------------------------------------------------------------

namespace {

// {restore, Pools, Next}, with Pools written by `pools`.
std::string restore_request(const Build& pools, long long next)
{
    return term([&](EiTerm& t) {
        t.tuple(3).atom("restore");
        pools(t);
        t.integer(next);
    });
}

// "error:pool" for a restore refused because of one pool.
std::string pool_rejection(const Decoded& d)
{
    if (const auto* r = std::get_if<RejectedPool>(&d)) {
        return std::string(r->error) + ":" + std::to_string(r->pool);
    }
    return "<" + rejection(d) + ">";
}

} // namespace

TEST_CASE("decode_request: restore", "[requests][restore]")
{
    const std::string opts4 = options_map({{"max_connections", 4}, {"min_connections", 2}});
    const std::string opts1 = options_map({{"max_connections", 1}, {"backoff_min_ms", 10}});
    SECTION("pools with their ids, targets and options, in order")
    {
        const auto r = accepted<Restore>(decode_request(restore_request(
            [&](EiTerm& t) {
                t.list(2);
                t.tuple(3).integer(17).atom(kTarget).raw(opts4);
                t.tuple(3).integer(5).binary("other@127.0.0.1").raw(opts1);
                t.nil();
            },
            30)));
        REQUIRE(r.pools.size() == 2);
        CHECK(r.pools[0].id == 17);
        CHECK(r.pools[0].config.target == kTarget);
        CHECK(r.pools[0].config.max_connections == 4);
        CHECK(r.pools[0].config.min_connections == 2);
        CHECK(r.pools[1].id == 5);
        CHECK(r.pools[1].config.target == "other@127.0.0.1");
        CHECK(r.pools[1].config.max_connections == 1);
        CHECK(r.pools[1].config.backoff_min_ms == 10);
        CHECK(r.next_pool_id == 30);
    }
    SECTION("an empty restore")
    {
        const auto r = accepted<Restore>(decode_request(restore_request([](EiTerm& t) { t.nil(); }, 0)));
        CHECK(r.pools.empty());
        CHECK(r.next_pool_id == 0);
    }
    SECTION("the largest ids")
    {
        const auto max = static_cast<long long>(kMaxRestoredPoolId);
        const auto r = accepted<Restore>(decode_request(restore_request(
            [&](EiTerm& t) { t.list(1).tuple(3).integer(max).atom(kTarget).raw(opts1).nil(); }, max)));
        CHECK(r.pools.at(0).id == kMaxRestoredPoolId);
        CHECK(r.next_pool_id == kMaxRestoredPoolId);
    }
}

TEST_CASE("decode_request: restore refuses bad shapes with badarg", "[requests][restore]")
{
    const std::string opts = options_map({{"max_connections", 1}});
    const auto big = static_cast<long long>(kMaxRestoredPoolId) + 1;
    const std::vector<std::pair<std::string, std::string>> bad = {
        {"wrong arity", term([](EiTerm& t) { t.tuple(2).atom("restore").nil(); })},
        {"wrong arity 4", term([](EiTerm& t) { t.tuple(4).atom("restore").nil().integer(1).integer(2); })},
        {"pools not a list", restore_request([](EiTerm& t) { t.atom("pools"); }, 1)},
        {"pools a map", restore_request([&](EiTerm& t) { t.raw(opts); }, 1)},
        {"improper list", restore_request([&](EiTerm& t) { t.list(1).tuple(3).integer(1).atom(kTarget).raw(opts).atom("tail"); }, 1)},
        {"element not a tuple", restore_request([](EiTerm& t) { t.list(1).integer(1).nil(); }, 1)},
        {"element of arity 2", restore_request([](EiTerm& t) { t.list(1).tuple(2).integer(1).atom(kTarget).nil(); }, 1)},
        {"negative id", restore_request([&](EiTerm& t) { t.list(1).tuple(3).integer(-1).atom(kTarget).raw(opts).nil(); }, 1)},
        {"id not an integer", restore_request([&](EiTerm& t) { t.list(1).tuple(3).atom("one").atom(kTarget).raw(opts).nil(); }, 1)},
        {"id too large", restore_request([&](EiTerm& t) { t.list(1).tuple(3).integer(big).atom(kTarget).raw(opts).nil(); }, 1)},
        {"next negative", restore_request([](EiTerm& t) { t.nil(); }, -1)},
        {"next too large", restore_request([](EiTerm& t) { t.nil(); }, big)},
        {"next not an integer", term([](EiTerm& t) { t.tuple(3).atom("restore").nil().atom("next"); })},
        {"a list header longer than the list", restore_request([&](EiTerm& t) { t.list(1000000).tuple(3).integer(1).atom(kTarget).raw(opts).nil(); }, 1)},
    };
    for (const auto& [what, request] : bad) {
        CAPTURE(what);
        CHECK(rejection(decode_request(request)) == "badarg");
    }
}

TEST_CASE("decode_request: restore names the pool whose target or options are bad", "[requests][restore]")
{
    const std::string good = options_map({{"max_connections", 1}});
    const auto with_second = [&](const Build& second) {
        return pool_rejection(decode_request(restore_request(
            [&](EiTerm& t) {
                t.list(2);
                t.tuple(3).integer(1).atom(kTarget).raw(good);
                second(t);
                t.nil();
            },
            10)));
    };
    CHECK(with_second([&](EiTerm& t) { t.tuple(3).integer(2).atom("no_host").raw(good); }) == "invalid_config:2");
    CHECK(with_second([&](EiTerm& t) { t.tuple(3).integer(2).integer(7).raw(good); }) == "invalid_config:2");
    CHECK(with_second([](EiTerm& t) { t.tuple(3).integer(2).atom(kTarget).atom("opts"); }) == "invalid_config:2");
    CHECK(with_second([](EiTerm& t) {
              t.tuple(3).integer(3).atom(kTarget).raw(options_map({{"max_connections", 0}}));
          })
          == "invalid_config:3");
    CHECK(with_second([](EiTerm& t) {
              t.tuple(3).integer(3).atom(kTarget).raw(options_map({{"max_connections", 2}, {"cnode", 1}}));
          })
          == "invalid_config:3");
    // The same id twice.
    CHECK(with_second([&](EiTerm& t) { t.tuple(3).integer(1).atom("other@127.0.0.1").raw(good); })
          == "pool_id_taken:1");
}

TEST_CASE("decode_request: restore takes groups with their members", "[requests][restore]")
{
    const std::string pool_opts = options_map({{"max_connections", 2}, {"min_connections", 1}});
    const std::string own = options_map({{"max_connections", 5}});
    const std::string empty = options_map({});
    // {group, Id, [{MemberId, Target, Options}], PoolOptions, GroupOptions}, its members written by `members`.
    const auto group = [&](long long id, const Build& members, const std::string& group_opts) {
        return [=](EiTerm& t) {
            t.tuple(5).atom("group").integer(id);
            members(t);
            t.raw(pool_opts).raw(group_opts);
        };
    };
    const auto two_members = [&](EiTerm& t) {
        t.list(2);
        t.tuple(3).integer(8).atom(kTarget).raw(own);
        t.tuple(3).integer(11).binary("other@127.0.0.1").raw(empty);
        t.nil();
    };
    const auto one_restore = [&](const Build& entry) {
        return decode_request(restore_request(
            [&](EiTerm& t) {
                t.list(2);
                t.tuple(3).integer(1).atom(kTarget).raw(pool_opts);
                entry(t);
                t.nil();
            },
            20));
    };
    SECTION("a group and a pool, each member's options over the group's pool options")
    {
        EiTerm strategy;
        strategy.map(2).atom("strategy").atom("least_in_use").atom("name").atom("workers");
        const auto r = accepted<Restore>(one_restore(group(7, two_members, strategy.str())));
        REQUIRE(r.pools.size() == 1);
        REQUIRE(r.groups.size() == 1);
        const auto& g = r.groups[0];
        CHECK(g.id == 7);
        CHECK(g.config.strategy == dpool::pool::Strategy::least_in_use);
        CHECK(g.config.name == "workers");
        CHECK(g.config.pool_options == pool_opts);
        REQUIRE(g.members.size() == 2);
        CHECK(g.members[0].id == 8);
        CHECK(g.members[0].config.target == kTarget);
        CHECK(g.members[0].config.max_connections == 5);
        CHECK(g.members[0].config.min_connections == 1);
        CHECK(g.members[1].id == 11);
        CHECK(g.members[1].config.target == "other@127.0.0.1");
        CHECK(g.members[1].config.max_connections == 2);
    }
    SECTION("a bad group is named by its id; an id given twice anywhere is pool_id_taken")
    {
        const auto refused = [&](const Build& entry) { return pool_rejection(one_restore(entry)); };
        CHECK(refused(group(7, [](EiTerm& t) { t.nil(); }, empty)) == "invalid_config:7");
        CHECK(refused(group(7, [](EiTerm& t) { t.atom("members"); }, empty)) == "invalid_config:7");
        CHECK(refused(group(7, [&](EiTerm& t) { t.list(1).tuple(2).integer(8).atom(kTarget).nil(); }, empty))
              == "invalid_config:7");
        CHECK(refused(group(7, [&](EiTerm& t) { t.list(1).tuple(3).integer(8).atom("no_host").raw(empty).nil(); },
                            empty))
              == "invalid_config:7");
        // A member has no name of its own.
        EiTerm named;
        named.map(1).atom("name").atom("m");
        CHECK(refused(group(7, [&](EiTerm& t) { t.list(1).tuple(3).integer(8).atom(kTarget).raw(named.str()).nil(); },
                            empty))
              == "invalid_config:7");
        CHECK(refused(group(7, [&](EiTerm& t) {
                  t.list(2);
                  t.tuple(3).integer(8).atom(kTarget).raw(empty);
                  t.tuple(3).integer(9).atom(kTarget).raw(empty);
                  t.nil();
              }, empty))
              == "invalid_config:7");
        EiTerm strategy;
        strategy.map(1).atom("strategy").atom("random");
        CHECK(refused(group(7, two_members, strategy.str())) == "invalid_config:7");
        CHECK(refused([&](EiTerm& t) {
                  t.tuple(5).atom("group").integer(7);
                  two_members(t);
                  t.atom("pool_options").raw(empty);
              })
              == "invalid_config:7");
        CHECK(refused(group(1, two_members, empty)) == "pool_id_taken:1");
        CHECK(refused(group(7, [&](EiTerm& t) { t.list(1).tuple(3).integer(1).atom(kTarget).raw(empty).nil(); }, empty))
              == "pool_id_taken:1");
        CHECK(refused(group(7, [&](EiTerm& t) { t.list(1).tuple(3).integer(7).atom(kTarget).raw(empty).nil(); }, empty))
              == "pool_id_taken:7");
    }
    SECTION("a group entry of another shape is badarg")
    {
        CHECK(rejection(one_restore([&](EiTerm& t) {
                  t.tuple(5).atom("grope").integer(7);
                  two_members(t);
                  t.raw(empty).raw(empty);
              }))
              == "badarg");
        CHECK(rejection(one_restore([&](EiTerm& t) {
                  t.tuple(5).atom("group").integer(-7);
                  two_members(t);
                  t.raw(empty).raw(empty);
              }))
              == "badarg");
        CHECK(rejection(one_restore([&](EiTerm& t) { t.tuple(4).atom("group").integer(7).nil().raw(empty); }))
              == "badarg");
    }
}

// --- pool options ------------------------------------------------------------------------------------------------

TEST_CASE("parse_pool_options defaults", "[requests]")
{
    const auto config = options({{"max_connections", 10}});
    REQUIRE(config.has_value());
    CHECK(config->target == kTarget);
    CHECK(config->max_connections == 10);
    CHECK(config->min_connections == 10);
    CHECK(config->acquire_timeout_ms == 5000);
    CHECK(config->connect_timeout_ms == 5000);
    CHECK(config->backoff_min_ms == 100);
    CHECK(config->backoff_max_ms == 5000);
    CHECK(config->max_idle_ms == 600000);
    CHECK(config->max_lifetime_ms == 1800000);
    CHECK(config->health_check_interval_ms == 30000);
    CHECK(config->health_check_timeout_ms == 5000);
    CHECK_FALSE(config->validate_on_checkout);
    CHECK(config->resize_window_ms == 10000);
}

TEST_CASE("parse_pool_options: lifecycle options, 0 disabling where documented", "[requests]")
{
    const auto config = options({{"max_connections", 4},
                                 {"max_idle_ms", 50},
                                 {"max_lifetime_ms", 300},
                                 {"health_check_interval_ms", 20},
                                 {"health_check_timeout_ms", 70},
                                 {"resize_window_ms", 100}});
    REQUIRE(config.has_value());
    CHECK(config->max_idle_ms == 50);
    CHECK(config->max_lifetime_ms == 300);
    CHECK(config->health_check_interval_ms == 20);
    CHECK(config->health_check_timeout_ms == 70);
    CHECK(config->resize_window_ms == 100);

    SECTION("0 turns idle closing, lifetimes and health checks off; not the timeouts or the window")
    {
        CHECK(options({{"max_connections", 1}, {"max_idle_ms", 0}})->max_idle_ms == 0);
        CHECK(options({{"max_connections", 1}, {"max_lifetime_ms", 0}})->max_lifetime_ms == 0);
        CHECK(options({{"max_connections", 1}, {"health_check_interval_ms", 0}})->health_check_interval_ms == 0);
        CHECK_FALSE(options({{"max_connections", 1}, {"health_check_timeout_ms", 0}}).has_value());
        CHECK_FALSE(options({{"max_connections", 1}, {"resize_window_ms", 0}}).has_value());
    }
    SECTION("lower and upper bounds")
    {
        CHECK_FALSE(options({{"max_connections", 1}, {"max_idle_ms", 9}}).has_value());
        CHECK_FALSE(options({{"max_connections", 1}, {"max_lifetime_ms", 99}}).has_value());
        CHECK_FALSE(options({{"max_connections", 1}, {"health_check_interval_ms", 9}}).has_value());
        CHECK_FALSE(options({{"max_connections", 1}, {"resize_window_ms", 99}}).has_value());
        CHECK(options({{"max_connections", 1}, {"max_lifetime_ms", 86400000}}).has_value());
        CHECK_FALSE(options({{"max_connections", 1}, {"max_lifetime_ms", 86400001}}).has_value());
        CHECK_FALSE(options({{"max_connections", 1}, {"max_idle_ms", 86400001}}).has_value());
        CHECK_FALSE(options({{"max_connections", 1}, {"health_check_timeout_ms", 600001}}).has_value());
        CHECK_FALSE(options({{"max_connections", 1}, {"resize_window_ms", 86400001}}).has_value());
    }
}

TEST_CASE("parse_pool_options: validate_on_checkout is a boolean", "[requests]")
{
    const auto with = [](auto write_value) {
        return parse_pool_options(kTarget, term([&](EiTerm& t) {
                                      t.map(2).atom("max_connections").integer(1).atom("validate_on_checkout");
                                      write_value(t);
                                  }));
    };
    CHECK(with([](EiTerm& t) { t.atom("true"); })->validate_on_checkout);
    CHECK_FALSE(with([](EiTerm& t) { t.atom("false"); })->validate_on_checkout);
    CHECK_FALSE(with([](EiTerm& t) { t.atom("yes"); }).has_value());
    CHECK_FALSE(with([](EiTerm& t) { t.integer(1); }).has_value());
    // And an integer option does not take an atom.
    CHECK_FALSE(parse_pool_options(kTarget, term([](EiTerm& t) {
                                       t.map(2).atom("max_connections").integer(1).atom("max_idle_ms").atom("true");
                                   }))
                    .has_value());
}

TEST_CASE("parse_pool_options takes every option", "[requests]")
{
    const auto config = options(
        {{"min_connections", 2}, {"acquire_timeout_ms", 100}, {"connect_timeout_ms", 200}, {"max_connections", 8}});
    REQUIRE(config.has_value());
    CHECK(config->max_connections == 8);
    CHECK(config->min_connections == 2);
    CHECK(config->acquire_timeout_ms == 100);
    CHECK(config->connect_timeout_ms == 200);
}

TEST_CASE("parse_pool_options bounds", "[requests]")
{
    SECTION("max_connections 1..1000")
    {
        CHECK_FALSE(options({{"max_connections", 0}}).has_value());
        CHECK(options({{"max_connections", 1}})->max_connections == 1);
        CHECK(options({{"max_connections", 1000}})->max_connections == 1000);
        CHECK_FALSE(options({{"max_connections", 1001}}).has_value());
        CHECK_FALSE(options({{"max_connections", -1}}).has_value());
        CHECK_FALSE(options({{"max_connections", (1LL << 32) + 1}}).has_value());
    }
    SECTION("min_connections 0..max")
    {
        CHECK(options({{"max_connections", 5}, {"min_connections", 0}})->min_connections == 0);
        CHECK(options({{"max_connections", 5}, {"min_connections", 5}})->min_connections == 5);
        CHECK_FALSE(options({{"max_connections", 5}, {"min_connections", 6}}).has_value());
        CHECK_FALSE(options({{"min_connections", 1}}).has_value()); // max is required
    }
    SECTION("acquire_timeout_ms 0..86400000")
    {
        CHECK(options({{"max_connections", 1}, {"acquire_timeout_ms", 0}})->acquire_timeout_ms == 0);
        CHECK(options({{"max_connections", 1}, {"acquire_timeout_ms", 86400000}})->acquire_timeout_ms == 86400000);
        CHECK_FALSE(options({{"max_connections", 1}, {"acquire_timeout_ms", 86400001}}).has_value());
    }
    SECTION("connect_timeout_ms 1..600000")
    {
        CHECK_FALSE(options({{"max_connections", 1}, {"connect_timeout_ms", 0}}).has_value());
        CHECK(options({{"max_connections", 1}, {"connect_timeout_ms", 1}})->connect_timeout_ms == 1);
        CHECK(options({{"max_connections", 1}, {"connect_timeout_ms", 600000}})->connect_timeout_ms == 600000);
        CHECK_FALSE(options({{"max_connections", 1}, {"connect_timeout_ms", 600001}}).has_value());
    }
    SECTION("backoff 1 <= backoff_min_ms <= backoff_max_ms <= 600000")
    {
        const auto both = options({{"max_connections", 1}, {"backoff_min_ms", 7}, {"backoff_max_ms", 70}});
        REQUIRE(both.has_value());
        CHECK(both->backoff_min_ms == 7);
        CHECK(both->backoff_max_ms == 70);
        CHECK(options({{"max_connections", 1}, {"backoff_min_ms", 5000}, {"backoff_max_ms", 5000}}).has_value());
        CHECK_FALSE(options({{"max_connections", 1}, {"backoff_min_ms", 0}}).has_value());
        CHECK_FALSE(options({{"max_connections", 1}, {"backoff_max_ms", 600001}}).has_value());
        CHECK_FALSE(options({{"max_connections", 1}, {"backoff_min_ms", 200}, {"backoff_max_ms", 100}}).has_value());
        // Against the defaults: a min above the default max needs a max too.
        CHECK_FALSE(options({{"max_connections", 1}, {"backoff_min_ms", 6000}}).has_value());
        CHECK(options({{"max_connections", 1}, {"backoff_max_ms", 100}})->backoff_max_ms == 100);
    }
}

TEST_CASE("parse_pool_options rejects unknown keys and wrong types", "[requests]")
{
    CHECK_FALSE(options({}).has_value());
    CHECK_FALSE(options({{"max_connections", 1}, {"cnode", 42}}).has_value());
    CHECK_FALSE(parse_pool_options(kTarget, term([](EiTerm& t) { t.map(1).binary("max_connections").integer(1); }))
                    .has_value());
    CHECK_FALSE(
        parse_pool_options(kTarget, term([](EiTerm& t) { t.map(1).atom("max_connections").atom("one"); })).has_value());
    CHECK_FALSE(parse_pool_options(kTarget, term([](EiTerm& t) { t.map(1).atom("max_connections").floating(1.0); }))
                    .has_value());
    CHECK_FALSE(
        parse_pool_options(kTarget, term([](EiTerm& t) { t.map(1).atom("max_connections").binary("1"); })).has_value());
    CHECK_FALSE(
        parse_pool_options(kTarget, term([](EiTerm& t) { t.list(1).atom("max_connections").nil(); })).has_value());
    CHECK_FALSE(parse_pool_options(kTarget, term([](EiTerm& t) { t.atom("max_connections"); })).has_value());
    CHECK_FALSE(parse_pool_options(kTarget, options_map({{"max_connections", 1}}) + "\x6a").has_value());
}

TEST_CASE("parse_pool_options says why: the key, the value and what is allowed", "[requests][config_error]")
{
    const auto why = [](const std::string& options_bytes) {
        const auto parsed = parse_pool_options(kTarget, options_bytes);
        REQUIRE_FALSE(parsed.has_value());
        return printed_config_error(parsed.error());
    };
    SECTION("an unknown key, with the known key it was probably meant to be")
    {
        CHECK(why(options_map({{"max_conections", 4}})) == "{unknown_option,max_conections,{did_you_mean,max_connections}}");
        CHECK(why(options_map({{"max_connections", 4}, {"acquire_timeout", 10}}))
              == "{unknown_option,acquire_timeout,{did_you_mean,acquire_timeout_ms}}");
        CHECK(why(options_map({{"max_connections", 4}, {"cnod", 1}})) == "{unknown_option,cnod,{did_you_mean,cnode}}");
        CHECK(why(options_map({{"max_connections", 4}, {"Max_Connections", 1}}))
              == "{unknown_option,Max_Connections,{did_you_mean,max_connections}}");
        // Nothing close: no suggestion.
        CHECK(why(options_map({{"max_connections", 4}, {"colour", 1}})) == "{unknown_option,colour}");
        CHECK(why(options_map({{"max_connections", 4}, {"x", 1}})) == "{unknown_option,x}");
        CHECK(why(term([](EiTerm& t) { t.map(1).binary("max_connections").integer(1); }))
              == "{unknown_option,<<\"max_connections\">>}");
    }
    SECTION("a value out of range, with the range")
    {
        CHECK(why(options_map({{"max_connections", 0}})) == "{bad_value,max_connections,0,<<\"an integer in 1..1000\">>}");
        CHECK(why(options_map({{"max_connections", 5000}}))
              == "{bad_value,max_connections,5000,<<\"an integer in 1..1000\">>}");
        CHECK(why(options_map({{"max_connections", 1}, {"max_idle_ms", 5}}))
              == "{bad_value,max_idle_ms,5,<<\"0 (off) or an integer in 10..86400000\">>}");
        CHECK(why(options_map({{"max_connections", 1}, {"acquire_timeout_ms", -1}}))
              == "{bad_value,acquire_timeout_ms,-1,<<\"an integer in 0..86400000\">>}");
        CHECK(why(options_map({{"max_connections", 3}, {"min_connections", 5}}))
              == "{bad_value,min_connections,5,<<\"an integer in 0..max_connections (3)\">>}");
        CHECK(why(options_map({{"max_connections", 1}, {"backoff_min_ms", 200}, {"backoff_max_ms", 100}}))
              == "{bad_value,backoff_max_ms,100,<<\"an integer in backoff_min_ms (200)..600000\">>}");
        CHECK(why(options_map({{"max_connections", 1}, {"backoff_min_ms", 6000}}))
              == "{bad_value,backoff_min_ms,6000,<<\"an integer in 1..backoff_max_ms (5000)\">>}");
    }
    SECTION("a value of the wrong type")
    {
        CHECK(why(term([](EiTerm& t) { t.map(1).atom("max_connections").atom("one"); }))
              == "{bad_value,max_connections,one,<<\"an integer in 1..1000\">>}");
        CHECK(why(term([](EiTerm& t) { t.map(2).atom("max_connections").integer(1).atom("validate_on_checkout").atom("yes"); }))
              == "{bad_value,validate_on_checkout,yes,<<\"true or false\">>}");
        CHECK(why(term([](EiTerm& t) { t.map(2).atom("max_connections").integer(1).atom("name").binary("orders"); }))
              == "{bad_value,name,<<\"orders\">>,<<\"a non-empty UTF-8 atom other than undefined\">>}");
        CHECK(why(term([](EiTerm& t) { t.map(2).atom("max_connections").integer(1).atom("name").atom("undefined"); }))
              == "{bad_value,name,undefined,<<\"a non-empty UTF-8 atom other than undefined\">>}");
    }
    SECTION("a missing or repeated key, and no map at all")
    {
        CHECK(why(options_map({})) == "{missing_option,max_connections}");
        CHECK(why(options_map({{"min_connections", 1}})) == "{missing_option,max_connections}");
        CHECK(why(options_map({{"max_connections", 1}, {"max_connections", 2}})) == "{duplicate_option,max_connections}");
        CHECK(why(term([](EiTerm& t) { t.list(1).atom("max_connections").nil(); })) == "{bad_options,[max_connections]}");
    }
}

TEST_CASE("parse_pool_options: the pool's name", "[requests]")
{
    const auto name_of = [](const std::string& atom_bytes) {
        // {max_connections => 1, name => Atom}, the atom hand-encoded as ATOM_EXT or ATOM_UTF8_EXT bytes.
        return parse_pool_options(kTarget, term([&](EiTerm& t) { t.map(2).atom("max_connections").integer(1).atom("name").raw(atom_bytes); }));
    };
    using dpool::test::atom_ext;
    using dpool::test::small_atom_utf8_ext;
    CHECK(name_of(small_atom_utf8_ext("caf\xC3\xA9"))->name == "caf\xC3\xA9"); // café, as OTP sends it
    // Bytes that are no UTF-8 (a latin-1 atom with a high byte, a cut sequence, a surrogate, an overlong
    // form) cannot be written back as a name: refused, never stored.
    for (const std::string bad : {"\xE9", "ab\xC3", "\xED\xA0\x80", "\xC0\xAF", "\xF5\x80\x80\x80"}) {
        CAPTURE(bad);
        const auto parsed = name_of(atom_ext(bad));
        REQUIRE_FALSE(parsed.has_value());
        CHECK(parsed.error().kind == ConfigError::Kind::bad_value);
    }
    CHECK_FALSE(name_of(small_atom_utf8_ext("")).has_value());
    const auto config = parse_pool_options(
        kTarget, term([](EiTerm& t) { t.map(2).atom("max_connections").integer(2).atom("name").atom("orders"); }));
    REQUIRE(config.has_value());
    CHECK(config->name == "orders");
    CHECK(options({{"max_connections", 1}})->name.empty());
}

TEST_CASE("parse_pool_options rejects bad targets", "[requests]")
{
    REQUIRE(options({{"max_connections", 1}}, "a@b").has_value());
    for (const std::string target : {"", "a", "a@", "@b", "a@b@c", "bad name@h"}) {
        CAPTURE(target);
        CHECK_FALSE(options({{"max_connections", 1}}, target).has_value());
    }
}

// --- destinations ------------------------------------------------------------------------------------------------

TEST_CASE("parse_destination", "[requests]")
{
    SECTION("a registered name")
    {
        const std::string name = term([](EiTerm& t) { t.atom("my_server"); });
        const auto d = parse_destination(name, kTarget);
        REQUIRE(d.has_value());
        CHECK(d->is_name);
        CHECK(d->encoded == name);
    }
    SECTION("a pid on the target")
    {
        const std::string pid = term([](EiTerm& t) { t.pid(kTarget, 80, 0, 3); });
        const auto d = parse_destination(pid, kTarget);
        REQUIRE(d.has_value());
        CHECK_FALSE(d->is_name);
        CHECK(d->encoded == pid);
    }
    SECTION("a pid on another node")
    {
        CHECK_FALSE(parse_destination(term([](EiTerm& t) { t.pid("other@127.0.0.1", 80, 0, 3); }), kTarget));
    }
    SECTION("{Name, Target}")
    {
        const std::string name = term([](EiTerm& t) { t.atom("my_server"); });
        const std::string tuple = term([&](EiTerm& t) { t.tuple(2).raw(name).atom(kTarget); });
        const auto d = parse_destination(tuple, kTarget);
        REQUIRE(d.has_value());
        CHECK(d->is_name);
        CHECK(d->encoded == name);
    }
    SECTION("{Name, OtherNode} and other terms")
    {
        const std::vector<std::string> rejected = {
            term([](EiTerm& t) { t.tuple(2).atom("my_server").atom("other@127.0.0.1"); }),
            term([](EiTerm& t) { t.tuple(2).atom("my_server").binary(kTarget); }),
            term([](EiTerm& t) { t.tuple(2).binary("my_server").atom(kTarget); }),
            term([](EiTerm& t) { t.tuple(3).atom("my_server").atom(kTarget).atom("x"); }),
            term([](EiTerm& t) { t.tuple(1).atom("my_server"); }),
            term([](EiTerm& t) { t.integer(42); }),
            term([](EiTerm& t) { t.binary("my_server"); }),
            term([](EiTerm& t) { t.nil(); }),
            term([](EiTerm& t) {
                t.ref(kTarget, 1, {1, 2, 3});
            }),
        };
        for (const auto& bytes : rejected) {
            CAPTURE(bytes);
            CHECK_FALSE(parse_destination(bytes, kTarget).has_value());
        }
    }
}

// --- the request table -------------------------------------------------------------------------------------------

namespace {

// One field of a well-formed request: a value it takes, and one it does not with the error that answers it.
struct Field {
    Build good;
    Build bad = nullptr; // none: any term is taken here (checked later against the pool, or forwarded as is)
    std::string error = {};
};

// A well-formed request of every name and arity the table has, field by field (none: the bare atom).
struct Example {
    std::string name;
    std::vector<Field> fields;
    std::function<bool(const Decoded&)> decodes_as;

    std::uint32_t arity() const { return fields.empty() ? 0 : static_cast<std::uint32_t>(fields.size() + 1); }
};

template <class T> std::function<bool(const Decoded&)> as()
{
    return [](const Decoded& d) { return std::holds_alternative<T>(d); };
}

// {Name, Field...} (the bare atom Name for no fields, unless `tuple`).
std::string encode(const std::string& name, const std::vector<Build>& fields, bool tuple = true)
{
    return term([&](EiTerm& t) {
        if (!tuple && fields.empty()) {
            t.atom(name);
            return;
        }
        t.tuple(static_cast<long>(fields.size() + 1)).atom(name);
        for (const auto& field : fields) {
            field(t);
        }
    });
}

std::vector<Build> good_fields(const Example& e)
{
    std::vector<Build> fields;
    for (const auto& f : e.fields) {
        fields.push_back(f.good);
    }
    return fields;
}

std::string encode(const Example& e) { return encode(e.name, good_fields(e), !e.fields.empty()); }

std::vector<Example> examples()
{
    const Build any = [](EiTerm& t) { t.tuple(2).atom("m").integer(1); };
    const Field pool{[](EiTerm& t) { t.integer(7); }, [](EiTerm& t) { t.atom("p"); }, "invalid_pool"};
    const Field conn{[](EiTerm& t) { t.integer(2); }, [](EiTerm& t) { t.atom("c"); }, "invalid_connection"};
    const Field lease{[](EiTerm& t) { t.integer(3); }, [](EiTerm& t) { t.integer(-3); }, "invalid_connection"};
    const Field dest{[](EiTerm& t) { t.atom("sink"); }};
    const Field msg{any};
    const Field timeout{[](EiTerm& t) { t.integer(500); }, [](EiTerm& t) { t.atom("default"); }, "badarg"};
    const Field acquire{[](EiTerm& t) { t.atom("default"); }, [](EiTerm& t) { t.atom("infinity"); }, "badarg"};
    const Field m{[](EiTerm& t) { t.atom("erlang"); }, [](EiTerm& t) { t.binary("erlang"); }, "badarg"};
    const Field f{[](EiTerm& t) { t.atom("node"); }, [](EiTerm& t) { t.integer(1); }, "badarg"};
    const Field a{[](EiTerm& t) { t.list(1).integer(1).nil(); }, [](EiTerm& t) { t.list(1).integer(1).atom("t"); },
                  "badarg"};
    const Field target{[](EiTerm& t) { t.atom(kTarget); }, [](EiTerm& t) { t.atom("no_host"); }, "invalid_config"};
    const std::string opts = options_map({{"max_connections", 1}});
    const Field options{[opts](EiTerm& t) { t.raw(opts); }, [](EiTerm& t) { t.atom("opts"); }, "invalid_config"};
    return {
        {"checkout", {pool, {[](EiTerm& t) { t.atom("default"); }, [](EiTerm& t) { t.atom("never"); }, "badarg"}},
         [](const Decoded& d) { return std::holds_alternative<Checkout>(d) && !std::get<Checkout>(d).quiet; }},
        {"checkout",
         {pool, {[](EiTerm& t) { t.integer(0); }, [](EiTerm& t) { t.atom("never"); }, "badarg"},
          {[](EiTerm& t) { t.atom("quiet"); }, [](EiTerm& t) { t.atom("loud"); }, "badarg"}},
         [](const Decoded& d) { return std::holds_alternative<Checkout>(d) && std::get<Checkout>(d).quiet; }},
        {"checkin", {pool, conn, lease}, as<Checkin>()},
        {"discard", {pool, conn, lease}, as<Checkin>()},
        {"cancel",
         {pool, {[](EiTerm& t) { t.pid("caller@host", 3, 0, 1); }, [](EiTerm& t) { t.atom("nopid"); }, "badarg"},
          {any}},
         as<Cancel>()},
        {"lease_of", {pool, {any}}, as<LeaseOf>()},
        {"send", {pool, conn, lease, dest, msg}, as<Send>()},
        {"send_many",
         {pool, conn, lease,
          {[any](EiTerm& t) {
               t.list(1).tuple(2).atom("sink");
               any(t);
               t.nil();
           },
           [](EiTerm& t) { t.list(1).atom("not_a_pair").nil(); }, "badarg"}},
         as<SendMany>()},
        {"request", {pool, conn, lease, dest, timeout, msg}, as<Request>()},
        {"call", {pool, conn, lease, m, f, a, timeout}, as<Call>()},
        {"pooled_send", {pool, dest, msg}, as<PooledSend>()},
        {"pooled_send", {pool, dest, msg, acquire}, as<PooledSend>()},
        {"pooled_request", {pool, dest, timeout, msg}, as<PooledRequest>()},
        {"pooled_request", {pool, dest, timeout, msg, acquire}, as<PooledRequest>()},
        {"pooled_call", {pool, m, f, a, timeout}, as<PooledCall>()},
        {"pooled_call", {pool, m, f, a, timeout, acquire}, as<PooledCall>()},
        {"cast_batch",
         {pool, dest,
          {[any](EiTerm& t) {
               t.list(1);
               any(t);
               t.nil();
           },
           [](EiTerm& t) { t.list(1).atom("m").atom("tail"); }, "badarg"}},
         as<CastBatch>()},
        {"cast_batch_keyed",
         {pool, dest,
          {[any](EiTerm& t) {
               t.list(1).tuple(2).integer(5);
               any(t);
               t.nil();
           },
           [](EiTerm& t) { t.list(1).atom("m").nil(); }, "badarg"}},
         as<CastBatch>()},
        {"stats", {pool}, as<Stats>()},
        {"destroy", {pool}, as<Destroy>()},
        {"destroy",
         {pool, {[](EiTerm& t) { t.integer(0); }, [](EiTerm& t) { t.integer(600001); }, "badarg"}},
         as<Destroy>()},
        {"new", {target, options}, as<NewPool>()},
        {"whereis", {{[](EiTerm& t) { t.atom("orders"); }, [](EiTerm& t) { t.binary("orders"); }, "badarg"}},
         as<Whereis>()},
        {"restore",
         {{[](EiTerm& t) { t.nil(); }, [](EiTerm& t) { t.atom("pools"); }, "badarg"},
          {[](EiTerm& t) { t.integer(1); }, [](EiTerm& t) { t.integer(-1); }, "badarg"}},
         as<Restore>()},
        {"pools", {}, as<ListPools>()},
        {"info", {}, as<Info>()},
        {"lanes", {}, as<ListLanes>()},
        {"ping", {}, as<Ping>()},
        {"keyed",
         {{[](EiTerm& t) { t.integer(5); }, [](EiTerm& t) { t.integer(-5); }, "badarg"}, {any}},
         as<Keyed>()},
        {"new_group",
         {{[](EiTerm& t) { t.list(1).tuple(2).atom(kTarget).map(0).nil(); },
           [](EiTerm& t) { t.atom("targets"); }, "invalid_config"},
          options,
          {[](EiTerm& t) { t.map(1).atom("strategy").atom("least_in_use"); },
           [](EiTerm& t) { t.map(1).atom("strategy").atom("random"); }, "invalid_config"}},
         as<NewGroup>()},
        // Target and Options are read against the group's pool options, by the service.
        {"add_target", {pool, {target.good}, {options.good}}, as<AddTarget>()},
        {"remove_target",
         {pool, {[](EiTerm& t) { t.atom(kTarget); }, [](EiTerm& t) { t.integer(1); }, "badarg"}},
         as<RemoveTarget>()},
        {"remove_target",
         {pool, {[](EiTerm& t) { t.atom(kTarget); }},
          {[](EiTerm& t) { t.integer(0); }, [](EiTerm& t) { t.integer(600001); }, "badarg"}},
         as<RemoveTarget>()},
        {"remove_target",
         {pool, {[](EiTerm& t) { t.atom(kTarget); }}, {[](EiTerm& t) { t.integer(0); }},
          {[](EiTerm& t) { t.atom("member_id"); }, [](EiTerm& t) { t.atom("ok"); }, "badarg"}},
         as<RemoveTarget>()},
    };
}

using Shape = std::pair<std::string, std::uint32_t>; // a request's name and arity (0: the bare atom)

std::set<Shape> table_shapes()
{
    std::set<Shape> shapes;
    for (const RequestSpec& spec : request_table()) {
        for (std::uint32_t arity = spec.min_arity; arity <= spec.max_arity; ++arity) {
            CHECK(shapes.emplace(std::string(spec.name), arity).second); // no name and arity twice
        }
    }
    return shapes;
}

// The name and arity of one request as docs/PROTOCOL.md writes it: `{name, Field, ...}` or a bare `name`.
Shape documented_shape(const std::string& code)
{
    if (code.empty() || code.front() != '{') {
        return {code, 0};
    }
    int depth = 0;
    std::uint32_t elements = 1;
    for (const char c : code) {
        if (c == '{' || c == '[' || c == '(') {
            ++depth;
        } else if (c == '}' || c == ']' || c == ')') {
            --depth;
        } else if (c == ',' && depth == 1) {
            ++elements;
        }
    }
    const auto name_end = code.find_first_of(",}");
    return {code.substr(1, name_end - 1), elements};
}

// The requests a protocol description lists: the code spans in the first cell of each row of the tables of
// its "Calls" and "Casts" sections (`\|` inside a cell separates the forms of one request).
std::set<Shape> documented_shapes(const std::string& markdown)
{
    std::set<Shape> shapes;
    std::istringstream in(markdown);
    std::string line;
    std::string section;
    while (std::getline(in, line)) {
        if (line.rfind("## ", 0) == 0) {
            section = line.substr(3);
            continue;
        }
        if ((section != "Calls" && section != "Casts") || line.rfind("| ", 0) != 0) {
            continue;
        }
        std::size_t end = 1;
        while (end < line.size() && !(line[end] == '|' && line[end - 1] != '\\')) {
            ++end;
        }
        const std::string cell = line.substr(1, end - 1);
        for (auto open = cell.find('`'); open != std::string::npos; open = cell.find('`', open + 1)) {
            const auto close = cell.find('`', open + 1);
            REQUIRE(close != std::string::npos);
            shapes.insert(documented_shape(cell.substr(open + 1, close - open - 1)));
            open = close;
        }
    }
    return shapes;
}

std::string source_dir()
{
#ifdef DPOOL_SOURCE_DIR
    return DPOOL_SOURCE_DIR;
#else
    // The build gives the compiler this file by its full path: .../test/cpp/test_requests.cpp.
    const std::string file = __FILE__;
    const auto at = file.rfind("test/cpp/test_requests.cpp");
    return at == std::string::npos ? std::string(".") : file.substr(0, at);
#endif
}

} // namespace

TEST_CASE("request table: one well-formed request of every entry decodes", "[requests][table]")
{
    std::set<Shape> covered;
    for (const auto& e : examples()) {
        CAPTURE(e.name, e.arity());
        const RequestSpec* spec = find_request(e.name, e.arity());
        REQUIRE(spec != nullptr);
        CHECK(spec->name == e.name);
        REQUIRE(spec->decode != nullptr);
        const std::string request = encode(e);
        const auto decoded = decode_request(request);
        INFO("decoded as: " << rejection(decoded));
        CHECK(e.decodes_as(decoded));
        CHECK(covered.emplace(e.name, e.arity()).second);
    }
    // Every name and arity of the table has its example, and no example is of a request the table lacks.
    CHECK(covered == table_shapes());
}

TEST_CASE("request table: each field of a known request, wrong, gives its error", "[requests][table]")
{
    for (const auto& e : examples()) {
        CAPTURE(e.name, e.arity());
        const RequestSpec* spec = find_request(e.name, e.arity());
        REQUIRE(spec != nullptr);
        // A request that names a pool first answers invalid_pool for a PoolId that cannot be one.
        if (!e.fields.empty()) {
            CHECK(spec->names_pool == (e.fields.front().error == "invalid_pool"));
        }
        for (std::size_t i = 0; i < e.fields.size(); ++i) {
            if (!e.fields[i].bad) {
                continue;
            }
            CAPTURE(i);
            auto fields = good_fields(e);
            fields[i] = e.fields[i].bad;
            const std::string request = encode(e.name, fields);
            CHECK(rejection(decode_request(request)) == e.fields[i].error);
        }
    }
}

TEST_CASE("request table: a known request of another arity is badarg, whatever its fields", "[requests][table]")
{
    const Build one = [](EiTerm& t) { t.integer(1); };
    const Build no_pool = [](EiTerm& t) { t.integer(-1); };
    for (const RequestSpec& spec : request_table()) {
        const std::string name(spec.name);
        CAPTURE(name);
        // One field fewer and one more than the entry takes (a tuple of the name alone for a bare atom's),
        // with fields that would do, or a first field that cannot be a pool: badarg, not invalid_pool.
        for (const std::uint32_t arity : {spec.min_arity == 0 ? 1u : spec.min_arity - 1, spec.max_arity + 1}) {
            if (arity == 0 || find_request(name, arity) != nullptr) {
                continue;
            }
            CAPTURE(arity);
            for (const auto& first : {one, no_pool}) {
                std::vector<Build> fields(arity - 1, one);
                if (!fields.empty()) {
                    fields.front() = first;
                }
                const std::string request = encode(name, fields);
                CHECK(rejection(decode_request(request)) == "badarg");
            }
        }
        if (spec.min_arity > 0 && find_request(name, 0) == nullptr) {
            CHECK(rejection_of([&](EiTerm& t) { t.atom(name); }) == "badarg"); // the tuple's name alone
        }
    }
}

TEST_CASE("request table: an unknown name is badarg, at any arity and whatever its fields", "[requests][table]")
{
    std::vector<std::string> names = {"hello", "", "Checkout", "checkout_", "pool", "info2", "send many"};
    for (const RequestSpec& spec : request_table()) {
        names.push_back(std::string(spec.name) + "x");          // one letter more
        names.push_back(std::string(spec.name.substr(1)));      // one less
    }
    for (const auto& name : names) {
        if (find_request(name, 0) == nullptr) {
            CHECK(rejection_of([&](EiTerm& t) { t.atom(name); }) == "badarg");
        }
        for (std::uint32_t arity = 1; arity <= 9; ++arity) {
            if (find_request(name, arity) != nullptr) {
                continue;
            }
            CAPTURE(name, arity);
            std::vector<Build> fields(arity - 1, [](EiTerm& t) { t.integer(-1); });
            const std::string request = encode(name, fields);
            CHECK(rejection(decode_request(request)) == "badarg");
        }
    }
    // The name must be an atom.
    CHECK(rejection_of([](EiTerm& t) { t.tuple(2).binary("stats").integer(1); }) == "badarg");
    CHECK(rejection_of([](EiTerm& t) { t.tuple(2).string("stats").integer(1); }) == "badarg");
}

TEST_CASE("request table: the requests are those docs/PROTOCOL.md lists", "[requests][table][docs]")
{
    // The reader of the docs' tables, on a table of its own.
    const std::set<Shape> sample = documented_shapes("## Calls\n\n| Request | Reply |\n|---|---|\n"
                                                     "| `{a, B, [{C, D}]}` \\| `{a, B, E \\| x, F}` | `{ok, `x`}` |\n"
                                                     "| `b` | `{c, D}` |\n## Other\n| `{d, E}` | ok |\n"
                                                     "## Casts\n| `{e, F}` (as a call) | ok |\n");
    CHECK(sample == std::set<Shape>{{"a", 3}, {"a", 4}, {"b", 0}, {"e", 2}});

    const std::string path = source_dir() + "docs/PROTOCOL.md";
    CAPTURE(path);
    std::ifstream file(path);
    REQUIRE(file.good());
    std::stringstream text;
    text << file.rdbuf();
    const std::set<Shape> documented = documented_shapes(text.str());
    const std::set<Shape> decoded = table_shapes();
    for (const auto& [name, arity] : documented) {
        CAPTURE(name, arity);
        CHECK(decoded.count({name, arity}) == 1); // documented, and decoded
    }
    for (const auto& [name, arity] : decoded) {
        CAPTURE(name, arity);
        CHECK(documented.count({name, arity}) == 1); // decoded, and documented
    }
}

TEST_CASE("parse_pool_options: a pool's own cookie, an atom or a binary, never echoed when refused",
          "[requests][config_error][access]")
{
    // The options' bytes, which a refusal's views point into: kept by the caller while it reads the refusal.
    const auto cookie_options = [](const Build& value) {
        return term([&](EiTerm& t) {
            t.map(2).atom("max_connections").integer(1).atom("cookie");
            value(t);
        });
    };
    const auto with_cookie = [&](const Build& value) { return parse_pool_options(kTarget, cookie_options(value)); };
    CHECK(with_cookie([](EiTerm& t) { t.atom("other_domain"); })->cookie == "other_domain");
    CHECK(with_cookie([](EiTerm& t) { t.binary("S3cret!#"); })->cookie == "S3cret!#");
    CHECK(with_cookie([](EiTerm& t) { t.binary(std::string(255, 'c')); })->cookie.size() == 255);
    CHECK(options({{"max_connections", 1}})->cookie.empty()); // the C-node's own
    for (const Build& bad : std::vector<Build>{
             [](EiTerm& t) { t.binary(""); },
             [](EiTerm& t) { t.binary("has blank"); },
             [](EiTerm& t) { t.binary("tab\there"); },
             [](EiTerm& t) { t.binary("caf\xC3\xA9"); },
             [](EiTerm& t) { t.binary(std::string(256, 'c')); },
             [](EiTerm& t) { t.integer(42); },
             [](EiTerm& t) { t.list(1).atom("secret_cookie").nil(); },
         }) {
        const auto options_bytes = cookie_options(bad);
        const auto parsed = parse_pool_options(kTarget, options_bytes);
        REQUIRE_FALSE(parsed.has_value());
        CHECK(parsed.error().hide_value);
        const auto text = printed_config_error(parsed.error());
        CHECK(text.rfind("{bad_value,cookie,hidden,<<\"an atom or binary of 1..255 printable ASCII", 0) == 0);
        CHECK(text.find("secret") == std::string::npos);
        CHECK(text.find("blank") == std::string::npos);
    }
    // A misspelt key is still suggested.
    const auto misspelt = options_map({{"max_connections", 1}, {"coockie", 1}});
    CHECK(printed_config_error(parse_pool_options(kTarget, misspelt).error()) == "{unknown_option,coockie,{did_you_mean,cookie}}");
}

TEST_CASE("write_config_error: target_not_allowed names the target as it came", "[requests][config_error][access]")
{
    ConfigError e;
    e.kind = ConfigError::Kind::target_not_allowed;
    const auto target = term([](EiTerm& t) { t.atom("evil@example.com"); });
    e.term = target;
    CHECK(printed_config_error(e) == "{target_not_allowed,evil@example.com}");
}

TEST_CASE("parse_pool_options: a group member's options go over the group's", "[requests][group]")
{
    const auto base = options_map({{"max_connections", 4}, {"acquire_timeout_ms", 100}});
    const auto own = options_map({{"max_connections", 2}});
    const auto member = parse_pool_options(kTarget, own, base);
    REQUIRE(member.has_value());
    CHECK(member->max_connections == 2);
    CHECK(member->min_connections == 2); // the default follows the member's own max
    CHECK(member->acquire_timeout_ms == 100);
    // Nothing of its own: the group's.
    const auto plain = parse_pool_options(kTarget, options_map({}), base);
    REQUIRE(plain.has_value());
    CHECK(plain->max_connections == 4);
    // A member's own key is judged over the group's values: min above the group's max.
    const auto too_many = options_map({{"min_connections", 5}});
    CHECK(printed_config_error(parse_pool_options(kTarget, too_many, base).error()) ==
          "{bad_value,min_connections,5,<<\"an integer in 0..max_connections (4)\">>}");
    // Neither map gives max_connections.
    const auto empty = options_map({});
    CHECK(printed_config_error(parse_pool_options(kTarget, empty, empty).error()) == "{missing_option,max_connections}");
    // A group's bad options are refused as any pool's.
    const auto bad_base = options_map({{"max_conections", 1}});
    CHECK(printed_config_error(parse_pool_options(kTarget, own, bad_base).error()) ==
          "{unknown_option,max_conections,{did_you_mean,max_connections}}");
}

TEST_CASE("parse_group_options: strategy, name, owner, owner_grace_ms, anything else refused", "[requests][group]")
{
    const auto group = [](const std::function<void(EiTerm&)>& entries, long pairs) {
        EiTerm t;
        t.map(pairs);
        entries(t);
        return t.str();
    };
    const auto all = group([](EiTerm& t) {
        t.atom("strategy").atom("least_in_use").atom("name").atom("workers").atom("owner").atom("none");
        t.atom("owner_grace_ms").integer(7);
    }, 4);
    const auto parsed = parse_group_options(all);
    REQUIRE(parsed.has_value());
    CHECK(parsed->strategy == dpool::pool::Strategy::least_in_use);
    CHECK(parsed->name == "workers");
    CHECK(parsed->ownerless);
    CHECK(parsed->owner_grace_ms == 7);
    const auto defaults = parse_group_options(group([](EiTerm&) {}, 0));
    REQUIRE(defaults.has_value());
    CHECK(defaults->strategy == dpool::pool::Strategy::round_robin);
    CHECK_FALSE(defaults->ownerless);
    const auto random = group([](EiTerm& t) { t.atom("strategy").atom("random"); }, 1);
    CHECK(printed_config_error(parse_group_options(random).error()) ==
          "{bad_value,strategy,random,<<\"round_robin or least_in_use\">>}");
    const auto pool_key = group([](EiTerm& t) { t.atom("max_connections").integer(1); }, 1);
    CHECK(printed_config_error(parse_group_options(pool_key).error()) == "{unknown_option,max_connections}");
    const auto twice = group([](EiTerm& t) {
        t.atom("strategy").atom("round_robin").atom("strategy").atom("round_robin");
    }, 2);
    CHECK(printed_config_error(parse_group_options(twice).error()) == "{duplicate_option,strategy}");
    const auto bad_name = group([](EiTerm& t) { t.atom("name").integer(1); }, 1);
    CHECK(printed_config_error(parse_group_options(bad_name).error()).rfind("{bad_value,name,1,", 0) == 0);
    CHECK(printed_config_error(parse_group_options(term([](EiTerm& t) { t.atom("opts"); })).error()) == "{bad_options,opts}");
}
