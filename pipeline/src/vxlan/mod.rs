//! VXLAN (RFC 7348): a VTEP on an underlay port, bridge domains mapped to
//! VNIs, remote VTEPs as tunnel ports of the bridge, head-end replication
//! of floods.

pub mod decap;
pub mod encap;
pub mod vtep;

pub use decap::Decap;
pub use encap::{encap, Encap, Template};
pub use vtep::{Vtep, VtepConfig, FLOOD_TUNNELS, MAX_REMOTES, OVERHEAD, TUNNEL_BASE};
