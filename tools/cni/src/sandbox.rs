//! The container's end: a veth pair whose far end is created directly in
//! the container's namespace under `CNI_IFNAME`, with the addresses and
//! routes IPAM handed out, and whose near end pollgate serves. The pair
//! is the plugin's, not the engine's: the container keeps its interface
//! while the engine restarts, and the engine attaches it again.

use pollgate_pmd::netlink::Netlink;
use pollgate_pmd::netns::NetNs;
use rscni_plugin::error::Error;
use rscni_plugin::types::{IpConfig, Route};
use std::io;
use std::path::Path;

/// The host end's name (and pollgate's port name): 15 characters, from
/// the attachment (container, interface), so DEL and GC find it again.
pub fn host_name(container_id: &str, ifname: &str) -> String {
    // FNV-1a over "container/ifname"; 48 bits are plenty for the
    // containers of one host.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in container_id.bytes().chain(*b"/").chain(ifname.bytes()) {
        h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("pgc{:012x}", h & 0xffff_ffff_ffff)
}

fn mac_string(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn netns(path: &Path) -> Result<NetNs, Error> {
    NetNs::open(&path.display().to_string())
        .map_err(|e| Error::InvalidNetNS(format!("{}: {e}", path.display())))
}

fn io_err(what: &str) -> impl Fn(io::Error) -> Error + '_ {
    move |e| Error::IOFailure(format!("{what}: {e}"))
}

/// Whether the container already has `ifname`.
pub fn has_interface(path: &Path, ifname: &str) -> Result<bool, Error> {
    let ns = netns(path)?;
    let name = ifname.to_string();
    ns.run(move || Ok(Netlink::open()?.get_link(&name)?.is_some()))
        .map_err(io_err("looking in the container's namespace"))
}

/// The first IPv4 address of the container's `ifname`, while its
/// namespace and the interface are still there, and only while the pair's
/// host end `host` is: otherwise the interface is not this plugin's (an
/// ADD refused because `ifname` existed made nothing, and the address
/// there may be another network's).
pub fn ipv4_of(path: &Path, host: &str, ifname: &str) -> Option<std::net::Ipv4Addr> {
    Netlink::open().ok()?.get_link(host).ok()??;
    let ns = netns(path).ok()?;
    let name = ifname.to_string();
    ns.run(move || {
        let mut nl = Netlink::open()?;
        let Some(l) = nl.get_link(&name)? else {
            return Ok(None);
        };
        let ours = nl
            .ipv4_addresses()?
            .into_iter()
            .find(|(i, _)| *i == l.index);
        Ok(ours.map(|(_, a)| a))
    })
    .ok()
    .flatten()
}

/// Creates the pair and configures the container's end; returns the MACs
/// of (host end, container end). Nothing is left behind on error.
pub fn create(
    path: &Path,
    host: &str,
    ifname: &str,
    mtu: u32,
    ips: &[IpConfig],
    routes: &[Route],
) -> Result<(String, String), Error> {
    let ns = netns(path)?;
    let mut nl = Netlink::open().map_err(io_err("netlink"))?;
    if let Some(stale) = nl.get_link(host).map_err(io_err("netlink"))? {
        // A pair a failed ADD left: DEL would have removed it.
        let _ = nl.delete_link(stale.index);
    }
    nl.create_veth(host, ifname, Some(ns.fd()), 1)
        .map_err(io_err(&format!("creating veth {host} / {ifname}")))?;
    let configured = (|| {
        let h = nl
            .get_link(host)
            .map_err(io_err("netlink"))?
            .ok_or_else(|| Error::IOFailure(format!("{host} vanished after creation")))?;
        nl.set_link(h.index, Some(true), Some(mtu), None)
            .map_err(io_err(&format!("bringing {host} up")))?;
        let (name, ips, routes) = (ifname.to_string(), ips.to_vec(), routes.to_vec());
        let cont = ns
            .run(move || configure(&name, mtu, &ips, &routes))
            .map_err(io_err(&format!("configuring {ifname} in the container")))?;
        Ok((mac_string(h.mac), mac_string(cont)))
    })();
    if configured.is_err() {
        let _ = delete(host);
    }
    configured
}

/// Inside the container's namespace: MTU, addresses, up, routes.
fn configure(ifname: &str, mtu: u32, ips: &[IpConfig], routes: &[Route]) -> io::Result<[u8; 6]> {
    let mut nl = Netlink::open()?;
    let l = nl
        .get_link(ifname)?
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{ifname} is not there")))?;
    nl.set_link(l.index, None, Some(mtu), None)?;
    for ip in ips {
        nl.add_address(l.index, ip.address.addr(), ip.address.prefix_len())?;
    }
    nl.set_link(l.index, Some(true), None, None)?;
    for r in routes {
        // A route without a gateway goes through the gateway of the
        // first address of its family, as the reference plugins do.
        let gw = r.gw.or_else(|| {
            ips.iter()
                .find(|i| i.address.addr().is_ipv4() == r.dst.addr().is_ipv4())
                .and_then(|i| i.gateway)
        });
        nl.add_route(r.dst.network(), r.dst.prefix_len(), gw, l.index)?;
    }
    Ok(l.mac)
}

/// Deletes the pair (both ends go with the host end); a pair already
/// gone is not an error.
pub fn delete(host: &str) -> Result<(), Error> {
    let mut nl = Netlink::open().map_err(io_err("netlink"))?;
    let Some(l) = nl.get_link(host).map_err(io_err("netlink"))? else {
        return Ok(());
    };
    match nl.delete_link(l.index) {
        // Gone in between (its namespace deleted): as good as deleted.
        Err(e) if nl.get_link(host).ok().flatten().is_some() => {
            Err(io_err(&format!("deleting {host}"))(e))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_are_15_characters_and_tell_attachments_apart() {
        let a = host_name("0123456789abcdef", "eth0");
        assert_eq!(a.len(), 15);
        assert_eq!(a, host_name("0123456789abcdef", "eth0"));
        assert_ne!(a, host_name("0123456789abcdef", "eth1"));
        assert_ne!(a, host_name("0123456789abcdeg", "eth0"));
    }
}
