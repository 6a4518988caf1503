//! The far end of a veth pair pollgate serves but did not create (a
//! container's `eth0`, made by a runtime or a script). Its kernel sends
//! TCP and UDP with partial checksums and VLAN tags as skb metadata when
//! its offloads are on: AF_XDP carries bytes, so the receiver would get
//! broken checksums and untagged frames. pollgate finds the peer (IFLA_LINK
//! in the namespace IFLA_LINK_NETNSID names), turns those offloads off
//! while it serves the port, and back on when dropped — or by the reaper
//! after a `kill -9`.

use crate::cleanup::{self, Resource};
use crate::ethtool;
use crate::netlink::Netlink;
use crate::netns::NetNs;
use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;

/// Offloads turned off, as bits: what the guard turns back on.
pub const TX_CSUM: u8 = 1;
pub const TX_VLAN: u8 = 2;
pub const TX_STAG: u8 = 4;

/// Where a veth's peer is: its namespace (a path; `None`: ours), index
/// and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub netns: Option<String>,
    pub ifindex: u32,
    pub name: String,
}

impl Peer {
    /// The peer of veth `dev`, or `None` when `dev` is not a veth with a
    /// peer this process can find.
    pub fn of(dev: &str) -> io::Result<Option<Peer>> {
        if ethtool::driver_name(dev) != "veth" {
            return Ok(None);
        }
        let mut nl = Netlink::open()?;
        let Some(link) = nl.get_link(dev)? else {
            return Ok(None);
        };
        let Some(ifindex) = link.link else {
            return Ok(None);
        };
        let netns = match link.link_netnsid {
            None => None,
            Some(id) => match find_netns(&mut nl, id)? {
                Some(path) => Some(path),
                None => return Ok(None),
            },
        };
        Peer::locate(netns, ifindex)
    }

    /// The device with index `ifindex` in namespace `netns` (a path;
    /// `None`: ours), if there is one.
    fn locate(netns: Option<String>, ifindex: u32) -> io::Result<Option<Peer>> {
        let probe = Peer {
            netns,
            ifindex,
            name: String::new(),
        };
        let link = probe.run(move || Netlink::open()?.get_link_by_index(ifindex))?;
        Ok(link.map(|l| Peer {
            name: l.name,
            ..probe
        }))
    }

    /// Runs `f` in the peer's namespace.
    pub fn run<R: Send>(&self, f: impl FnOnce() -> io::Result<R> + Send) -> io::Result<R> {
        match &self.netns {
            None => f(),
            Some(path) => NetNs::open(path)?.run(f),
        }
    }

    /// The command that does by hand what `take` does, for a message.
    pub fn ethtool_command(&self) -> String {
        let cmd = format!(
            "ethtool -K {} tx off txvlan off tx-vlan-stag-hw-insert off",
            self.name
        );
        match &self.netns {
            None => cmd,
            Some(p) => format!("nsenter --net={p} {cmd}"),
        }
    }
}

/// The namespace our namespace calls `id`: a path to it, among the named
/// ones (`/run/netns`) and those of running processes.
fn find_netns(nl: &mut Netlink, id: i32) -> io::Result<Option<String>> {
    let mut seen = std::collections::HashSet::new();
    let named = std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path());
    let procs = std::fs::read_dir("/proc")?
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .map(|e| e.path().join("ns/net"));
    for path in named.chain(procs) {
        let Ok(f) = File::open(&path) else { continue };
        // One question per namespace, however many processes share it.
        if !f.metadata().is_ok_and(|m| seen.insert(m.ino())) {
            continue;
        }
        // A namespace going away, or a /run/netns file not (or no
        // longer) mounted, answers with an error: not the one.
        if let Ok(Some(found)) = nl.nsid_of(f.as_fd()) {
            if found == id {
                return Ok(Some(path.display().to_string()));
            }
        }
    }
    Ok(None)
}

/// The peer's TX offloads pollgate turned off.
#[derive(Debug)]
pub struct PeerOffloadOff {
    pub peer: Peer,
    bits: u8,
}

impl PeerOffloadOff {
    /// Turns off whichever of TX checksum, 802.1Q and 802.1ad TX VLAN
    /// offload `peer` has on. `None` when none was on.
    pub fn take(peer: Peer) -> io::Result<Option<PeerOffloadOff>> {
        let name = peer.name.clone();
        let on = peer.run(move || {
            let mut on = 0;
            on |= TX_CSUM * ethtool::tx_checksum(&name)? as u8;
            on |= TX_VLAN * ethtool::tx_vlan_offload(&name)? as u8;
            on |= TX_STAG * ethtool::tx_stag_offload(&name)?.unwrap_or(false) as u8;
            Ok(on)
        })?;
        if on == 0 {
            return Ok(None);
        }
        let g = PeerOffloadOff { peer, bits: on };
        // Journaled first: a kill -9 half-way still has it restored.
        cleanup::created(&g.resource());
        set(&g.peer, on, false)?;
        Ok(Some(g))
    }

    fn resource(&self) -> Resource {
        Resource::PeerOffload {
            netns: self.peer.netns.clone().unwrap_or_else(|| "-".into()),
            ifindex: self.peer.ifindex,
            bits: self.bits,
        }
    }
}

impl Drop for PeerOffloadOff {
    fn drop(&mut self) {
        // The container may be gone with its end: nothing to restore.
        let _ = set(&self.peer, self.bits, true);
        cleanup::removed(&self.resource());
    }
}

fn set(peer: &Peer, bits: u8, on: bool) -> io::Result<()> {
    let name = peer.name.clone();
    peer.run(move || {
        if bits & TX_CSUM != 0 {
            ethtool::set_tx_checksum(&name, on)?;
        }
        if bits & TX_VLAN != 0 {
            ethtool::set_tx_vlan_offload(&name, on)?;
        }
        if bits & TX_STAG != 0 {
            ethtool::set_tx_stag_offload(&name, on)?;
        }
        Ok(())
    })
}

/// What the reaper does for a journaled `PeerOffload`: the device with
/// that index in that namespace, if it is still there, gets its offloads
/// back.
pub fn restore(netns: &str, ifindex: u32, bits: u8) -> io::Result<()> {
    let netns = (netns != "-").then(|| netns.to_string());
    match Peer::locate(netns, ifindex)? {
        Some(peer) => set(&peer, bits, true),
        None => Ok(()),
    }
}
