//! pollgate's packet pipeline: typed views over packet bytes, the `Batch`
//! of packets a worker moves per burst, and the stages that decide where
//! each packet goes. Pure: no threads, no syscalls, no `unsafe`.

#![forbid(unsafe_code)]

pub mod acl;
pub mod arp_suppress;
pub mod batch;
pub mod bridge;
pub mod cache_size;
pub mod conntrack;
pub mod frame;
pub mod ipvlan;
pub mod l3;
pub mod mac_table;
pub mod macvlan;
pub mod nat;
pub mod parse;
pub mod pipeline;
mod slot_table;
pub mod stage;
pub mod storm;
pub mod template;
pub mod verdict;
pub mod vlan;
pub mod vxlan;
pub mod wire;
pub mod xconnect;

pub use batch::{Batch, BATCH_SIZE};
pub use frame::FrameMemory;
pub use parse::{parse_frame, Parse, Parsed};
pub use pipeline::Pipeline;
pub use stage::Stage;
pub use verdict::{DomainId, DropCounters, DropReason, PortId, Verdict};
pub use xconnect::{CrossConnect, ForwardMode};
