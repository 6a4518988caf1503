"""A stand-in for TRex's trex_stl_lib.api, enough to build the packets a
pollgate-rendered profile describes without a TRex installation.

It implements, on scapy, exactly the field-engine instructions the
renderer emits (var with op="inc", write, fix_chksum, fix_chksum_hw with
numeric offsets) with TRex's semantics: a variable starts at its
init_value (min_value by default), steps by `step` per packet and wraps
from max_value back to min_value; fix_chksum_hw recomputes the IPv4
header checksum (for an IPv4 L3) and the TCP/UDP checksum over the
pseudo-header. Anything else raises, so a profile that needs more than
this fails the test instead of passing unchecked.
"""

import struct

from scapy.all import *  # noqa: F401,F403  (profiles use scapy's names)
from scapy.all import Raw  # noqa: F401
from scapy.layers.l2 import Dot1AD, Dot1Q  # noqa: F401
from scapy.layers.vxlan import VXLAN  # noqa: F401


class CTRexVmInsFixHwCs:
    L4_TYPE_UDP = 11
    L4_TYPE_TCP = 13
    L4_TYPE_IP = 17


def _csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


class STLVM:
    def __init__(self):
        self.vars = {}
        self.program = []

    def var(self, name, min_value, max_value, size, op, step=1, init_value=None):
        if op != "inc" or not isinstance(min_value, int):
            raise NotImplementedError("emulator: only integer op='inc' variables")
        self.vars[name] = dict(min=min_value, max=max_value, size=size, step=step,
                               value=min_value if init_value is None else init_value)

    def write(self, fv_name, pkt_offset, add_val=0, byte_order="big"):
        if not isinstance(pkt_offset, int) or byte_order != "big":
            raise NotImplementedError("emulator: numeric offsets, big endian")
        self.program.append(("write", fv_name, pkt_offset, add_val))

    def fix_chksum(self, offset="IP"):
        if not isinstance(offset, int):
            raise NotImplementedError("emulator: numeric offsets")
        self.program.append(("ipv4", offset))

    def fix_chksum_hw(self, l3_offset, l4_offset, l4_type):
        if not (isinstance(l3_offset, int) and isinstance(l4_offset, int)):
            raise NotImplementedError("emulator: numeric offsets")
        self.program.append(("hw", l3_offset, l4_offset, l4_type))

    def run(self, pkt):
        """One packet out of the field engine; the variables step after."""
        b = bytearray(pkt)
        for ins in self.program:
            if ins[0] == "write":
                _, name, off, add = ins
                v = self.vars[name]
                size = v["size"]
                val = (v["value"] + add) % (1 << (8 * size))
                b[off:off + size] = val.to_bytes(size, "big")
            elif ins[0] == "ipv4":
                self._fix_ipv4(b, ins[1])
            else:
                _, l3, l4, l4_type = ins
                self._fix_hw(b, l3, l4, l4_type)
        for v in self.vars.values():
            nxt = v["value"] + v["step"]
            v["value"] = v["min"] if nxt > v["max"] else nxt
        return bytes(b)

    @staticmethod
    def _fix_ipv4(b, off):
        ihl = (b[off] & 0x0F) * 4
        b[off + 10:off + 12] = b"\0\0"
        b[off + 10:off + 12] = struct.pack("!H", ~_csum(bytes(b[off:off + ihl])) & 0xFFFF)

    def _fix_hw(self, b, l3, l4, l4_type):
        version = b[l3] >> 4
        if version == 4:
            self._fix_ipv4(b, l3)
            total = struct.unpack("!H", b[l3 + 2:l3 + 4])[0]
            end = l3 + total
            src, dst = bytes(b[l3 + 12:l3 + 16]), bytes(b[l3 + 16:l3 + 20])
        else:
            end = l4 + struct.unpack("!H", b[l3 + 4:l3 + 6])[0]
            src, dst = bytes(b[l3 + 8:l3 + 24]), bytes(b[l3 + 24:l3 + 40])
        proto, at = {CTRexVmInsFixHwCs.L4_TYPE_UDP: (17, 6),
                     CTRexVmInsFixHwCs.L4_TYPE_TCP: (6, 16)}[l4_type]
        b[l4 + at:l4 + at + 2] = b"\0\0"
        seg = bytes(b[l4:end])
        pseudo = src + dst + struct.pack("!BBH", 0, proto, len(seg))
        c = ~_csum(pseudo + seg) & 0xFFFF
        if proto == 17 and c == 0:
            c = 0xFFFF
        b[l4 + at:l4 + at + 2] = struct.pack("!H", c)


class STLPktBuilder:
    def __init__(self, pkt, vm=None):
        self.pkt = pkt
        self.vm = vm or STLVM()

    def packets(self, n):
        base = bytes(self.pkt)
        return [self.vm.run(base) for _ in range(n)]


class STLTXCont:
    def __init__(self, pps=None, percentage=None):
        if (pps is None) == (percentage is None):
            raise ValueError("give pps or percentage")
        self.pps, self.percentage = pps, percentage


class STLStream:
    def __init__(self, packet, mode, name=None):
        self.packet, self.mode, self.name = packet, mode, name
