//! The staged pipeline: a fixed graph of concrete stages run in order over
//! each batch — parse → VXLAN decap → VLAN ingress → ACL ingress
//! (prerouting) → router (input / forward) → bridge → cross-connect → ACL egress → VXLAN encap → VLAN egress. Stages are fields, not a list of trait objects, so the whole
//! run compiles to direct calls; a stage that is not configured is `None`.

use crate::acl::AclStage;
use crate::batch::Batch;
use crate::bridge::Bridge;
use crate::conntrack::{FlowCounters, FlowTable, FlowTimeouts};
use crate::frame::FrameMemory;
use crate::l3::Router;
use crate::parse::Parse;
use crate::stage::Stage;
use crate::verdict::{DomainId, DropCounters, PortId};
use crate::vlan::{VlanEgress, VlanIngress, VlanMap};
use crate::vxlan::{Decap, Encap, Vtep};
use crate::xconnect::CrossConnect;
use std::sync::Arc;

pub struct Pipeline {
    parse: Option<Parse>,
    vlan: Option<Arc<VlanMap>>,
    bridge: Option<Bridge>,
    router: Option<Router>,
    acl: Option<AclStage>,
    /// The worker's flow table: stateful ACL flows and NAT sessions.
    flows: Option<FlowTable>,
    flow_counters: Arc<FlowCounters>,
    vxlan: Option<Arc<Vtep>>,
    /// IPv4 identification of the next encapsulated packet.
    ip_id: u16,
    xconnect: CrossConnect,
}

impl Pipeline {
    /// `parse = false` forwards frames without looking past the Ethernet
    /// header, as testpmd's io mode does.
    pub fn new(parse: bool, xconnect: CrossConnect) -> Self {
        Pipeline {
            parse: parse.then_some(Parse),
            vlan: None,
            bridge: None,
            router: None,
            acl: None,
            flows: None,
            flow_counters: Arc::new(FlowCounters::default()),
            vxlan: None,
            ip_id: 0,
            xconnect,
        }
    }

    /// Adds the VLAN and bridge stages (and the parse stage they need).
    pub fn with_bridge(mut self, vlan: Arc<VlanMap>, bridge: Bridge) -> Self {
        self.parse = Some(Parse);
        self.vlan = Some(vlan);
        self.bridge = Some(bridge);
        self
    }

    /// Adds the router: the gateway interfaces of bridge domains.
    pub fn with_router(mut self, router: Router) -> Self {
        self.parse = Some(Parse);
        self.router = Some(router);
        self
    }

    pub fn router(&self) -> Option<&Router> {
        self.router.as_ref()
    }

    /// Adds the ACL stages (and the parse stage they need), with a small
    /// flow table unless [`Pipeline::with_flows`] gave one.
    pub fn with_acl(mut self, acl: AclStage) -> Self {
        self.parse = Some(Parse);
        self.acl = Some(acl);
        self.flows
            .get_or_insert_with(|| FlowTable::new(1024, FlowTimeouts::default()));
        self
    }

    /// Gives the pipeline its flow table (the stateful ACL's flows and
    /// NAT's sessions).
    pub fn with_flows(mut self, flows: FlowTable) -> Self {
        self.flows = Some(flows);
        self
    }

    /// The flow table's counters, which the control socket reads.
    pub fn flow_counters(&self) -> Arc<FlowCounters> {
        self.flow_counters.clone()
    }

    pub fn flows(&self) -> Option<&FlowTable> {
        self.flows.as_ref()
    }

    /// Worker housekeeping between bursts: NAT's sweep of expired
    /// sessions (a part of the table each call).
    pub fn maintain(&mut self, now_ns: u64) {
        if let (Some(r), Some(t)) = (&mut self.router, &mut self.flows) {
            if let Some(nat) = r.nat_mut() {
                nat.maintain(t, now_ns);
            }
        }
    }

    /// Adds the VTEP: decap on its underlay port, encap towards tunnel
    /// ports.
    pub fn with_vxlan(mut self, vtep: Arc<Vtep>) -> Self {
        self.parse = Some(Parse);
        self.vxlan = Some(vtep);
        self
    }

    /// Takes over what `old` learned while it ran (the ACL flow table,
    /// the encapsulation IP ids): the worker swaps this pipeline in for
    /// `old` between bursts when the topology changes. The MAC table is
    /// shared and stays where it is; storm-control buckets start full.
    /// Returns the frames (addr, tail) of packets the old router held
    /// that the new pipeline cannot take (it has no router): the caller
    /// frees them.
    pub fn carry_over(&mut self, mut old: Pipeline) -> Vec<(u64, u32)> {
        self.ip_id = old.ip_id;
        let orphans = match (&mut self.router, &mut old.router) {
            (Some(new), Some(old)) => {
                new.carry_over(old);
                Vec::new()
            }
            (None, Some(old)) => old.take_held(),
            _ => Vec::new(),
        };
        if let (Some(new), Some(old)) = (&mut self.acl, &old.acl) {
            new.set_clock(old.now());
        }
        // Flows and sessions outlive a topology change: the table is
        // the worker's, whatever its size in the new config.
        if self.flows.is_some() {
            if let Some(t) = old.flows.take() {
                self.flows = Some(t);
                self.flow_counters = old.flow_counters;
            }
        }
        orphans
    }

