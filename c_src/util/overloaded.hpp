#pragma once

namespace dpool::util {

// The lambdas of a std::visit, one per alternative, as one callable.
template <class... Ts>
struct Overloaded : Ts... {
    using Ts::operator()...;
};
template <class... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;

} // namespace dpool::util
