//! Kernel ABI for AF_XDP (linux/if_xdp.h) and the parts of the bpf(2)
//! ABI pollgate uses (linux/bpf.h), written out so the layout in use is
//! visible and independent of the libc crate's version.

pub const SOL_XDP: libc::c_int = 283;

// setsockopt/getsockopt names.
pub const XDP_MMAP_OFFSETS: libc::c_int = 1;
pub const XDP_RX_RING: libc::c_int = 2;
pub const XDP_TX_RING: libc::c_int = 3;
pub const XDP_UMEM_REG: libc::c_int = 4;
pub const XDP_UMEM_FILL_RING: libc::c_int = 5;
pub const XDP_UMEM_COMPLETION_RING: libc::c_int = 6;
pub const XDP_STATISTICS: libc::c_int = 7;
pub const XDP_OPTIONS: libc::c_int = 8;

// sockaddr_xdp.sxdp_flags.
pub const XDP_SHARED_UMEM: u16 = 1 << 0;
pub const XDP_COPY: u16 = 1 << 1;
pub const XDP_ZEROCOPY: u16 = 1 << 2;
pub const XDP_USE_NEED_WAKEUP: u16 = 1 << 3;
/// Multi-buffer: a packet larger than a frame spans several descriptors
/// (Linux 6.6+).
pub const XDP_USE_SG: u16 = 1 << 4;

/// xdp_desc.options bit: the packet continues in the next descriptor.
pub const XDP_PKT_CONTD: u32 = 1 << 0;

/// bpf_attr.prog_flags bit: the XDP program handles multi-buffer packets
/// (`xdp.frags`), which a device with an MTU above a page requires.
pub const BPF_F_XDP_HAS_FRAGS: u32 = 1 << 5;

/// xdp_ring_offset.flags bit: the kernel wants a syscall to make progress.
pub const XDP_RING_NEED_WAKEUP: u32 = 1 << 0;
/// xdp_options.flags bit: the socket is bound in zero-copy mode.
pub const XDP_OPTIONS_ZEROCOPY: u32 = 1 << 0;

// mmap page offsets of the four rings.
pub const XDP_PGOFF_RX_RING: libc::off_t = 0;
pub const XDP_PGOFF_TX_RING: libc::off_t = 0x8000_0000;
pub const XDP_UMEM_PGOFF_FILL_RING: libc::off_t = 0x1_0000_0000;
pub const XDP_UMEM_PGOFF_COMPLETION_RING: libc::off_t = 0x1_8000_0000;

/// Headroom the kernel keeps in front of every received frame
/// (XDP_PACKET_HEADROOM), on top of the UMEM's own headroom.
pub const XDP_PACKET_HEADROOM: u32 = 256;

