//! Removing what pollgate created even when pollgate cannot: a `kill -9`
//! runs no destructor. The engine starts a small reaper process and hands
//! it, through a pipe, a journal of every device and namespace it creates
//! and removes. When the pipe closes, the reaper removes whatever the
//! journal still lists. XDP programs attached through a bpf_link need no
//! reaper (the link dies with the process); one that replaced another
//! program by netlink is listed, and removed only if it is still the
//! program on the device.

use crate::netlink::Netlink;
use crate::netns::NetNs;
use std::collections::BTreeSet;
use std::io::{BufRead, Write};
use std::sync::Mutex;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Resource {
    /// A MAC pollgate added to a device's unicast filter (a macvlan
    /// member's, ipvlan's shared one), to be removed.
    UnicastFilter {
        name: String,
        ifindex: u32,
        mac: [u8; 6],
    },
    /// TX offloads pollgate turned off on the peer of a veth it did not
    /// create: its namespace ("-": the engine's own), index, and which
    /// (`veth_peer::TX_*` bits).
    PeerOffload {
        netns: String,
        ifindex: u32,
        bits: u8,
    },
    /// Promiscuous mode pollgate turned on (macvlan passthru).
    Promisc {
        name: String,
        ifindex: u32,
    },
    /// RX VLAN offload pollgate turned off on a device it did not create
    /// (to be turned back on).
    RxVlanOff {
        name: String,
        ifindex: u32,
    },
    /// An XDP program pollgate attached by netlink: device name and
    /// index, program id, and the mode flags it was attached with.
    Xdp {
        name: String,
        ifindex: u32,
        prog_id: u32,
        flags: u32,
    },
    /// A device in the engine's namespace, by name and index (the index
    /// keeps the reaper from deleting a newer device of the same name).
    Device {
        name: String,
        ifindex: u32,
    },
    Netns {
        name: String,
    },
}

impl Resource {
    fn line(&self) -> String {
        match self {
            Resource::Device { name, ifindex } => format!("dev {name} {ifindex}"),
            Resource::Netns { name } => format!("netns {name}"),
            Resource::RxVlanOff { name, ifindex } => format!("rxvlan {name} {ifindex}"),
            Resource::Promisc { name, ifindex } => format!("promisc {name} {ifindex}"),
            Resource::PeerOffload {
                netns,
                ifindex,
                bits,
            } => format!("peeroffload {netns} {ifindex} {bits}"),
            Resource::UnicastFilter { name, ifindex, mac } => {
                let m: Vec<String> = mac.iter().map(|b| format!("{b:02x}")).collect();
                format!("ucfilter {name} {ifindex} {}", m.join(":"))
            }
            Resource::Xdp {
                name,
                ifindex,
                prog_id,
                flags,
            } => format!("xdp {name} {ifindex} {prog_id} {flags}"),
        }
    }

    fn parse(s: &str) -> Option<Resource> {
        let mut w = s.split_whitespace();
        if let Some(rest) = s.strip_prefix("ucfilter ") {
            let v: Vec<&str> = rest.split_whitespace().collect();
            let [name, i, m] = v.as_slice() else {
                return None;
            };
            let bytes: Vec<u8> = m
                .split(':')
                .map(|b| u8::from_str_radix(b, 16).ok())
                .collect::<Option<_>>()?;
            return Some(Resource::UnicastFilter {
                name: name.to_string(),
                ifindex: i.parse().ok()?,
                mac: bytes.try_into().ok()?,
            });
        }
        if s.starts_with("xdp ") {
            let v: Vec<&str> = w.skip(1).collect();
            return match v.as_slice() {
                [name, i, p, f] => Some(Resource::Xdp {
                    name: name.to_string(),
                    ifindex: i.parse().ok()?,
                    prog_id: p.parse().ok()?,
                    flags: f.parse().ok()?,
                }),
                _ => None,
            };
        }
        match (w.next()?, w.next()?, w.next()) {
            ("dev", name, Some(idx)) => Some(Resource::Device {
                name: name.to_string(),
                ifindex: idx.parse().ok()?,
            }),
            ("netns", name, None) => Some(Resource::Netns {
                name: name.to_string(),
            }),
            ("rxvlan", name, Some(idx)) => Some(Resource::RxVlanOff {
                name: name.to_string(),
                ifindex: idx.parse().ok()?,
            }),
            ("peeroffload", netns, Some(idx)) => Some(Resource::PeerOffload {
                netns: netns.to_string(),
                ifindex: idx.parse().ok()?,
                bits: w.next()?.parse().ok()?,
            }),
            ("promisc", name, Some(idx)) => Some(Resource::Promisc {
                name: name.to_string(),
                ifindex: idx.parse().ok()?,
            }),
            _ => None,
        }
    }
}

type Journal = Box<dyn Write + Send>;
static JOURNAL: Mutex<Option<Journal>> = Mutex::new(None);

/// Sends every later `created`/`removed` to `w` (the reaper's stdin).
pub fn install(w: Journal) {
    if let Ok(mut j) = JOURNAL.lock() {
        *j = Some(w);
    }
}

