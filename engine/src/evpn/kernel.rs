//! A VNI's kernel mirror: devices that carry no traffic, made only so
//! that FRR's zebra sees the VNI as it would on a Linux VTEP (SONiC's
//! vxlanmgrd makes the same set for its ASIC). `vxlanN` (no learning,
//! no remote, no group) in bridge `brN`, with neighbour suppression and
//! learning off on it, and `accN`, one end of a veth pair, standing for
//! pollgate's local ports: the MACs pollgate has on them are written as
//! static FDB entries on `accN`, which zebra advertises. (A dummy device
//! would do as `accN` where the kernel has the module; this kernel has
//! none, and a veth with its peer up carries the same FDB entries.)

use pollgate_pmd::cleanup::{self, Resource};
use pollgate_pmd::netlink::Netlink;
use std::net::Ipv4Addr;

/// The kernel devices of one VNI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VniDevices {
    pub vni: u32,
    pub vxlan: (String, u32),
    pub bridge: (String, u32),
    pub access: (String, u32),
    pub access_peer: String,
}

pub fn names(vni: u32) -> [String; 4] {
    [
        format!("vxlan{vni}"),
        format!("br{vni}"),
        format!("acc{vni}"),
        format!("acc{vni}p"),
    ]
}

fn index_of(nl: &mut Netlink, name: &str) -> Result<u32, String> {
    nl.get_link(name)
        .map_err(|e| format!("reading {name}: {e}"))?
        .map(|l| l.index)
        .ok_or_else(|| format!("{name} vanished as it was made"))
}

/// No IPv6 on the mirror: a link-local address would make the bridge
/// send DAD and router solicitations into the VNI through the kernel's
/// own VXLAN device, whose traffic only pollgate may carry.
fn no_ipv6(name: &str) {
    let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6"), "1");
}

impl VniDevices {
    /// Makes the devices of `vni`, with `local` as the VXLAN source
    /// address zebra advertises in type-3 routes. A device of one of the
    /// names that is already there is refused: it is not pollgate's (the
    /// reaper removes what a killed pollgate left).
    pub fn create(
        nl: &mut Netlink,
        vni: u32,
        local: Ipv4Addr,
        udp_port: u16,
    ) -> Result<VniDevices, String> {
        let [vx, br, acc, peer] = names(vni);
        for n in [&vx, &br, &acc, &peer] {
            if nl
                .get_link(n)
                .map_err(|e| format!("reading {n}: {e}"))?
                .is_some()
            {
                return Err(format!(
                    "{n} exists and pollgate did not make it: remove it (ip link del {n}) for VNI {vni}'s kernel mirror"
                ));
            }
        }
        let mut made = Vec::new();
        let r = (|| {
            nl.create_vxlan(&vx, vni, local, udp_port)
                .map_err(|e| format!("creating {vx}: {e}"))?;
            let vxi = index_of(nl, &vx)?;
            made.push((vx.clone(), vxi));
            nl.create_bridge(&br)
                .map_err(|e| format!("creating {br}: {e}"))?;
            let bri = index_of(nl, &br)?;
            made.push((br.clone(), bri));
            nl.create_veth(&acc, &peer, None, 1)
                .map_err(|e| format!("creating {acc}: {e}"))?;
            let acci = index_of(nl, &acc)?;
            made.push((acc.clone(), acci));
            for n in [&vx, &br, &acc, &peer] {
                no_ipv6(n);
            }
            let step = |what: &str, r: std::io::Result<()>| r.map_err(|e| format!("{what}: {e}"));
            step(&format!("{vx} into {br}"), nl.set_master(vxi, bri))?;
            step(&format!("{acc} into {br}"), nl.set_master(acci, bri))?;
            step(
                &format!("neigh_suppress on, learning off on {vx}"),
                nl.set_bridge_port(vxi, true, false),
            )?;
            step(
                &format!("learning off on {acc}"),
                nl.set_bridge_port(acci, false, false),
            )?;
            let peeri = index_of(nl, &peer)?;
            // Nor IGMP reports from the bridge, for the same reason.
            for (n, i) in [(&vx, vxi), (&br, bri), (&acc, acci), (&peer, peeri)] {
                step(&format!("multicast off on {n}"), nl.set_multicast(i, false))?;
            }
            for (n, i) in [(&peer, peeri), (&acc, acci), (&vx, vxi), (&br, bri)] {
                step(&format!("{n} up"), nl.set_link(i, Some(true), None, None))?;
            }
            Ok(VniDevices {
                vni,
                vxlan: (vx.clone(), vxi),
                bridge: (br.clone(), bri),
                access: (acc.clone(), acci),
                access_peer: peer.clone(),
            })
        })();
        match r {
            Ok(d) => {
                for (name, ifindex) in made {
                    cleanup::created(&Resource::Device { name, ifindex });
                }
                Ok(d)
            }
            Err(e) => {
                // A refused step leaves nothing behind.
                for (_, i) in made.iter().rev() {
                    let _ = nl.delete_link(*i);
                }
                Err(e)
            }
        }
    }

    /// Removes the devices; zebra withdraws the VNI's routes.
    pub fn remove(&self, nl: &mut Netlink) {
        for (name, ifindex) in [&self.vxlan, &self.access, &self.bridge] {
            // Only the device made, if it is still that one.
            if let Ok(Some(l)) = nl.get_link(name) {
                if l.index == *ifindex {
                    let _ = nl.delete_link(l.index);
                }
            }
            cleanup::removed(&Resource::Device {
                name: name.clone(),
                ifindex: *ifindex,
            });
        }
    }
}
