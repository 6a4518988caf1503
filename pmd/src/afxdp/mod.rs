//! AF_XDP: pollgate's own ring layer over libc, its own XDP program
//! emitted from Rust and loaded with bpf(2), and the port built on them.

pub mod attach;
pub mod bpf;
pub mod port;
pub mod ring;
pub mod socket;
pub mod sys;
pub mod xdp_prog;

pub use attach::{XdpAttachment, XdpCheck, XdpMode};
pub use port::{needs_multi_buffer, AfXdpConfig, AfXdpPort, L2_OVERHEAD};
pub use socket::BindMode;
pub use xdp_prog::Steer;
