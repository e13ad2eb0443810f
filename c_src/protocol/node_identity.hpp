#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "protocol/term_reader.hpp"
#include "protocol/term_writer.hpp"

namespace dpool::protocol {

// One distribution identity: a node name and the creation it announced in its handshake. The C-node's own
// name is one identity; every pooled connection is another. Pids and references it hands out must carry
// exactly that name and creation, or the peer treats them as belonging to a dead incarnation and drops what
// is sent to them.
class NodeIdentity {
public:
    NodeIdentity(std::string node_name, std::uint32_t creation, std::uint32_t ref_salt);

    const std::string& node_name() const { return node_name_; }
    std::uint32_t creation() const { return creation_; }

    // The identity's one process: the sender of its messages and the owner of its monitors.
    std::string_view self_pid() const { return self_pid_; }

    // Mints a reference numbered `counter`; ref_number() gives the number back for a reference of ours.
    void write_ref(TermWriter& out, std::uint64_t counter) const;
    std::optional<std::uint64_t> ref_number(const RefView& ref) const;

private:
    std::string node_name_;
    std::uint32_t creation_;
    std::uint32_t ref_salt_;
    std::string self_pid_;     // encoded pid term
    std::string ref_template_; // encoded reference term; its three id words are patched per reference
};

// Splits "alive@host"; both parts must be non-empty, the alive part [A-Za-z0-9_-], the whole at most 255 bytes.
struct NodeName {
    std::string_view alive;
    std::string_view host;
};
std::optional<NodeName> parse_node_name(std::string_view name);
// Whether two host names are the same host name: without case, as DNS compares them.
bool same_host(std::string_view a, std::string_view b);
// Whether two node names reach the same node through epmd: the same alive part on the same host name.
// Malformed names are never the same.
bool same_node(std::string_view a, std::string_view b);

} // namespace dpool::protocol
