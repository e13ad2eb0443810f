#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_set>

namespace dpool::api {

// The callers the allow-list refused, for the log and `info`. A refusal comes before the cookie is checked,
// so anyone who can reach a lane can make them under any name: each name is logged once, and the names
// already logged are kept up to a bound; beyond it refusals are counted only.
class RefusedCallers {
public:
    static constexpr std::size_t kDefaultMaxNames = 1024;

    explicit RefusedCallers(std::size_t max_names = kDefaultMaxNames) : max_names_(max_names) {}

    enum class Log : std::uint8_t {
        first,      // the first refusal of this name: log it
        again,      // logged before
        table_full, // a new name, but the table is full: counted only (`unlogged`)
    };
    Log record(std::string_view node)
    {
        ++count_;
        if (logged_.contains(std::string(node))) {
            return Log::again;
        }
        if (logged_.size() >= max_names_) {
            ++unlogged_;
            return Log::table_full;
        }
        logged_.emplace(node);
        return Log::first;
    }

    std::uint64_t count() const { return count_; }
    // Refusals of names that were never logged because the table was full.
    std::uint64_t unlogged() const { return unlogged_; }
    std::size_t names() const { return logged_.size(); }

private:
    std::size_t max_names_;
    std::unordered_set<std::string> logged_;
    std::uint64_t count_ = 0;
    std::uint64_t unlogged_ = 0;
};

} // namespace dpool::api
