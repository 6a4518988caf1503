//! pollgate's XDP program, emitted as BPF instructions: no clang, libbpf
//! or libxdp at build or run time. It does what libxdp's default program
//! does for AF_XDP:
//!
//! ```c
//! return bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);
//! ```
//!
//! A queue with a socket in the XSKMAP goes to that socket; any other
//! queue's traffic goes on to the kernel stack (the low bits of the flags
//! argument are the action when the lookup fails, since Linux 5.3).

/// One `struct bpf_insn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct Insn {
    pub code: u8,
    /// dst_reg in the low nibble, src_reg in the high nibble.
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

const BPF_LDX_MEM_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const BPF_LD_IMM_DW: u8 = 0x18; // BPF_LD | BPF_IMM | BPF_DW
const BPF_MOV64_IMM: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
const BPF_CALL: u8 = 0x85; // BPF_JMP | BPF_CALL
const BPF_EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT
/// src_reg of a 64-bit immediate load that names a map by fd.
const BPF_PSEUDO_MAP_FD: u8 = 1;
const FUNC_REDIRECT_MAP: i32 = 51;
/// Offset of rx_queue_index in `struct xdp_md`.
const XDP_MD_RX_QUEUE_INDEX: i16 = 16;
pub const XDP_PASS: i32 = 2;

const fn regs(dst: u8, src: u8) -> u8 {
    (src << 4) | (dst & 0x0f)
}

const FUNC_SKB_VLAN_PUSH: i32 = 18;
/// tcx: let the packet go on.
const TCX_PASS: i32 = 0;

/// A tc program (not XDP) for tests: `bpf_skb_vlan_push(skb,
/// htons(0x8100), tci); return TCX_PASS;`. On a device's egress it tags
/// every frame in skb metadata, as a VLAN device with TX VLAN offload
/// does, so a test can show what a peer's VLAN offload does to the tags
/// XDP sees, on a kernel without the 802.1Q module.
pub fn vlan_push(tci: u16) -> Vec<Insn> {
    vec![
        // r1 = ctx already; r2 = htons(ETH_P_8021Q) as the helper takes it
        Insn {
            code: BPF_MOV64_IMM,
            regs: regs(2, 0),
            off: 0,
            imm: i32::from(u16::from_be(0x8100)),
        },
        Insn {
            code: BPF_MOV64_IMM,
            regs: regs(3, 0),
            off: 0,
            imm: i32::from(tci),
        },
        Insn {
            code: BPF_CALL,
            regs: 0,
            off: 0,
            imm: FUNC_SKB_VLAN_PUSH,
        },
        Insn {
            code: BPF_MOV64_IMM,
            regs: regs(0, 0),
            off: 0,
            imm: TCX_PASS,
        },
        Insn {
            code: BPF_EXIT,
            regs: 0,
            off: 0,
            imm: 0,
        },
    ]
}

/// `return XDP_PASS;`: the smallest XDP program.
pub fn pass_all() -> Vec<Insn> {
    vec![
        Insn {
            code: BPF_MOV64_IMM,
            regs: regs(0, 0),
            off: 0,
            imm: XDP_PASS,
        },
        Insn {
            code: BPF_EXIT,
            regs: 0,
            off: 0,
            imm: 0,
        },
    ]
}

/// The redirect program for the XSKMAP with file descriptor `map_fd`.
pub fn redirect_to_xskmap(map_fd: i32) -> Vec<Insn> {
    vec![
        // r2 = ctx->rx_queue_index
        Insn {
            code: BPF_LDX_MEM_W,
            regs: regs(2, 1),
            off: XDP_MD_RX_QUEUE_INDEX,
            imm: 0,
        },
        // r1 = &xsks (two instruction slots)
        Insn {
            code: BPF_LD_IMM_DW,
            regs: regs(1, BPF_PSEUDO_MAP_FD),
            off: 0,
            imm: map_fd,
        },
        Insn {
            code: 0,
            regs: 0,
            off: 0,
            imm: 0,
        },
        // r3 = XDP_PASS: the action when no socket is at that index
        Insn {
            code: BPF_MOV64_IMM,
            regs: regs(3, 0),
            off: 0,
            imm: XDP_PASS,
        },
        // r0 = bpf_redirect_map(r1, r2, r3)
        Insn {
            code: BPF_CALL,
            regs: 0,
            off: 0,
            imm: FUNC_REDIRECT_MAP,
        },
        // return r0
        Insn {
            code: BPF_EXIT,
            regs: 0,
            off: 0,
            imm: 0,
        },
    ]
}

/// Program name shown by `bpftool prog` and checked before pollgate
/// removes a program it finds on an interface.
pub const PROG_NAME: &[u8; 16] = b"pollgate_xsk\0\0\0\0";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_the_kernel_macros() {
        let p = redirect_to_xskmap(7);
        assert_eq!(std::mem::size_of::<Insn>(), 8);
        assert_eq!(p.len(), 6);
        // BPF_LDX_MEM(BPF_W, BPF_REG_2, BPF_REG_1, 16)
        assert_eq!(
            p[0],
            Insn {
                code: 0x61,
                regs: 0x12,
                off: 16,
                imm: 0
            }
        );
        // BPF_LD_MAP_FD(BPF_REG_1, 7)
        assert_eq!(
            p[1],
            Insn {
                code: 0x18,
                regs: 0x11,
                off: 0,
                imm: 7
            }
        );
        assert_eq!(
            p[3],
            Insn {
                code: 0xb7,
                regs: 0x03,
                off: 0,
                imm: 2
            }
        );
        assert_eq!(p[4].imm, 51);
        assert_eq!(p[5].code, 0x95);
    }
}
