//! The ACL stages: ingress (after VLAN classification, before the bridge)
//! and egress (after the forwarding decision, per output port and
//! domain). ACLs attach to ports and to bridge domains; a packet must pass
//! every ACL attached on its way (port, then domain).

use super::key::AclKey;
use super::rule::Action;
use super::set::{AclHandle, AclView, Decision};
use crate::batch::{flags, Batch, BATCH_SIZE};
use crate::conntrack::FlowTable;
use crate::frame::FrameMemory;
use crate::verdict::{DropCounters, DropReason, PortId, Verdict};
use std::sync::Arc;

/// Where ACLs sit: `[port or domain id] → index into the ACL list`.
#[derive(Debug, Default, Clone)]
pub struct AclAttachments {
    pub port_in: Vec<Option<usize>>,
    pub port_out: Vec<Option<usize>>,
    pub domain_in: Vec<Option<usize>>,
    pub domain_out: Vec<Option<usize>>,
}

pub struct AclStage {
    acls: Vec<AclView>,
    at: AclAttachments,
    /// Whether any port has an egress ACL, and any port or domain: fixed
    /// at construction, so a batch without egress ACLs pays one branch.
    port_egress: bool,
    egress: bool,
    worker: usize,
    keys: [AclKey; BATCH_SIZE],
    tcp: [u8; BATCH_SIZE],
    /// Bit i: `keys[i]` holds packet i's key for this batch.
    have_key: u64,
    now: u64,
}

impl AclStage {
    pub fn new(acls: &[Arc<AclHandle>], at: AclAttachments, worker: usize) -> Self {
        let acls: Vec<AclView> = acls.iter().cloned().map(AclView::new).collect();
        let port_egress = at.port_out.iter().any(Option::is_some);
        let egress = port_egress || at.domain_out.iter().any(Option::is_some);
        AclStage {
            acls,
            at,
            port_egress,
            egress,
            worker,
            keys: [AclKey::EMPTY; BATCH_SIZE],
            tcp: [0; BATCH_SIZE],
            have_key: 0,
            now: 0,
        }
    }

    #[inline]
    pub fn set_clock(&mut self, now_ns: u64) {
        self.now = now_ns;
    }

    pub fn now(&self) -> u64 {
        self.now
    }

    fn refresh(&mut self) {
        for a in &mut self.acls {
            a.refresh();
        }
    }

    #[inline]
    fn key<M: FrameMemory + ?Sized>(&mut self, batch: &Batch, i: usize, mem: &M) -> bool {
        if self.have_key & (1 << i) != 0 {
            return true;
        }
        let Some(bytes) = mem.bytes(batch.addr[i], batch.data_len[i]) else {
            return false;
        };
        let vlan = if batch.prio[i] != 0 || batch.tags[i] == 0 {
            batch.prio[i] & 0x0fff
        } else {
            batch.outer_tci[i] & 0x0fff
        };
        self.keys[i] = AclKey::from_packet(batch, i, bytes, vlan);
        self.tcp[i] = 0;
        if batch.flags[i] & flags::L4 != 0 && batch.l4_proto[i] == 6 {
            let off = batch.l4_off[i] as usize + 13;
            self.tcp[i] = bytes.get(off).copied().unwrap_or(0);
        }
        self.have_key |= 1 << i;
        true
    }

    /// Runs ACL `acl` on packet `i`: true where it may pass.
    #[inline]
    fn check(&mut self, acl: usize, i: usize, len: u32, flows: &mut FlowTable) -> bool {
        let Some(view) = self.acls.get(acl) else {
            return true;
        };
        let set = view.set();
        let d = set.decide(&self.keys[i]);
        set.count(self.worker, &d, len);
        judge(flows, &d, &self.keys[i], self.tcp[i], self.now)
    }

    /// Ingress: port ACL, then domain ACL.
    pub fn ingress<M: FrameMemory + ?Sized>(
        &mut self,
        batch: &mut Batch,
        mem: &mut M,
        drops: &mut DropCounters,
        flows: &mut FlowTable,
    ) {
        self.have_key = 0;
        self.refresh();
        self.apply(batch, mem, drops, flows, |at, batch, i| {
            match batch.verdict[i] {
                Verdict::Pending => (
                    get(&at.port_in, batch.in_port[i] as usize),
                    get(&at.domain_in, batch.domain[i] as usize),
                ),
                _ => (None, None),
            }
        });
    }

    /// Egress: for unicast, the output port's ACL and the domain's; for a
    /// flood, the domain's (each member port's is checked per copy by
    /// [`AclStage::permits_to`]).
    pub fn egress<M: FrameMemory + ?Sized>(
        &mut self,
        batch: &mut Batch,
        mem: &mut M,
        drops: &mut DropCounters,
        flows: &mut FlowTable,
    ) {
        if !self.egress {
            return;
        }
        self.apply(batch, mem, drops, flows, |at, batch, i| {
            match batch.verdict[i] {
                Verdict::Forward(port) => (
                    get(&at.port_out, port as usize),
                    get(&at.domain_out, batch.domain[i] as usize),
                ),
                Verdict::Flood(dom) => (None, get(&at.domain_out, dom as usize)),
                _ => (None, None),
            }
        });
    }