    pub fn router_mut(&mut self) -> Option<&mut Router> {
        self.router.as_mut()
    }

    pub fn vxlan(&self) -> Option<&Vtep> {
        self.vxlan.as_deref()
    }

    /// Encapsulates a flood copy for remote `r` (see `Encap`); the next
    /// IPv4 identification is this pipeline's.
    pub fn encap_copy<M: FrameMemory + ?Sized>(
        &mut self,
        mem: &mut M,
        at: (u64, u32, u16),
        tail: u32,
        r: usize,
        d: DomainId,
    ) -> Result<(u64, u32, u16), crate::DropReason> {
        let Some(v) = &self.vxlan else {
            return Err(crate::DropReason::NoRoute);
        };
        self.ip_id = self.ip_id.wrapping_add(1);
        crate::vxlan::encap(mem, v, at, tail, r, d, self.ip_id)
    }

    /// Whether a flood copy of packet `i` may leave on `port` (its
    /// egress ACL), after `run` on the same batch.
    #[inline]
    pub fn flood_permits(&mut self, batch: &Batch, i: usize, port: PortId) -> bool {
        match (&mut self.acl, &mut self.flows) {
            (Some(a), Some(t)) => a.permits_to(batch, i, port, t),
            _ => true,
        }
    }

    /// Publishes the ACL flow counters (with the drop counters).
    #[inline]
    pub fn publish(&self) {
        if let Some(t) = &self.flows {
            self.flow_counters.publish(t);
        }
        if let Some(n) = self.router.as_ref().and_then(|r| r.nat()) {
            n.publish();
        }
    }

    /// Marks the batches `run` gets next as packets other workers handed
    /// over (`Verdict::Handoff`): NAT does not hand them on again.
    pub fn set_handed(&mut self, handed: bool) {
        if let Some(r) = &mut self.router {
            r.set_handed(handed);
        }
    }

    /// Whether the stages need `set_clock` every loop.
    pub fn uses_clock(&self) -> bool {
        self.bridge.is_some() || self.acl.is_some() || self.router.is_some()
    }

    pub fn parses(&self) -> bool {
        self.parse.is_some()
    }

    pub fn vlan(&self) -> Option<&VlanMap> {
        self.vlan.as_deref()
    }

    pub fn bridge(&self) -> Option<&Bridge> {
        self.bridge.as_ref()
    }

    /// Ports a flood of `domain` goes to.
    pub fn flood_members(&self, domain: DomainId) -> &[PortId] {
        self.bridge.as_ref().map_or(&[], |b| b.members(domain))
    }

    /// Sets the clock the bridge learns and polices with (once per loop).
    #[inline]
    pub fn set_clock(&mut self, now_ns: u64) {
        if let Some(b) = &mut self.bridge {
            b.set_clock(now_ns);
        }
        if let Some(a) = &mut self.acl {
            a.set_clock(now_ns);
        }
        if let Some(r) = &mut self.router {
            r.set_clock(now_ns);
        }
    }

    /// Runs every stage over the batch. Afterwards each packet has a final
    /// verdict: forward, flood, local, or a counted drop.
    #[inline]
    pub fn run<M: FrameMemory + ?Sized>(
        &mut self,
        batch: &mut Batch,
        mem: &mut M,
        drops: &mut DropCounters,
    ) {
        if let Some(parse) = &mut self.parse {
            parse.process(batch, mem, drops);
        }
        // Packets another worker handed over (for a NAT session this
        // worker holds) passed decap, VLAN ingress and the ingress ACL
        // there, and come with their domain.
        let handed = self.router.as_ref().is_some_and(|r| r.handed());
        if !handed {
            if let Some(vtep) = &self.vxlan {
                Decap { vtep }.process(batch, mem, drops);
            }
            if let Some(map) = &self.vlan {
                VlanIngress { map }.process(batch, mem, drops);
            }
            if let (Some(acl), Some(t)) = (&mut self.acl, &mut self.flows) {
                acl.ingress(batch, mem, drops, t);
            }
        }
        if let Some(router) = &mut self.router {
            router.process(batch, mem, drops, self.flows.as_mut());
        }
        if let Some(bridge) = &mut self.bridge {
            bridge.process(batch, mem, drops);
        }
        self.xconnect.process(batch, mem, drops);
        if let (Some(acl), Some(t)) = (&mut self.acl, &mut self.flows) {
            acl.egress(batch, mem, drops, t);
            acl.prepare_floods(batch, mem);
        }
        if let Some(vtep) = &self.vxlan {
            Encap {
                vtep,
                ip_id: &mut self.ip_id,
            }
            .process(batch, mem, drops);
        }
        if let Some(map) = &self.vlan {
            VlanEgress { map }.process(batch, mem, drops);
        }
    }
}
