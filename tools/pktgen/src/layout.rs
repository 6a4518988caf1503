//! Where the fields a flow varies sit in the frame: the renderers write
//! these offsets into TRex field-engine and pktgen range commands.

use crate::frame::VXLAN_OVERHEAD;
use crate::spec::Spec;

pub struct Layout {
    /// Start of the (inner) IP header and of its L4 header.
    pub l3: usize,
    pub l4: usize,
    /// The low 32 bits of the source address.
    pub src_ip_low32: usize,
    pub sport: usize,
    /// VXLAN's outer UDP source port.
    pub outer_sport: Option<usize>,
    /// The low 32 bits of the (inner) source MAC.
    pub src_mac_low32: usize,
}

impl Layout {
    pub fn of(spec: &Spec) -> Layout {
        let outer = if spec.vxlan.is_some() {
            VXLAN_OVERHEAD
        } else {
            0
        };
        let l3 = outer + 14 + 4 * spec.vlan.len();
        let (l4, src_ip_low32) = if spec.src_ip.is_ipv4() {
            (l3 + 20, l3 + 12)
        } else {
            (l3 + 40, l3 + 8 + 12)
        };
        Layout {
            l3,
            l4,
            src_ip_low32,
            sport: l4,
            outer_sport: spec.vxlan.as_ref().map(|_| 14 + 20),
            src_mac_low32: outer + 6 + 2,
        }
    }
}
