//! NAT44 at the router's hooks, as netfilter places it: DNAT of
//! published ports in prerouting (before the route lookup, so the new
//! destination is what is routed), SNAT / masquerade in postrouting
//! (after it, once the egress interface is known). Sessions are entries
//! of the worker's flow table (`conntrack`), the one the stateful ACL
//! keeps; mappings are endpoint-independent (RFC 4787 REQ-1, RFC 5382
//! REQ-1) and filtering address-and-port-dependent, as Linux conntrack
//! filters: only a session's peer gets back in, or a published port.

pub mod ports;
pub mod rewrite;
pub mod rules;
pub mod sources;
pub mod stage;

pub use ports::{PortPool, Share};
pub use rules::{Masquerade, NatRules, Publish, PublishError};
pub use sources::SourceCounts;
pub use stage::{Nat, NatCounters, NatSession, Pre};
