//! Static cross-connect (port A ↔ port B), the forwarding of testpmd's
//! `io` and `mac` modes. It stands in for the bridge until MAC learning
//! lands, and stays as the fastest way to wire two ports together.

use crate::batch::Batch;
use crate::frame::FrameMemory;
use crate::stage::Stage;
use crate::verdict::{DropCounters, DropReason, PortId, Verdict};
use crate::wire::{EthernetFrame, MacAddr};

/// How a cross-connect touches the frames it forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ForwardMode {
    /// Frames leave exactly as they came (testpmd `io`).
    #[default]
    Io,
    /// Source MAC := output port's MAC, destination MAC := the peer MAC
    /// configured for the output port (testpmd `mac`).
    Mac,
}

/// Output port and MAC rewrite for each ingress port.
#[derive(Debug, Clone)]
pub struct CrossConnect {
    mode: ForwardMode,
    /// Indexed by ingress port.
    out: Vec<Option<PortId>>,
    /// Indexed by egress port: (source MAC, destination MAC) in `mac` mode.
    rewrite: Vec<(MacAddr, MacAddr)>,
}

impl CrossConnect {
    /// `ports` is the number of ports in the engine's table.
    pub fn new(mode: ForwardMode, ports: usize) -> Self {
        CrossConnect {
            mode,
            out: vec![None; ports],
            rewrite: vec![(MacAddr::default(), MacAddr::default()); ports],
        }
    }

    /// Connects `a` and `b` both ways.
    pub fn connect(&mut self, a: PortId, b: PortId) {
        self.out[a as usize] = Some(b);
        self.out[b as usize] = Some(a);
    }

    /// MACs written on frames leaving `port` in `mac` mode.
    pub fn set_rewrite(&mut self, port: PortId, src: MacAddr, dst: MacAddr) {
        self.rewrite[port as usize] = (src, dst);
    }

    pub fn mode(&self) -> ForwardMode {
        self.mode
    }

    pub fn peer(&self, port: PortId) -> Option<PortId> {
        self.out.get(port as usize).copied().flatten()
    }
}

impl Stage for CrossConnect {
    fn process<M: FrameMemory + ?Sized>(
        &mut self,
        batch: &mut Batch,
        mem: &mut M,
        drops: &mut DropCounters,
    ) {
        for i in 0..batch.len() {
            if batch.verdict[i] != Verdict::Pending {
                continue;
            }
            let Some(out) = self.peer(batch.in_port[i]) else {
                batch.verdict[i] = Verdict::Drop(DropReason::NoRoute);
                drops.count(DropReason::NoRoute);
                continue;
            };
            if self.mode == ForwardMode::Mac {
                let frame = mem
                    .bytes_mut(batch.addr[i], batch.data_len[i])
                    .and_then(|b| EthernetFrame::new_checked(b).ok());
                let Some(mut frame) = frame else {
                    batch.verdict[i] = Verdict::Drop(DropReason::RuntFrame);
                    drops.count(DropReason::RuntFrame);
                    continue;
                };
                let (src, dst) = self.rewrite[out as usize];
                frame.set_dst(dst);
                frame.set_src(src);
            }
            batch.verdict[i] = Verdict::Forward(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch_of(mem: &mut Vec<u8>, ports: &[PortId]) -> Batch {
        let mut b = Batch::new();
        for (i, p) in ports.iter().enumerate() {
            let addr = mem.len() as u64;
            mem.extend_from_slice(&[0xaa; 60]);
            mem[addr as usize + 12] = 0x08;
            mem[addr as usize + 13] = 0x00;
            assert!(b.push(addr, 60, 0, *p), "slot {i}");
        }
        b
    }

    #[test]
    fn io_forwards_untouched_and_drops_unconnected() {
        let mut xc = CrossConnect::new(ForwardMode::Io, 3);
        xc.connect(0, 1);
        let mut mem = Vec::new();
        let mut b = batch_of(&mut mem, &[0, 1, 2]);
        let before = mem.clone();
        let mut drops = DropCounters::default();
        xc.process(&mut b, &mut mem, &mut drops);
        assert_eq!(b.verdict[0], Verdict::Forward(1));
        assert_eq!(b.verdict[1], Verdict::Forward(0));
        assert_eq!(b.verdict[2], Verdict::Drop(DropReason::NoRoute));
        assert_eq!(drops.get(DropReason::NoRoute), 1);
        assert_eq!(mem, before);
    }

    #[test]
    fn mac_mode_rewrites_addresses_of_output_port() {
        let mut xc = CrossConnect::new(ForwardMode::Mac, 2);
        xc.connect(0, 1);
        let src: MacAddr = "02:00:00:00:00:01".parse().unwrap();
        let dst: MacAddr = "02:00:00:00:00:99".parse().unwrap();
        xc.set_rewrite(1, src, dst);
        let mut mem = Vec::new();
        let mut b = batch_of(&mut mem, &[0]);
        xc.process(&mut b, &mut mem, &mut DropCounters::default());
        let f = EthernetFrame::new_checked(&mem[..60]).unwrap();
        assert_eq!((f.src(), f.dst()), (src, dst));
        assert_eq!(f.ethertype(), 0x0800);
    }

    #[test]
    fn skips_packets_already_decided() {
        let mut xc = CrossConnect::new(ForwardMode::Io, 2);
        xc.connect(0, 1);
        let mut mem = Vec::new();
        let mut b = batch_of(&mut mem, &[0]);
        b.verdict[0] = Verdict::Drop(DropReason::RuntFrame);
        xc.process(&mut b, &mut mem, &mut DropCounters::default());
        assert_eq!(b.verdict[0], Verdict::Drop(DropReason::RuntFrame));
    }
}
