"""Checks that a rendered TRex profile builds, byte for byte, the frames
in a pcap written by `pollgate-pktgen dump` (the template table: every
size of the spec, then every flow).

    python check_profile.py PROFILE.py TEMPLATES.pcap

Runs on the TRex stand-in in emulator/ (scapy underneath).
"""

import importlib.util
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "emulator"))

from scapy.utils import rdpcap  # noqa: E402


def main(profile_path, pcap_path):
    spec = importlib.util.spec_from_file_location("profile", profile_path)
    profile = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(profile)
    streams = profile.register().get_streams()
    built = []
    for s in streams:
        built.extend(s.packet.packets(profile.FLOWS))
    want = [bytes(p) for p in rdpcap(pcap_path)]
    if len(built) != len(want):
        sys.exit("profile builds %d frames, pollgate-pktgen %d" % (len(built), len(want)))
    for i, (a, b) in enumerate(zip(built, want)):
        if a != b:
            at = next((j for j in range(min(len(a), len(b))) if a[j] != b[j]), min(len(a), len(b)))
            sys.exit("frame %d (stream %d, flow %d) differs at byte %d (lengths %d/%d):\n  trex   %s\n  pktgen %s"
                     % (i, i // profile.FLOWS, i % profile.FLOWS, at, len(a), len(b),
                        a[max(0, at - 4):at + 12].hex(), b[max(0, at - 4):at + 12].hex()))
    print("%s: %d streams, %d frames equal" % (os.path.basename(profile_path), len(streams), len(built)))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
