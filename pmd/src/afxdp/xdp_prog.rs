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

/// Which frames the program gives to pollgate's sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Steer {
    /// Every frame of a queue with a socket (the device is pollgate's).
    #[default]
    All,
    /// Only what the VTEP at `ip` must see: UDP to `ip`, unless it is a
    /// whole datagram (no IP options, not a fragment) to another port
    /// than `udp_port`. Everything else (ARP, the host's own TCP and UDP,
    /// IPv6) goes on to the kernel stack, which keeps the address and
    /// its neighbours: the host's BGP session shares the underlay.
    /// VXLAN to `ip` that finds no socket is dropped, not passed: the
    /// kernel's own VXLAN device (the EVPN mirror's) must never see one.
    Vxlan { ip: [u8; 4], udp_port: u16 },
}

const BPF_LDX_MEM_H: u8 = 0x69;
const BPF_LDX_MEM_B: u8 = 0x71;
const BPF_MOV64_X: u8 = 0xbf;
const BPF_ADD64_IMM: u8 = 0x07;
const BPF_AND32_IMM: u8 = 0x54;
/// Unsigned `dst > src` on 64-bit registers (packet pointers).
const BPF_JGT_X: u8 = 0x2d;
/// `dst != imm` on the low 32 bits (BPF_JMP32: an immediate with its top
/// bit set is not sign-extended into a mismatch).
const BPF_JNE32_IMM: u8 = 0x56;
const XDP_MD_DATA: i16 = 0;
const XDP_MD_DATA_END: i16 = 4;
pub const XDP_DROP: i32 = 1;

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: regs(dst, src),
        off,
        imm,
    }
}

/// The program for `steer` over the XSKMAP `map_fd`.
pub fn program(map_fd: i32, steer: Steer) -> Vec<Insn> {
    match steer {
        Steer::All => redirect_to_xskmap(map_fd),
        Steer::Vxlan { ip, udp_port } => steer_vxlan(map_fd, ip, udp_port),
    }
}

