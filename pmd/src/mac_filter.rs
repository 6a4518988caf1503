//! The receive filter of a parent device whose containers have MACs of
//! their own (macvlan) or share one pollgate answers for (ipvlan): a NIC
//! drops unicast frames for addresses it was not told about before XDP
//! sees them. As Linux macvlan does, the addresses go into the device's
//! unicast list, which the driver programs into its filter (and which
//! turns the device promiscuous where it has none); `passthru` sets the
//! device promiscuous. Undone on drop, only what pollgate added.

use crate::cleanup::Resource;
use crate::netlink::Netlink;
use std::io;

pub struct MacFilter {
    pub iface: String,
    index: u32,
    added: Vec<[u8; 6]>,
    promisc: bool,
}

impl MacFilter {
    /// Adds `macs` to `iface`'s unicast filter, and with `promisc` turns it
    /// promiscuous unless it already was.
    pub fn program(iface: &str, macs: &[[u8; 6]], promisc: bool) -> io::Result<MacFilter> {
        let mut nl = Netlink::open()?;
        let link = nl
            .get_link(iface)?
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no device {iface}")))?;
        let mut f = MacFilter {
            iface: iface.to_string(),
            index: link.index,
            added: Vec::new(),
            promisc: false,
        };
        for &mac in macs {
            // Journaled first: a kill -9 right after the add still has the
            // reaper remove it. On failure `f` drops and removes what was
            // added before.
            crate::cleanup::created(&f.filter_entry(mac));
            match nl.add_unicast_filter(link.index, mac) {
                Ok(true) => f.added.push(mac),
                // There already: not ours to remove.
                Ok(false) => crate::cleanup::removed(&f.filter_entry(mac)),
                Err(e) => {
                    crate::cleanup::removed(&f.filter_entry(mac));
                    return Err(e);
                }
            }
        }
        if promisc && !link.promisc {
            crate::cleanup::created(&f.promisc_entry());
            if let Err(e) = nl.set_promisc(link.index, true) {
                crate::cleanup::removed(&f.promisc_entry());
                return Err(e);
            }
            f.promisc = true;
        }
        Ok(f)
    }

    fn filter_entry(&self, mac: [u8; 6]) -> Resource {
        Resource::UnicastFilter {
            name: self.iface.clone(),
            ifindex: self.index,
            mac,
        }
    }

    fn promisc_entry(&self) -> Resource {
        Resource::Promisc {
            name: self.iface.clone(),
            ifindex: self.index,
        }
    }

    pub fn addresses(&self) -> &[[u8; 6]] {
        &self.added
    }
}

impl Drop for MacFilter {
    fn drop(&mut self) {
        let Ok(mut nl) = Netlink::open() else {
            return;
        };
        for &mac in &self.added {
            // The device may be gone with its container: nothing to undo.
            let _ = nl.del_unicast_filter(self.index, mac);
            crate::cleanup::removed(&self.filter_entry(mac));
        }
        if self.promisc {
            // Gone with its container, or refused: nothing more to do at
            // exit; the device is the same as any other promiscuous one.
            let _ = nl.set_promisc(self.index, false);
            crate::cleanup::removed(&self.promisc_entry());
        }
    }
}