fn write(line: String) {
    if let Ok(mut j) = JOURNAL.lock() {
        if let Some(w) = j.as_mut() {
            let _ = writeln!(w, "{line}").and_then(|_| w.flush());
        }
    }
}

pub fn created(r: &Resource) {
    write(format!("+{}", r.line()));
}

pub fn removed(r: &Resource) {
    write(format!("-{}", r.line()));
}

/// The reaper: reads the journal until EOF, then removes what is left,
/// devices before namespaces. Returns what it removed.
pub fn reap(input: impl BufRead) -> Vec<Resource> {
    let mut live = BTreeSet::new();
    for line in input.lines() {
        let Ok(line) = line else { break };
        let (add, rest) = match line.split_at_checked(1) {
            Some(("+", r)) => (true, r),
            Some(("-", r)) => (false, r),
            _ => continue,
        };
        if let Some(r) = Resource::parse(rest) {
            if add {
                live.insert(r);
            } else {
                live.remove(&r);
            }
        }
    }
    let mut done = Vec::new();
    // BTreeSet order: filters, offloads, programs, then devices, then
    // namespaces.
    for r in live {
        // The same device still (its index), or nothing to undo.
        let same = |nl: &mut Netlink, name: &str, ifindex: u32| {
            Ok::<_, std::io::Error>(nl.get_link(name)?.filter(|l| l.index == ifindex))
        };
        let ok = match &r {
            Resource::UnicastFilter { name, ifindex, mac } => Netlink::open()
                .and_then(|mut nl| match same(&mut nl, name, *ifindex)? {
                    Some(l) => nl.del_unicast_filter(l.index, *mac),
                    None => Ok(()),
                })
                .is_ok(),
            Resource::Promisc { name, ifindex } => Netlink::open()
                .and_then(|mut nl| match same(&mut nl, name, *ifindex)? {
                    Some(l) => nl.set_promisc(l.index, false),
                    None => Ok(()),
                })
                .is_ok(),
            Resource::PeerOffload {
                netns,
                ifindex,
                bits,
            } => crate::veth_peer::restore(netns, *ifindex, *bits).is_ok(),
            Resource::RxVlanOff { name, ifindex } => Netlink::open()
                .and_then(|mut nl| match nl.get_link(name)? {
                    Some(l) if l.index == *ifindex => {
                        crate::ethtool::set_rx_vlan_offload(name, true)
                    }
                    _ => Ok(()),
                })
                .is_ok(),
            Resource::Xdp {
                name,
                ifindex,
                prog_id,
                flags,
            } => Netlink::open()
                .and_then(|mut nl| match nl.get_link(name)? {
                    // Only the program we attached, still there.
                    Some(l) if l.index == *ifindex && l.xdp_prog_id == Some(*prog_id) => {
                        let prog = crate::afxdp::bpf::prog_by_id(*prog_id)?;
                        use std::os::fd::AsRawFd;
                        nl.set_xdp(l.index, -1, *flags, Some(prog.as_raw_fd()))
                    }
                    _ => Ok(()),
                })
                .is_ok(),
            Resource::Device { name, ifindex } => Netlink::open()
                .and_then(|mut nl| match nl.get_link(name)? {
                    Some(l) if l.index == *ifindex => nl.delete_link(l.index),
                    _ => Ok(()),
                })
                .is_ok(),
            Resource::Netns { name } => match NetNs::delete(name) {
                Ok(()) => true,
                Err(e) => {
                    eprintln!("pollgate reaper: cannot remove namespace {name}: {e}");
                    false
                }
            },
        };
        if ok {
            done.push(r);
        }
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_lines_round_trip() {
        for r in [
            Resource::Device {
                name: "pg-c1".into(),
                ifindex: 42,
            },
            Resource::Netns {
                name: "pg-web".into(),
            },
            Resource::Xdp {
                name: "enp1s0".into(),
                ifindex: 3,
                prog_id: 77,
                flags: 4,
            },
            Resource::RxVlanOff {
                name: "enp1s0".into(),
                ifindex: 3,
            },
            Resource::Promisc {
                name: "enp1s0".into(),
                ifindex: 3,
            },
            Resource::PeerOffload {
                netns: "/proc/4242/ns/net".into(),
                ifindex: 7,
                bits: 5,
            },
            Resource::UnicastFilter {
                name: "enp1s0".into(),
                ifindex: 3,
                mac: [2, 0x50, 0x47, 0, 0xab, 0xff],
            },
        ] {
            assert_eq!(Resource::parse(&r.line()), Some(r));
        }
        assert_eq!(Resource::parse("dev x notanumber"), None);
        assert_eq!(Resource::parse("garbage"), None);
    }

    #[test]
    fn removed_entries_are_not_reaped() {
        // Nothing is left, so nothing is touched.
        let input = "+netns pg-none-such\n-netns pg-none-such\n+dev pgnone 99999\n-dev pgnone 99999\nnoise\n";
        assert!(reap(input.as_bytes()).is_empty());
    }
}
