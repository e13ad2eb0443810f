#pragma once

#include <algorithm>
#include <string>
#include <string_view>
#include <utility>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace dpool::log {

// What a line is about, written in front of its text as `[pool=orders target=t@host connection=x
// caller=c@host] `: a reader sees it, and the library turns it into logger metadata (README, "Logs"). Fields
// left empty are left out.
struct About {
    std::string_view pool{};       // the pool's name, or its id
    std::string_view target{};     // a pool's target node
    std::string_view connection{}; // a pooled connection's node name
    std::string_view caller{};     // a caller node
};

// `value` with each byte outside [A-Za-z0-9_@.:-] as %XX: a field can never end the bracket or hold a space,
// whatever a pool's name (an atom) holds.
inline std::string escape(std::string_view value)
{
    std::string out;
    out.reserve(value.size());
    for (const char c : value) {
        const auto u = static_cast<unsigned char>(c);
        const bool plain = (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || (u >= '0' && u <= '9') || u == '_' ||
                           u == '@' || u == '.' || u == ':' || u == '-';
        if (plain) {
            out.push_back(c);
        } else {
            out += fmt::format("%{:02X}", u);
        }
    }
    return out;
}

// `text` as one line: its control characters (a newline in a caller's pool name or path) written as spaces, so
// that no text from outside can make a line of its own for whoever reads the C-node's output.
inline void to_one_line(std::string& text)
{
    std::replace_if(text.begin(), text.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20; }, ' ');
}

inline std::string about_text(const About& about)
{
    std::string out;
    const auto field = [&](std::string_view key, std::string_view value) {
        if (value.empty()) {
            return;
        }
        out += out.empty() ? "[" : " ";
        out += key;
        out += '=';
        out += escape(value);
    };
    field("pool", about.pool);
    field("target", about.target);
    field("connection", about.connection);
    field("caller", about.caller);
    if (!out.empty()) {
        out += "] ";
    }
    return out;
}

// One line at `level`, about `about`.
template <class... Args>
void write(spdlog::level::level_enum level, const About& about, fmt::format_string<Args...> format, Args&&... args)
{
    if (!spdlog::should_log(level)) {
        return;
    }
    spdlog::log(level, "{}{}", about_text(about), fmt::format(format, std::forward<Args>(args)...));
}

} // namespace dpool::log
