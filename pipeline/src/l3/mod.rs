//! Layer 3: the routed interfaces of bridge domains (IRB), the FIB,
//! next hops, neighbours (ARP, ND), and the router stage that forwards
//! between them and answers for pollgate's own addresses.

pub mod csum;
pub mod fib;
pub mod icmp;
pub mod interface;
pub mod nd;
pub mod neighbor;
pub mod nexthop;
mod recent;
pub mod router;
pub mod routes;
pub mod tables;
pub mod trie;

pub use fib::{FamilyFib, Prefix, PrefixError};
pub use interface::{Interfaces, L3Interface};
pub use neighbor::{NeighborEntry, NeighborState, NeighborTable};
pub use nexthop::{NextHop, NextHops};
pub use router::{Router, ROUTER_PORT};
pub use routes::{Route, RouteError, RouteTable, RouteView, Source, Target};
pub use tables::L3Tables;
pub use trie::{NextHopId, StrideTrie, TrieError, NO_ROUTE};
