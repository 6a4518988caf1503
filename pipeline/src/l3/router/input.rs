//! The input hook (packets to the router's own addresses: echo requests
//! answered, the rest counted and dropped) and the ICMP errors the
//! router sends for what it cannot forward.

use super::{reply, set, IcmpError, Router};
use crate::batch::{flags, Batch};
use crate::frame::FrameMemory;
use crate::l3::icmp::{self, V4_GROWTH, V6_GROWTH};
use crate::l3::nd::{ICMP6_NA, ICMP6_NS};
use crate::l3::tables::bump;
use crate::verdict::{DropCounters, DropReason, Verdict};

impl Router {
    /// For one of our IPv4 addresses: echo requests are answered.
    pub(super) fn input_v4<M: FrameMemory + ?Sized>(
        &mut self,
        batch: &mut Batch,
        i: usize,
        mem: &mut M,
        drops: &mut DropCounters,
    ) {
        let (l3, l4) = (batch.l3_off[i] as usize, batch.l4_off[i] as usize);
        let ifs = self.ifs.clone();
        let Some(ifc) = ifs.get(batch.domain[i]) else {
            return;
        };
        let echo =
            batch.l4_proto[i] == 1 && batch.flags[i] & flags::L4 != 0 && batch.tail_len[i] == 0;
        let answered = echo
            && mem
                .bytes_mut(batch.addr[i], batch.data_len[i])
                .is_some_and(|f| icmp::v4_echo_reply(f, l3, l4, ifc.mac.0));
        self.answer_or_drop(batch, i, answered, drops);
    }

    pub(super) fn input_v6<M: FrameMemory + ?Sized>(
        &mut self,
        batch: &mut Batch,
        i: usize,
        mem: &mut M,
        drops: &mut DropCounters,
    ) {
        let (l3, l4) = (batch.l3_off[i] as usize, batch.l4_off[i] as usize);
        let ifs = self.ifs.clone();
        let Some(ifc) = ifs.get(batch.domain[i]) else {
            return;
        };
        let icmp6 = batch.l4_proto[i] == 58 && batch.flags[i] & flags::L4 != 0;
        let ty = mem
            .bytes(batch.addr[i], batch.data_len[i])
            .and_then(|f| f.get(l4).copied());
        if icmp6 && matches!(ty, Some(ICMP6_NS | ICMP6_NA)) {
            let v = self
                .nd(batch, i, mem, ifc, true)
                .unwrap_or(Verdict::Drop(DropReason::L3LocalDropped));
            return set(batch, i, v, drops);
        }
        let dst_ours = mem
            .bytes(batch.addr[i], batch.data_len[i])
            .is_some_and(|f| f.get(l3 + 24) != Some(&0xff));
        let answered = icmp6
            && dst_ours
            && batch.tail_len[i] == 0
            && mem
                .bytes_mut(batch.addr[i], batch.data_len[i])
                .is_some_and(|f| icmp::v6_echo_reply(f, l3, l4, ifc.mac.0));
        self.answer_or_drop(batch, i, answered, drops);
    }

    /// The input hook's end: an echo answered in place goes back out of
    /// its port; anything else for our addresses is dropped and counted.
    pub(super) fn answer_or_drop(
        &self,
        batch: &mut Batch,
        i: usize,
        answered: bool,
        drops: &mut DropCounters,
    ) {
        if answered {
            bump(&self.tables.counters.echo_replies);
            let len = batch.data_len[i] as usize;
            batch.verdict[i] = reply(batch, i, len);
        } else {
            set(batch, i, Verdict::Drop(DropReason::L3LocalDropped), drops);
        }
    }

    /// Drops the packet for `reason` and, where the rules and the rate
    /// limit allow, turns it into the ICMP error `err` back to its
    /// sender, out of the port it came in on.
    pub(super) fn fail<M: FrameMemory + ?Sized>(
        &mut self,
        batch: &mut Batch,
        i: usize,
        mem: &mut M,
        drops: &mut DropCounters,
        reason: DropReason,
        err: Option<IcmpError>,
    ) {
        drops.count(reason);
        batch.verdict[i] = Verdict::Drop(reason);
        let Some((kind, rest)) = err else { return };
        let Some(ifc) = self.ifs.get(batch.domain[i]) else {
            return;
        };
        let v4 = batch.flags[i] & flags::IPV4 != 0;
        let grow = if v4 { V4_GROWTH } else { V6_GROWTH };
        if batch.tail_len[i] != 0 || (batch.headroom[i] as usize) < grow || batch.l3_off[i] != 14 {
            return;
        }
        let (l3, l4) = (14usize, batch.l4_off[i] as usize);
        let Some(f) = mem.bytes(batch.addr[i], batch.data_len[i]) else {
            return;
        };
        let l4b = (batch.flags[i] & flags::L4 != 0)
            .then(|| f.get(l4..))
            .flatten();
        let ok = if v4 {
            icmp::v4_may_answer(&f[l3..], l4b)
        } else {
            icmp::v6_may_answer(&f[l3..], batch.l4_proto[i], l4b)
        };
        if !ok {
            return;
        }
        if !self.icmp.take(self.now_ns) {
            bump(&self.tables.counters.icmp_rate_limited);
            return;
        }
        let len = batch.data_len[i] as usize;
        let start = batch.addr[i] - grow as u64;
        let Some(buf) = mem.bytes_mut(start, (len + grow) as u32) else {
            return;
        };
        let n = if v4 {
            let peer = [
                buf[grow + 26],
                buf[grow + 27],
                buf[grow + 28],
                buf[grow + 29],
            ];
            ifc.v4_source(peer)
                .and_then(|src| icmp::write_v4_error(buf, len, kind, rest, ifc.mac.0, src))
        } else {
            let mut peer = [0u8; 16];
            peer.copy_from_slice(&buf[grow + 22..grow + 38]);
            icmp::write_v6_error(buf, len, kind, rest, ifc.mac.0, ifc.v6_source(peer))
        };
        let Some(n) = n else { return };
        let c = &self.tables.counters;
        bump(match kind.0 {
            11 if v4 => &c.time_exceeded,
            3 if !v4 => &c.time_exceeded,
            3 if kind.1 == 4 => &c.too_big,
            2 if !v4 => &c.too_big,
            _ => &c.unreachable,
        });
        batch.addr[i] = start;
        batch.headroom[i] -= grow as u16;
        batch.l3_off[i] = 14;
        batch.l4_off[i] = 14 + grow as u16 - 8;
        batch.l4_proto[i] = if v4 { 1 } else { 58 };
        batch.flags[i] = flags::PARSED | flags::L4 | if v4 { flags::IPV4 } else { flags::IPV6 };
        batch.verdict[i] = reply(batch, i, n);
    }
}
