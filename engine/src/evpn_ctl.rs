//! `show evpn`: per VNI, what the kernel mirror holds (local MACs written
//! for zebra, remote MACs and VTEPs zebra installed) and whether it is in
//! sync, with the mirror's counters and last error.

use crate::ctl::CtlState;
use std::fmt::Write;

/// Answers `show evpn`, or `None` when `words` is not it.
pub fn handle(state: &CtlState, words: &[&str], json: bool) -> Option<Result<String, String>> {
    if words != ["show", "evpn"] {
        return None;
    }
    let s = match state.control.evpn.lock() {
        Ok(s) => s.clone(),
        Err(p) => p.into_inner().clone(),
    };
    if json {
        return Some(serde_json::to_string(&s).map_err(|e| e.to_string()));
    }
    if s.vnis.is_empty() {
        let why = if s.running {
            "no bridge has `evpn = true`"
        } else {
            "the EVPN mirror is not running"
        };
        return Some(Ok(format!("evpn: {why}\n")));
    }
    let mut out = format!(
        "underlay: {}\n{:<9} {:<12} {:>6} {:>7} {:>5} {:>6}  {:<8} {:<24} remote VTEPs\n",
        if s.shared_underlay {
            "shared with the kernel"
        } else {
            "pollgate's alone"
        },
        "VNI",
        "bridge",
        "local",
        "remote",
        "l-ip",
        "r-ip",
        "state",
        "devices",
    );
    for v in &s.vnis {
        let _ = writeln!(
            out,
            "{:<9} {:<12} {:>6} {:>7} {:>5} {:>6}  {:<8} {:<24} {}",
            v.vni,
            v.domain,
            v.local_macs,
            v.remote_macs,
            v.local_ips,
            v.remote_ips,
            v.state,
            v.devices.join(","),
            if v.remote_vteps.is_empty() {
                "-".to_string()
            } else {
                v.remote_vteps.join(", ")
            }
        );
        if let Some(e) = &v.last_error {
            let _ = writeln!(out, "  vni {}: {e}", v.vni);
        }
    }
    let c = &s.counters;
    let _ = writeln!(
        out,
        "mirror: {} FDB writes, {} deletes; {} ARP entries written, {} removed; ARP: {} requests answered here, {} senders recorded; {} notifications, {} remote MACs added, {} removed; {} ARP entries taken, {} resolve requests; {} resyncs, {} overflows, {} held while zebra was down, {} errors",
        c.fdb_writes,
        c.fdb_deletes,
        c.neigh_writes,
        c.neigh_deletes,
        c.arp_suppressed,
        c.arp_snooped,
        c.events,
        c.remote_added,
        c.remote_removed,
        c.neighbours,
        c.resolve_requests,
        c.resyncs,
        c.overflows,
        c.held,
        c.errors
    );
    if let Some(e) = &s.last_error {
        let _ = writeln!(out, "last error: {e}");
    }
    Some(Ok(out))
}
