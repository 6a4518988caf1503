//! Another tool's XDP program on a device pollgate is asked to use:
//! refused, naming the program; replaced atomically with `force`; on
//! release only pollgate's own program is removed. A program pollgate
//! left behind (a killed forced run) is pollgate's to replace. Needs root.

use pollgate_pmd::afxdp::attach::{XdpAttachment, XdpMode};
use pollgate_pmd::afxdp::bpf;
use pollgate_pmd::afxdp::Steer;
use pollgate_pmd::netlink::Netlink;
use std::os::fd::AsRawFd;

const SKB: u32 = 1 << 1;

fn prog_on(nl: &mut Netlink, dev: &str) -> Option<u32> {
    nl.get_link(dev).unwrap().and_then(|l| l.xdp_prog_id)
}

#[test]
fn foreign_programs_are_refused_or_replaced_and_ours_only_removed() {
    if !pollgate_pmd::device::is_root() {
        eprintln!("SKIP xdp takeover: needs root (veth, XDP)");
        return;
    }
    let id = std::process::id() % 10000;
    let (a, b) = (format!("pgxa{id}"), format!("pgxb{id}"));
    let mut nl = Netlink::open().unwrap();
    nl.create_veth(&a, &b, None, 1).unwrap();
    let ifindex = nl.get_link(&a).unwrap().unwrap().index;
    // Removes the pair however the test ends.
    struct Pair(u32);
    impl Drop for Pair {
        fn drop(&mut self) {
            if let Ok(mut nl) = Netlink::open() {
                let _ = nl.delete_link(self.0);
            }
        }
    }
    let _pair = Pair(ifindex);

    // Another tool's program, attached the netlink way (generic mode).
    let foreign = bpf::load_pass_prog("other_tool").unwrap();
    let foreign_id = bpf::prog_id(&foreign).unwrap();
    nl.set_xdp(ifindex, foreign.as_raw_fd(), SKB, None).unwrap();
    assert_eq!(prog_on(&mut nl, &a), Some(foreign_id));

    // Refused, naming it; the foreign program stays.
    let e = match XdpAttachment::attach(&a, ifindex, 1, XdpMode::Generic, false, Steer::All) {
        Ok(_) => panic!("attached over another tool's program"),
        Err(e) => e.to_string(),
    };
    assert!(
        e.contains("other_tool") && e.contains("force = true"),
        "{e}"
    );
    assert_eq!(prog_on(&mut nl, &a), Some(foreign_id));

    // With force: replaced in one step (the device never goes without a
    // program), and on release ours is removed.
    let ours = XdpAttachment::attach(&a, ifindex, 1, XdpMode::Generic, true, Steer::All).unwrap();
    assert!(ours.replaced());
    assert_eq!(prog_on(&mut nl, &a), Some(ours.prog_id()));
    drop(ours);
    assert_eq!(prog_on(&mut nl, &a), None, "ours removed on release");

    // If someone attached a program after ours, release leaves it alone.
    nl.set_xdp(ifindex, foreign.as_raw_fd(), SKB, None).unwrap();
    let ours = XdpAttachment::attach(&a, ifindex, 1, XdpMode::Generic, true, Steer::All).unwrap();
    let foreign2 = bpf::load_pass_prog("later_tool").unwrap();
    let ours_fd = bpf::prog_by_id(ours.prog_id()).unwrap();
    nl.set_xdp(
        ifindex,
        foreign2.as_raw_fd(),
        SKB,
        Some(ours_fd.as_raw_fd()),
    )
    .unwrap();
    let later = bpf::prog_id(&foreign2).unwrap();
    drop(ours);
    assert_eq!(prog_on(&mut nl, &a), Some(later), "not ours: left in place");

    // A program of pollgate's own name (left by a killed forced run) is
    // replaced without force.
    nl.set_xdp(
        ifindex,
        foreign.as_raw_fd(),
        SKB,
        Some(foreign2.as_raw_fd()),
    )
    .unwrap();
    let stale = XdpAttachment::attach(&a, ifindex, 1, XdpMode::Generic, true, Steer::All).unwrap();
    assert!(stale.replaced());
    let stale_fd = bpf::prog_by_id(stale.prog_id()).unwrap();
    // Forget it the way a killed process would: the netlink attachment
    // stays, the attachment object is never dropped.
    std::mem::forget(stale);
    assert_eq!(prog_on(&mut nl, &a), Some(bpf::prog_id(&stale_fd).unwrap()));
    let fresh = XdpAttachment::attach(&a, ifindex, 1, XdpMode::Generic, false, Steer::All).unwrap();
    assert!(fresh.replaced());
    assert_eq!(prog_on(&mut nl, &a), Some(fresh.prog_id()));
    drop(fresh);
    assert_eq!(prog_on(&mut nl, &a), None);
}

#[test]
fn a_handover_stays_at_exit_and_the_next_start_replaces_it_in_one_step() {
    if !pollgate_pmd::device::is_root() {
        eprintln!("SKIP xdp handover: needs root (veth, XDP)");
        return;
    }
    let id = std::process::id() % 10000;
    let (a, b) = (format!("pgha{id}"), format!("pghb{id}"));
    let mut nl = Netlink::open().unwrap();
    nl.create_veth(&a, &b, None, 1).unwrap();
    let ifindex = nl.get_link(&a).unwrap().unwrap().index;
    struct Pair(u32);
    impl Drop for Pair {
        fn drop(&mut self) {
            if let Ok(mut nl) = Netlink::open() {
                let _ = nl.delete_link(self.0);
            }
        }
    }
    let _pair = Pair(ifindex);

    // First start, on a device with no program: attached, and left in
    // place at exit.
    let first =
        XdpAttachment::attach_handover(&a, ifindex, 1, XdpMode::Native, false, Steer::All).unwrap();
    assert!(first.native());
    let p1 = first.prog_id();
    drop(first);
    assert_eq!(prog_on(&mut nl, &a), Some(p1), "left for the next start");

    // Next start: replaces it in one step (XDP_FLAGS_REPLACE against p1:
    // the device is never without a program), and leaves its own.
    let second =
        XdpAttachment::attach_handover(&a, ifindex, 1, XdpMode::Native, false, Steer::All).unwrap();
    let p2 = second.prog_id();
    assert_ne!(p1, p2);
    assert_eq!(prog_on(&mut nl, &a), Some(p2));
    drop(second);
    assert_eq!(prog_on(&mut nl, &a), Some(p2));

    // A start without hand-over takes over pollgate's own left program
    // the same way (by name), and removes it at exit.
    let last = XdpAttachment::attach(&a, ifindex, 1, XdpMode::Native, false, Steer::All).unwrap();
    assert!(last.replaced());
    drop(last);
    assert_eq!(prog_on(&mut nl, &a), None);

    // Another tool's program is not handed over to without force.
    let foreign = bpf::load_pass_prog("other_tool").unwrap();
    nl.set_xdp(ifindex, foreign.as_raw_fd(), SKB, None).unwrap();
    let e =
        match XdpAttachment::attach_handover(&a, ifindex, 1, XdpMode::Generic, false, Steer::All) {
            Ok(_) => panic!("handed over onto another tool's program"),
            Err(e) => e.to_string(),
        };
    assert!(e.contains("other_tool"), "{e}");
}
