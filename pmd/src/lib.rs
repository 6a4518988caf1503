//! pollgate's poll-mode drivers. Every `unsafe` block and every syscall of
//! the project lives in this crate, each with a `SAFETY:` note stating the
//! invariant it relies on.

pub mod afxdp;
pub mod any_port;
pub mod background;
pub mod cleanup;
pub mod core_clock;
pub mod device;
pub mod ethtool;
pub mod huge_alloc;
pub mod mac_filter;
pub mod mmap;
pub mod netlink;
pub mod netns;
pub mod null_port;
pub mod packet_socket;
pub mod pcap;
pub mod pcap_port;
pub mod pool;
pub mod port;
pub mod prefetch;
pub mod privileges;
pub mod ring_port;
pub mod spsc;
pub mod stall;
pub mod tap;
pub mod veth;
pub mod veth_peer;

pub use any_port::AnyPort;
pub use huge_alloc::HugePageAlloc;
pub use null_port::NullPort;
pub use pcap_port::PcapPort;
pub use pool::{FramePool, PoolConfig, UmemLayout};
pub use port::{AfXdpMode, Port, PortCounters, PortInfo, PortStats, SharedCounters, TxDesc};
pub use ring_port::{ring_pair, RingPort};

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum PmdError {
    #[error("invalid frame pool geometry: {field}: {reason}")]
    Geometry { field: &'static str, reason: String },
    #[error("cannot map frame pool memory: {0}")]
    Mmap(std::io::Error),
    #[error("{path}: {source}", path = .path.display())]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{dev}: {source}")]
    Device { dev: String, source: std::io::Error },
}