/// The [`Steer::Vxlan`] filter, then the redirect. In C:
///
/// ```c
/// if (data + 34 > data_end || eth->proto != htons(ETH_P_IP)
///     || ip->protocol != IPPROTO_UDP || ip->daddr != VTEP) return XDP_PASS;
/// if (ip->ihl_version == 0x45 && !(ip->frag_off & htons(0x3fff))
///     && data + 42 <= data_end && udp->dest != htons(PORT)) return XDP_PASS;
/// return bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_DROP);
/// ```
fn steer_vxlan(map_fd: i32, ip: [u8; 4], udp_port: u16) -> Vec<Insn> {
    // Loads read packet bytes in the machine's order: compare against
    // the wire bytes read the same way.
    let ethertype = i32::from(u16::from_ne_bytes([0x08, 0x00]));
    let daddr = u32::from_ne_bytes(ip) as i32;
    let no_frag = i32::from(u16::from_ne_bytes([0x3f, 0xff]));
    let port = i32::from(u16::from_ne_bytes(udp_port.to_be_bytes()));
    // Jumps are patched once the labels are known: (index, label).
    const PASS: u8 = 0;
    const REDIRECT: u8 = 1;
    let mut p: Vec<Insn> = Vec::new();
    let mut fix: Vec<(usize, u8)> = Vec::new();
    let mut jump = |p: &mut Vec<Insn>, i: Insn, to: u8| {
        fix.push((p.len(), to));
        p.push(i);
    };
    p.push(insn(BPF_MOV64_X, 6, 1, 0, 0)); // r6 = ctx
    p.push(insn(BPF_LDX_MEM_W, 2, 1, XDP_MD_DATA, 0)); // r2 = data
    p.push(insn(BPF_LDX_MEM_W, 3, 1, XDP_MD_DATA_END, 0)); // r3 = data_end
    p.push(insn(BPF_MOV64_X, 4, 2, 0, 0));
    p.push(insn(BPF_ADD64_IMM, 4, 0, 0, 34)); // r4 = data + 34
    jump(&mut p, insn(BPF_JGT_X, 4, 3, 0, 0), PASS);
    p.push(insn(BPF_LDX_MEM_H, 5, 2, 12, 0));
    jump(&mut p, insn(BPF_JNE32_IMM, 5, 0, 0, ethertype), PASS);
    p.push(insn(BPF_LDX_MEM_B, 5, 2, 23, 0));
    jump(&mut p, insn(BPF_JNE32_IMM, 5, 0, 0, 17), PASS);
    p.push(insn(BPF_LDX_MEM_W, 5, 2, 30, 0));
    jump(&mut p, insn(BPF_JNE32_IMM, 5, 0, 0, daddr), PASS);
    // UDP to the VTEP: pollgate's unless plainly to another port.
    p.push(insn(BPF_LDX_MEM_B, 5, 2, 14, 0));
    jump(&mut p, insn(BPF_JNE32_IMM, 5, 0, 0, 0x45), REDIRECT);
    p.push(insn(BPF_LDX_MEM_H, 5, 2, 20, 0));
    p.push(insn(BPF_AND32_IMM, 5, 0, 0, no_frag));
    jump(&mut p, insn(BPF_JNE32_IMM, 5, 0, 0, 0), REDIRECT);
    p.push(insn(BPF_MOV64_X, 4, 2, 0, 0));
    p.push(insn(BPF_ADD64_IMM, 4, 0, 0, 42)); // r4 = data + 42
    jump(&mut p, insn(BPF_JGT_X, 4, 3, 0, 0), REDIRECT);
    p.push(insn(BPF_LDX_MEM_H, 5, 2, 36, 0));
    jump(&mut p, insn(BPF_JNE32_IMM, 5, 0, 0, port), PASS);
    let redirect = p.len();
    p.push(insn(BPF_LDX_MEM_W, 2, 6, XDP_MD_RX_QUEUE_INDEX, 0));
    p.push(insn(BPF_LD_IMM_DW, 1, BPF_PSEUDO_MAP_FD, 0, map_fd));
    p.push(insn(0, 0, 0, 0, 0));
    p.push(insn(BPF_MOV64_IMM, 3, 0, 0, XDP_DROP));
    p.push(insn(BPF_CALL, 0, 0, 0, FUNC_REDIRECT_MAP));
    p.push(insn(BPF_EXIT, 0, 0, 0, 0));
    let pass = p.len();
    p.push(insn(BPF_MOV64_IMM, 0, 0, 0, XDP_PASS));
    p.push(insn(BPF_EXIT, 0, 0, 0, 0));
    for (at, to) in fix {
        let target = if to == PASS { pass } else { redirect };
        p[at].off = (target - at - 1) as i16;
    }
    p
}

/// Program name shown by `bpftool prog` and checked before pollgate
/// removes a program it finds on an interface.
pub const PROG_NAME: &[u8; 16] = b"pollgate_xsk\0\0\0\0";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vxlan_filter_jumps_inside_itself() {
        let p = program(
            9,
            Steer::Vxlan {
                ip: [198, 18, 0, 200],
                udp_port: 4789,
            },
        );
        for (i, x) in p.iter().enumerate() {
            if x.code == BPF_JGT_X || x.code == BPF_JNE32_IMM {
                let to = i as i64 + 1 + i64::from(x.off);
                assert!(to > i as i64 && (to as usize) < p.len(), "jump at {i}");
            }
        }
        // The address compares as the wire's bytes load: 198.18.0.200.
        let want = u32::from_ne_bytes([198, 18, 0, 200]) as i32;
        assert!(p.iter().any(|x| x.code == BPF_JNE32_IMM && x.imm == want));
        assert_eq!(p.last().map(|x| x.code), Some(BPF_EXIT));
        assert_eq!(program(9, Steer::All), redirect_to_xskmap(9));
    }

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
