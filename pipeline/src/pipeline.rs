//! The staged pipeline: a fixed graph of concrete stages run in order over
//! each batch — parse → VXLAN decap → VLAN ingress → ACL ingress
//! (prerouting) → router (input / forward) → bridge → cross-connect → ACL egress → VXLAN encap → VLAN egress. Stages are fields, not a list of trait objects, so the whole
//! run compiles to direct calls; a stage that is not configured is `None`.

use crate::acl::AclStage;
use crate::batch::Batch;
use crate::bridge::Bridge;
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

    /// Adds the ACL stages (and the parse stage they need).
    pub fn with_acl(mut self, acl: AclStage) -> Self {
        self.parse = Some(Parse);
        self.acl = Some(acl);
        self
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
        if let (Some(new), Some(old)) = (&mut self.acl, old.acl) {
            new.adopt_flows(old);
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
        self.acl
            .as_mut()
            .is_none_or(|a| a.permits_to(batch, i, port))
    }

    /// Publishes the ACL flow counters (with the drop counters).
    #[inline]
    pub fn publish(&self) {
        if let Some(a) = &self.acl {
            a.publish();
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
        if let Some(vtep) = &self.vxlan {
            Decap { vtep }.process(batch, mem, drops);
        }
        if let Some(map) = &self.vlan {
            VlanIngress { map }.process(batch, mem, drops);
        }
        if let Some(acl) = &mut self.acl {
            acl.ingress(batch, mem, drops);
        }
        if let Some(router) = &mut self.router {
            router.process(batch, mem, drops);
        }
        if let Some(bridge) = &mut self.bridge {
            bridge.process(batch, mem, drops);
        }
        self.xconnect.process(batch, mem, drops);
        if let Some(acl) = &mut self.acl {
            acl.egress(batch, mem, drops);
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
