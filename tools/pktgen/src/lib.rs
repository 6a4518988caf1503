//! pollgate-pktgen: an AF_XDP traffic generator and receiver driven by a
//! traffic spec, and the renderer of the same spec into TRex and
//! pktgen-DPDK profiles for bare-metal testers.

pub mod dump;
pub mod frame;
pub mod generator;
pub mod layout;
pub mod pktgen_dpdk;
pub mod receiver;
pub mod report;
pub mod search;
pub mod spec;
pub mod stamp;
pub mod trex;
