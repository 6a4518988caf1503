//! veth ports: pollgate creates a veth pair, puts the far end into a
//! container's network namespace (creating the namespace if asked),
//! configures that end (MAC, IPv4 address, MTU, up) and runs AF_XDP on the
//! host end. What it created it removes when the port is dropped.

use crate::afxdp::{AfXdpConfig, AfXdpPort};
use crate::cleanup::{self, Resource};
use crate::netlink::Netlink;
use crate::netns::NetNs;
use crate::pool::FramePool;
use crate::PmdError;
use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;

/// The container side of a veth or tap port.
#[derive(Debug, Clone)]
pub struct ContainerEnd {
    /// Network namespace (`/run/netns/NAME`).
    pub netns: String,
    /// Create the namespace if it does not exist (and delete it after).
    pub create_netns: bool,
    /// Device name inside the namespace.
    pub ifname: String,
    pub mac: Option<[u8; 6]>,
    pub ipv4: Option<([u8; 4], u8)>,
    /// The container's default route (IPv4), as a runtime sets it.
    pub gateway: Option<[u8; 4]>,
    pub mtu: u32,
}

/// Devices and namespaces a port created, removed on drop (in that
/// order: deleting one veth end deletes both).
pub struct Created {
    host_ifindex: Option<u32>,
    host_ifname: String,
    netns: Option<String>,
}

impl Created {
    /// Only a namespace (or nothing) to remove.
    pub fn namespace(netns: Option<String>) -> Created {
        Created {
            host_ifindex: None,
            host_ifname: String::new(),
            netns,
        }
    }
}

impl Drop for Created {
    fn drop(&mut self) {
        if let Some(idx) = self.host_ifindex {
            cleanup::removed(&Resource::Device {
                name: self.host_ifname.clone(),
                ifindex: idx,
            });
            if let Ok(mut nl) = Netlink::open() {
                // Only delete the device if it is still the one we made.
                if let Ok(Some(l)) = nl.get_link(&self.host_ifname) {
                    if l.index == idx {
                        let _ = nl.delete_link(idx);
                    }
                }
            }
        }
        if let Some(ns) = &self.netns {
            let _ = NetNs::delete(ns);
            cleanup::removed(&Resource::Netns { name: ns.clone() });
        }
    }
}

fn dev_err(dev: &str, what: &str, e: io::Error) -> PmdError {
    PmdError::Device {
        dev: dev.to_string(),
        source: io::Error::new(e.kind(), format!("{what}: {e}")),
    }
}

/// Opens (or creates) the namespace of `end`; the second value says
/// whether this call created it.
pub fn namespace(end: &ContainerEnd) -> Result<(NetNs, bool), PmdError> {
    if NetNs::exists(&end.netns) {
        return NetNs::open(&end.netns)
            .map(|n| (n, false))
            .map_err(|e| dev_err(&end.netns, "opening namespace", e));
    }
    if !end.create_netns {
        return Err(dev_err(
            &end.netns,
            "namespace",
            io::Error::new(
                io::ErrorKind::NotFound,
                "does not exist (set netns_create = true to create it)",
            ),
        ));
    }
    let ns = NetNs::create(&end.netns).map_err(|e| dev_err(&end.netns, "creating namespace", e))?;
    cleanup::created(&Resource::Netns {
        name: end.netns.clone(),
    });
    Ok((ns, true))
}

/// Sets MAC, MTU and address of `end.ifname` inside `ns` and brings it up.
pub fn configure_in_namespace(ns: &NetNs, end: &ContainerEnd) -> io::Result<()> {
    let end = end.clone();
    ns.run(move || {
        let mut nl = Netlink::open()?;
        let l = nl.get_link(&end.ifname)?.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} not found in namespace", end.ifname),
            )
        })?;
        nl.set_link(l.index, None, Some(end.mtu), end.mac)?;
        if let Some((addr, prefix)) = end.ipv4 {
            nl.add_ipv4(l.index, addr, prefix)?;
        }
        nl.set_link(l.index, Some(true), None, None)?;
        if let Some(gw) = end.gateway {
            let any = std::net::IpAddr::from([0u8; 4]);
            nl.add_route(any, 0, Some(std::net::IpAddr::from(gw)), l.index)?;
        }
        let unsupported_ok = |r: io::Result<()>| match r {
            Err(e) if e.raw_os_error() != Some(libc::EOPNOTSUPP) => Err(e),
            _ => Ok(()),
        };
        unsupported_ok(crate::ethtool::set_tx_checksum(&end.ifname, false))?;
        unsupported_ok(crate::ethtool::disable_vlan_offload(&end.ifname))
        // The netlink socket closes here: holding it would keep the
        // namespace alive after someone deletes it.
    })
}

/// Creates a veth pair with `queues` queues per end, puts the far end in
/// the container's namespace and configures both ends. The returned guard
/// removes what was created; AF_XDP sockets on the near end hold it, so
/// the pair goes when the last of them is dropped.
pub fn create_veth(
    host_ifname: &str,
    end: &ContainerEnd,
    queues: u32,
) -> Result<Arc<Created>, PmdError> {
    let (ns, created_ns) = namespace(end)?;
    let mut created = Created {
        host_ifindex: None,
        host_ifname: host_ifname.to_string(),
        netns: created_ns.then(|| end.netns.clone()),
    };
    let mut nl = Netlink::open().map_err(|e| dev_err(host_ifname, "netlink", e))?;
    if let Ok(Some(_)) = nl.get_link(host_ifname) {
        return Err(dev_err(host_ifname, "creating veth", io::Error::new(io::ErrorKind::AlreadyExists, format!("a device with this name exists (left over from a crash? delete it with: ip link del {host_ifname})"))));
    }
    // Exactly the queues pollgate serves: the kernel spreads a veth's
    // traffic over all its queues by flow hash, and a queue without a
    // socket would pass its share to the host stack.
    nl.create_veth(host_ifname, &end.ifname, Some(ns.fd()), queues)
        .map_err(|e| dev_err(host_ifname, "creating veth pair", e))?;
    let host = nl
        .get_link(host_ifname)
        .map_err(|e| dev_err(host_ifname, "looking up", e))?
        .ok_or_else(|| {
            dev_err(
                host_ifname,
                "looking up",
                io::Error::new(io::ErrorKind::NotFound, "vanished after creation"),
            )
        })?;
    created.host_ifindex = Some(host.index);
    cleanup::created(&Resource::Device {
        name: host_ifname.to_string(),
        ifindex: host.index,
    });
    nl.set_link(host.index, Some(true), Some(end.mtu), None)
        .map_err(|e| dev_err(host_ifname, "bringing up", e))?;
    configure_in_namespace(&ns, end).map_err(|e| {
        dev_err(
            &end.ifname,
            &format!("configuring in namespace {}", end.netns),
            e,
        )
    })?;
    Ok(Arc::new(created))
}

pub struct VethPort;

impl VethPort {
    /// Creates a single-queue pair, configures both ends and opens AF_XDP
    /// on the host end. The port removes what was created when dropped.
    pub fn open(
        name: &str,
        host_ifname: &str,
        end: &ContainerEnd,
        cfg: &AfXdpConfig,
        pool: &mut FramePool,
        umem_owner: &mut Option<RawFd>,
    ) -> Result<AfXdpPort, PmdError> {
        let created = create_veth(host_ifname, end, 1)?;
        let port = AfXdpPort::open(name, host_ifname, cfg, pool, umem_owner, None)?;
        Ok(port.owning(created))
    }
}
