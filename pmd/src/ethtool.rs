//! The few ethtool settings pollgate changes, through the SIOCETHTOOL
//! ioctl (on a socket of the caller's namespace).

use std::io;

const ETHTOOL_STXCSUM: u32 = 0x17;

#[repr(C)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

#[repr(C)]
struct DrvInfo {
    cmd: u32,
    driver: [u8; 32],
    rest: [u8; 160],
}

const ETHTOOL_GDRVINFO: u32 = 0x3;

#[repr(C)]
struct IfReq {
    name: [u8; 16],
    data: *mut libc::c_void,
    _pad: [u8; 16],
}

/// # Safety
/// `data` must point to the ethtool command struct `cmd` expects, valid
/// for reads and writes of its whole size.
unsafe fn ethtool(ifname: &str, data: *mut libc::c_void) -> io::Result<()> {
    let mut req = IfReq {
        name: [0; 16],
        data,
        _pad: [0; 16],
    };
    let n = ifname.len().min(15);
    req.name[..n].copy_from_slice(&ifname.as_bytes()[..n]);
    // SAFETY: a datagram socket used only for this ioctl, closed below.
    let s = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if s < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: SIOCETHTOOL reads `req` and reads/writes the command struct
    // behind `req.data`, which the caller vouches for.
    let r = unsafe { libc::ioctl(s, libc::SIOCETHTOOL, &mut req as *mut IfReq) };
    let e = io::Error::last_os_error();
    // SAFETY: `s` is the socket opened above.
    unsafe { libc::close(s) };
    if r < 0 {
        Err(e)
    } else {
        Ok(())
    }
}

fn ioctl_value(ifname: &str, cmd: u32, data: u32) -> io::Result<u32> {
    let mut v = EthtoolValue { cmd, data };
    // SAFETY: an ethtool_value command with a live `EthtoolValue`.
    unsafe { ethtool(ifname, &mut v as *mut EthtoolValue as *mut libc::c_void) }?;
    Ok(v.data)
}

/// Driver name of a device (ETHTOOL_GDRVINFO), for reports; "unknown"
/// when the device does not say.
pub fn driver_name(ifname: &str) -> String {
    let mut info = DrvInfo {
        cmd: ETHTOOL_GDRVINFO,
        driver: [0; 32],
        rest: [0; 160],
    };
    // SAFETY: GDRVINFO with a live, full-size `DrvInfo`.
    if unsafe { ethtool(ifname, &mut info as *mut DrvInfo as *mut libc::c_void) }.is_err() {
        return "unknown".into();
    }
    let end = info.driver.iter().position(|b| *b == 0).unwrap_or(32);
    String::from_utf8_lossy(&info.driver[..end]).into_owned()
}

/// Turns TX checksum offload of `ifname` on or off.
///
/// A container's veth end offloads checksums by default: its kernel sends
/// frames whose TCP/UDP checksum is only a partial sum, trusting the skb
/// metadata to tell the receiver. AF_XDP sees bytes, not metadata, so such
/// frames would arrive with bad checksums after crossing pollgate. With
/// offload off the sender computes them in software.
pub fn set_tx_checksum(ifname: &str, on: bool) -> io::Result<()> {
    ioctl_value(ifname, ETHTOOL_STXCSUM, on as u32).map(|_| ())
}

const ETHTOOL_GCHANNELS: u32 = 0x3c;

#[repr(C)]
#[derive(Default)]
struct Channels {
    cmd: u32,
    max_rx: u32,
    max_tx: u32,
    max_other: u32,
    max_combined: u32,
    rx_count: u32,
    tx_count: u32,
    other_count: u32,
    combined_count: u32,
}

/// RX queues the device has now (dedicated RX plus combined channels).
pub fn rx_queues(ifname: &str) -> io::Result<u32> {
    let mut c = Channels {
        cmd: ETHTOOL_GCHANNELS,
        ..Channels::default()
    };
    // SAFETY: GCHANNELS with a live, full-size `Channels`.
    unsafe { ethtool(ifname, &mut c as *mut Channels as *mut libc::c_void) }?;
    Ok(c.rx_count + c.combined_count)
}

const ETHTOOL_GFLAGS: u32 = 0x25;
const ETHTOOL_SFLAGS: u32 = 0x26;
const ETH_FLAG_TXVLAN: u32 = 1 << 7;
const ETH_FLAG_RXVLAN: u32 = 1 << 8;