    /// Runs the port ACL and then the domain ACL that `pick` names for
    /// each packet (as indices into the ACL list).
    // `i` indexes the batch's arrays and ours alike (struct of arrays).
    #[allow(clippy::needless_range_loop)]
    fn apply<M: FrameMemory + ?Sized>(
        &mut self,
        batch: &mut Batch,
        mem: &mut M,
        drops: &mut DropCounters,
        flows: &mut FlowTable,
        pick: impl Fn(&AclAttachments, &Batch, usize) -> (Option<usize>, Option<usize>),
    ) {
        let mut want = [[NO_ACL; BATCH_SIZE]; 2];
        for i in 0..batch.len() {
            let (p, d) = pick(&self.at, batch, i);
            if p.is_none() && d.is_none() {
                continue;
            }
            if !self.key(batch, i, mem) {
                drop_packet(batch, i, DropReason::BadDescriptor, drops);
                continue;
            }
            want[0][i] = p.map_or(NO_ACL, |a| a as u16);
            want[1][i] = d.map_or(NO_ACL, |a| a as u16);
        }
        for pass in &want {
            self.run_pass(batch, pass, drops, flows);
        }
    }

    /// Classifies, per ACL, all the packets that still need it in one
    /// call (the DFA walks them together), then applies the decisions.
    // `i` indexes the batch's arrays and ours alike (struct of arrays).
    #[allow(clippy::needless_range_loop)]
    fn run_pass(
        &mut self,
        batch: &mut Batch,
        want: &[u16; BATCH_SIZE],
        drops: &mut DropCounters,
        flows: &mut FlowTable,
    ) {
        let mut todo = 0u64;
        for (i, &a) in want.iter().enumerate().take(batch.len()) {
            if a != NO_ACL && !matches!(batch.verdict[i], Verdict::Drop(_)) {
                todo |= 1 << i;
            }
        }
        if todo == 0 {
            // No packet needs this pass (a port ACL without a domain one,
            // say): none of the scratch arrays below gets filled.
            return;
        }
        let mut found = [0u32; BATCH_SIZE];
        // The usual case: a burst from one port, one ACL for all of it:
        // classify the keys where they are.
        let n = batch.len();
        let all = if n == BATCH_SIZE {
            u64::MAX
        } else {
            (1u64 << n) - 1
        };
        if todo == all && want[..n].iter().all(|&a| a == want[0]) {
            let Some(view) = self.acls.get(want[0] as usize) else {
                return;
            };
            let set = view.set();
            set.lookup_many(&self.keys[..n], &mut found[..n]);
            for i in 0..n {
                let d = set.decision((found[i] != u32::MAX).then_some(found[i]));
                set.count(self.worker, &d, batch.pkt_len(i));
                if !judge(flows, &d, &self.keys[i], self.tcp[i], self.now) {
                    drop_packet(batch, i, DropReason::AclDeny, drops);
                }
            }
            return;
        }
        let mut keys = [AclKey::EMPTY; BATCH_SIZE];
        let mut slot = [0u8; BATCH_SIZE];
        while todo != 0 {
            let acl = want[todo.trailing_zeros() as usize];
            let mut n = 0;
            let mut rest = todo;
            while rest != 0 {
                let i = rest.trailing_zeros() as usize;
                rest &= rest - 1;
                if want[i] == acl {
                    keys[n] = self.keys[i];
                    slot[n] = i as u8;
                    n += 1;
                    todo &= !(1 << i);
                }
            }
            let Some(view) = self.acls.get(acl as usize) else {
                continue;
            };
            let set = view.set();
            set.lookup_many(&keys[..n], &mut found[..n]);
            for k in 0..n {
                let i = slot[k] as usize;
                let d = set.decision((found[k] != u32::MAX).then_some(found[k]));
                set.count(self.worker, &d, batch.pkt_len(i));
                if !judge(flows, &d, &keys[k], self.tcp[i], self.now) {
                    drop_packet(batch, i, DropReason::AclDeny, drops);
                }
            }
        }
    }

    /// Whether a flood copy of packet `i` may leave on `port` (its egress
    /// ACL). Called after [`AclStage::egress`] for the same batch.
    pub fn permits_to(
        &mut self,
        batch: &Batch,
        i: usize,
        port: PortId,
        flows: &mut FlowTable,
    ) -> bool {
        let Some(acl) = get(&self.at.port_out, port as usize) else {
            return true;
        };
        if self.have_key & (1 << i) == 0 {
            // The key comes from the frame, which the caller no longer
            // lends; egress() builds it for every flood when port egress
            // ACLs exist, so this is only a packet it could not read.
            return false;
        }
        self.check(acl, i, batch.pkt_len(i), flows)
    }

    /// Makes sure flood packets have keys for [`AclStage::permits_to`].
    pub fn prepare_floods<M: FrameMemory + ?Sized>(&mut self, batch: &Batch, mem: &M) {
        if !self.port_egress {
            return;
        }
        for i in 0..batch.len() {
            if matches!(batch.verdict[i], Verdict::Flood(_)) {
                self.key(batch, i, mem);
            }
        }
    }
}

/// No ACL for this packet in this pass.
const NO_ACL: u16 = u16::MAX;

/// Applies a decision: a permit passes (and a stateful one records its
/// flow); a deny passes only as the reverse of a tracked flow.
#[inline]
fn judge(flows: &mut FlowTable, d: &Decision, key: &AclKey, tcp: u8, now: u64) -> bool {
    match d.action {
        Action::Permit => {
            if d.stateful {
                flows.track(key, tcp, now);
            }
            true
        }
        Action::Deny => flows.admits_reverse(key, tcp, now),
    }
}

#[inline(always)]
fn drop_packet(batch: &mut Batch, i: usize, reason: DropReason, drops: &mut DropCounters) {
    batch.verdict[i] = Verdict::Drop(reason);
    drops.count(reason);
}

#[inline(always)]
fn get(v: &[Option<usize>], i: usize) -> Option<usize> {
    v.get(i).copied().flatten()
}