#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct SockaddrXdp {
    pub family: u16,
    pub flags: u16,
    pub ifindex: u32,
    pub queue_id: u32,
    pub shared_umem_fd: u32,
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct XdpUmemReg {
    pub addr: u64,
    pub len: u64,
    pub chunk_size: u32,
    pub headroom: u32,
    pub flags: u32,
    pub tx_metadata_len: u32,
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct XdpRingOffset {
    pub producer: u64,
    pub consumer: u64,
    pub desc: u64,
    pub flags: u64,
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct XdpMmapOffsets {
    pub rx: XdpRingOffset,
    pub tx: XdpRingOffset,
    pub fr: XdpRingOffset,
    pub cr: XdpRingOffset,
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct XdpDesc {
    pub addr: u64,
    pub len: u32,
    pub options: u32,
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct XdpStatistics {
    pub rx_dropped: u64,
    pub rx_invalid_descs: u64,
    pub tx_invalid_descs: u64,
    pub rx_ring_full: u64,
    pub rx_fill_ring_empty_descs: u64,
    pub tx_ring_empty_descs: u64,
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct XdpOptions {
    pub flags: u32,
}

// bpf(2) commands.
pub const BPF_MAP_CREATE: libc::c_int = 0;
pub const BPF_MAP_UPDATE_ELEM: libc::c_int = 2;
pub const BPF_MAP_DELETE_ELEM: libc::c_int = 3;
pub const BPF_PROG_LOAD: libc::c_int = 5;
pub const BPF_PROG_GET_FD_BY_ID: libc::c_int = 13;
pub const BPF_OBJ_GET_INFO_BY_FD: libc::c_int = 15;
pub const BPF_LINK_CREATE: libc::c_int = 28;

pub const BPF_MAP_TYPE_XSKMAP: u32 = 17;
pub const BPF_PROG_TYPE_XDP: u32 = 6;
pub const BPF_XDP: u32 = 37;
pub const BPF_PROG_TYPE_SCHED_CLS: u32 = 3;
/// tcx egress attach (Linux 6.6+): a bpf_link on a device's TX path.
pub const BPF_TCX_EGRESS: u32 = 47;

// XDP attach flags (linux/if_link.h).
pub const XDP_FLAGS_UPDATE_IF_NOEXIST: u32 = 1 << 0;
pub const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
pub const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;
/// Replace only the program given as IFLA_XDP_EXPECTED_FD, atomically.
pub const XDP_FLAGS_REPLACE: u32 = 1 << 4;

/// `union bpf_attr` is 144+ bytes on current kernels; every command reads
/// a prefix of it and the kernel requires the rest to be zero, so each
/// command's struct is padded to this size.
pub const BPF_ATTR_SIZE: usize = 128;

#[repr(C)]
pub struct MapCreateAttr {
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub map_flags: u32,
    pub inner_map_fd: u32,
    pub numa_node: u32,
    pub map_name: [u8; 16],
    pub _pad: [u8; BPF_ATTR_SIZE - 44],
}

#[repr(C)]
pub struct MapElemAttr {
    pub map_fd: u32,
    pub _pad0: u32,
    pub key: u64,
    pub value: u64,
    pub flags: u64,
    pub _pad: [u8; BPF_ATTR_SIZE - 32],
}

#[repr(C)]
pub struct ProgLoadAttr {
    pub prog_type: u32,
    pub insn_cnt: u32,
    pub insns: u64,
    pub license: u64,
    pub log_level: u32,
    pub log_size: u32,
    pub log_buf: u64,
    pub kern_version: u32,
    pub prog_flags: u32,
    pub prog_name: [u8; 16],
    pub prog_ifindex: u32,
    pub expected_attach_type: u32,
    pub _pad: [u8; BPF_ATTR_SIZE - 72],
}

#[repr(C)]
pub struct LinkCreateAttr {
    pub prog_fd: u32,
    pub target_ifindex: u32,
    pub attach_type: u32,
    pub flags: u32,
    pub _pad: [u8; BPF_ATTR_SIZE - 16],
}

#[repr(C)]
pub struct InfoByFdAttr {
    pub bpf_fd: u32,
    pub info_len: u32,
    pub info: u64,
    pub _pad: [u8; BPF_ATTR_SIZE - 16],
}

/// `BPF_PROG_GET_FD_BY_ID`'s attributes.
#[repr(C)]
pub struct GetFdByIdAttr {
    pub prog_id: u32,
    pub next_id: u32,
    pub open_flags: u32,
    pub _pad: [u8; BPF_ATTR_SIZE - 12],
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::size_of;

    #[test]
    fn abi_sizes_match_the_kernel_headers() {
        assert_eq!(size_of::<SockaddrXdp>(), 16);
        assert_eq!(size_of::<XdpUmemReg>(), 32);
        assert_eq!(size_of::<XdpMmapOffsets>(), 128);
        assert_eq!(size_of::<XdpDesc>(), 16);
        assert_eq!(size_of::<XdpStatistics>(), 48);
        assert_eq!(size_of::<MapCreateAttr>(), BPF_ATTR_SIZE);
        assert_eq!(size_of::<MapElemAttr>(), BPF_ATTR_SIZE);
        assert_eq!(size_of::<ProgLoadAttr>(), BPF_ATTR_SIZE);
        assert_eq!(size_of::<LinkCreateAttr>(), BPF_ATTR_SIZE);
        assert_eq!(size_of::<GetFdByIdAttr>(), BPF_ATTR_SIZE);
        assert_eq!(std::mem::offset_of!(ProgLoadAttr, expected_attach_type), 68);
        assert_eq!(std::mem::offset_of!(MapCreateAttr, map_name), 28);
    }
}