/// RX VLAN offload turned off on a device pollgate serves but did not
/// create (a NIC): with it on, the NIC strips tags into metadata XDP
/// cannot see, so trunk and QinQ ports would see untagged frames. Turned
/// back on when dropped, and by the reaper after a `kill -9`.
#[derive(Debug)]
pub struct RxVlanOff {
    ifname: String,
    ifindex: u32,
}

impl RxVlanOff {
    /// Turns RX VLAN offload off on `ifname` if it is on. `None` when it
    /// was already off: there is nothing to restore.
    pub fn take(ifname: &str, ifindex: u32) -> io::Result<Option<RxVlanOff>> {
        if !set_flags(ifname, ETH_FLAG_RXVLAN, false)? {
            return Ok(None);
        }
        let off = RxVlanOff {
            ifname: ifname.to_string(),
            ifindex,
        };
        crate::cleanup::created(&off.resource());
        Ok(Some(off))
    }

    fn resource(&self) -> crate::cleanup::Resource {
        crate::cleanup::Resource::RxVlanOff {
            name: self.ifname.clone(),
            ifindex: self.ifindex,
        }
    }
}

impl Drop for RxVlanOff {
    fn drop(&mut self) {
        if let Err(e) = set_rx_vlan_offload(&self.ifname, true) {
            eprintln!(
                "pollgate: could not turn RX VLAN offload back on for {}: {e}",
                self.ifname
            );
        }
        crate::cleanup::removed(&self.resource());
    }
}

/// Whether RX VLAN offload is on.
pub fn rx_vlan_offload(ifname: &str) -> io::Result<bool> {
    Ok(ioctl_value(ifname, ETHTOOL_GFLAGS, 0)? & ETH_FLAG_RXVLAN != 0)
}

/// Turns TX VLAN offload on or off: on, a tag in skb metadata leaves the
/// device as metadata (a veth peer's XDP never sees it); off, the kernel
/// writes it into the frame before the device gets it.
pub fn set_tx_vlan_offload(ifname: &str, on: bool) -> io::Result<()> {
    set_flags(ifname, ETH_FLAG_TXVLAN, on).map(drop)
}

/// Turns RX VLAN offload on or off.
pub fn set_rx_vlan_offload(ifname: &str, on: bool) -> io::Result<()> {
    set_flags(ifname, ETH_FLAG_RXVLAN, on).map(drop)
}

/// Sets or clears the `mask` bits of the device's ethtool flags; true
/// when that changed them.
fn set_flags(ifname: &str, mask: u32, on: bool) -> io::Result<bool> {
    let flags = ioctl_value(ifname, ETHTOOL_GFLAGS, 0)?;
    let want = if on { flags | mask } else { flags & !mask };
    if want != flags {
        ioctl_value(ifname, ETHTOOL_SFLAGS, want)?;
    }
    Ok(want != flags)
}

/// Turns VLAN tag offload off in both directions.
///
/// With it on, a sending kernel keeps a VLAN device's tag in skb metadata
/// (XDP never sees it) and a receiving kernel strips the tag before packet
/// sockets look (tcpdump reads it back from metadata; raw readers do not).
/// Off, the tag travels in the frame bytes, where pollgate puts and looks
/// for it.
///
/// The flags cover only 802.1Q tags; an 802.1ad S-tag (a bridge in the
/// container forwarding QinQ frames) has features of its own.
pub fn disable_vlan_offload(ifname: &str) -> io::Result<()> {
    set_flags(ifname, ETH_FLAG_RXVLAN | ETH_FLAG_TXVLAN, false)?;
    set_features(
        ifname,
        &["tx-vlan-stag-hw-insert", "rx-vlan-stag-hw-parse"],
        false,
    )
}

const ETHTOOL_GTXCSUM: u32 = 0x16;
const ETHTOOL_GSTRINGS: u32 = 0x1b;
const ETHTOOL_GSSET_INFO: u32 = 0x37;
const ETHTOOL_GFEATURES: u32 = 0x3a;
const ETHTOOL_SFEATURES: u32 = 0x3b;
const ETH_SS_FEATURES: u32 = 4;
const ETH_GSTRING_LEN: usize = 32;

/// Whether TX checksum offload is on.
pub fn tx_checksum(ifname: &str) -> io::Result<bool> {
    Ok(ioctl_value(ifname, ETHTOOL_GTXCSUM, 0)? != 0)
}

/// Whether 802.1Q TX VLAN offload is on.
pub fn tx_vlan_offload(ifname: &str) -> io::Result<bool> {
    Ok(ioctl_value(ifname, ETHTOOL_GFLAGS, 0)? & ETH_FLAG_TXVLAN != 0)
}

/// 802.1ad TX offload (`tx-vlan-stag-hw-insert`): `None` when the device
/// has no such feature.
pub fn tx_stag_offload(ifname: &str) -> io::Result<Option<bool>> {
    let (count, bits) = feature_bits(ifname, &["tx-vlan-stag-hw-insert"])?;
    let Some(&bit) = bits.first() else {
        return Ok(None);
    };
    let active = active_features(ifname, count)?;
    Ok(Some(active[bit / 32] >> (bit % 32) & 1 == 1))
}

pub fn set_tx_stag_offload(ifname: &str, on: bool) -> io::Result<()> {
    set_features(ifname, &["tx-vlan-stag-hw-insert"], on)
}

/// How many features the device names, and the bits of those in `names`
/// (found by name in its string set: their numbers change between
/// kernels).
fn feature_bits(ifname: &str, names: &[&str]) -> io::Result<(usize, Vec<usize>)> {
    // struct ethtool_sset_info { cmd, reserved, u64 sset_mask, u32 data[] }
    let mut info = [0u32; 5];
    info[0] = ETHTOOL_GSSET_INFO;
    info[2] = 1 << ETH_SS_FEATURES;
    // SAFETY: an ethtool_sset_info with room for the one count asked for.
    unsafe { ethtool(ifname, info.as_mut_ptr().cast()) }?;
    let count = info[4] as usize;
    // struct ethtool_gstrings { cmd, string_set, len, u8 data[len * 32] }
    let mut strings = vec![0u32; 3 + count * ETH_GSTRING_LEN / 4];
    strings[0] = ETHTOOL_GSTRINGS;
    strings[1] = ETH_SS_FEATURES;
    strings[2] = count as u32;
    // SAFETY: an ethtool_gstrings with room for `count` strings.
    unsafe { ethtool(ifname, strings.as_mut_ptr().cast()) }?;
    let table: Vec<u8> = strings[3..].iter().flat_map(|w| w.to_ne_bytes()).collect();
    let bits = table
        .chunks(ETH_GSTRING_LEN)
        .enumerate()
        .filter(|(_, name)| {
            let len = name.iter().position(|&b| b == 0).unwrap_or(ETH_GSTRING_LEN);
            names.iter().any(|n| n.as_bytes() == &name[..len])
        })
        .map(|(bit, _)| bit)
        .collect();
    Ok((count, bits))
}

/// The active feature words of a device with `count` features.
fn active_features(ifname: &str, count: usize) -> io::Result<Vec<u32>> {
    let blocks = count.div_ceil(32);
    // struct ethtool_gfeatures { cmd, size, { available, requested,
    // active, never_changed }[size] }
    let mut get = vec![0u32; 2 + 4 * blocks];
    get[0] = ETHTOOL_GFEATURES;
    get[1] = blocks as u32;
    // SAFETY: an ethtool_gfeatures with `blocks` feature blocks.
    unsafe { ethtool(ifname, get.as_mut_ptr().cast()) }?;
    Ok((0..blocks).map(|b| get[2 + 4 * b + 2]).collect())
}

/// Turns the named features on or off (ETHTOOL_SFEATURES); names the
/// device does not have are left alone.
fn set_features(ifname: &str, names: &[&str], on: bool) -> io::Result<()> {
    let (count, bits) = feature_bits(ifname, names)?;
    if bits.is_empty() {
        return Ok(());
    }
    let blocks = count.div_ceil(32);
    // struct ethtool_sfeatures { cmd, size, { valid, requested }[size] }
    let mut set = vec![0u32; 2 + 2 * blocks];
    set[0] = ETHTOOL_SFEATURES;
    set[1] = blocks as u32;
    for bit in bits {
        set[2 + 2 * (bit / 32)] |= 1 << (bit % 32);
        if on {
            set[3 + 2 * (bit / 32)] |= 1 << (bit % 32);
        }
    }
    // SAFETY: an ethtool_sfeatures with `blocks` feature blocks.
    unsafe { ethtool(ifname, set.as_mut_ptr().cast()) }
}
