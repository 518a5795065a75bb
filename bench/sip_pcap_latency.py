#!/usr/bin/env python3
# mypy: ignore-errors
# ruff: noqa: UP031 - kept as the bench kit wrote it (untyped, %-formatting), so the two stay comparable
# From the SIPp bench kit switchd's CPS figures were measured with; used by bench/sipp_cps.sh -C.
"""Microsecond SIP call-setup latency from a loopback pcap (tcpdump -w).

SIPp measures response times with a 1 ms clock, so on loopback most values
read 0 ms. This reads the capture that sipp_cps.sh -C takes and computes, per
Call-ID, from the packet timestamps:

  setup    INVITE seen going to TARGET port -> 200 OK (CSeq INVITE) coming back
           from TARGET port  (what the caller sees; includes the callee)
  callee   INVITE going to CALLEE port -> 200 OK from CALLEE port
           (the UAS's own share; only when a server sits in the middle)
  srv_inv  INVITE in on the caller leg -> INVITE out on the callee leg
  srv_200  200 OK in from the callee -> 200 OK out to the caller
           (srv_inv + srv_200 = time spent in the server under test)

A message's time is the timestamp of the packet that completes it.
Works for TCP (reassembles each direction of each connection) and UDP.
Standard library only.
"""
import argparse
import math
import re
import struct

START_RE = re.compile(rb'(?m)^(?:[A-Z]+ [^ \r\n]+ SIP/2\.0|SIP/2\.0 \d{3} )')
CL_RE = re.compile(rb'(?im)^(?:content-length|l)[ \t]*:[ \t]*(\d+)')
CALLID_RE = re.compile(rb'(?im)^(?:call-id|i)[ \t]*:[ \t]*([^\r\n]+?)[ \t]*\r?$')
CSEQ_RE = re.compile(rb'(?im)^cseq[ \t]*:[ \t]*\d+[ \t]+([A-Za-z]+)')


def packets(path):
    """Yield (ts, src, sport, dst, dport, proto, payload) for IPv4/IPv6 TCP/UDP."""
    with open(path, 'rb') as f:
        gh = f.read(24)
        if len(gh) < 24:
            return
        magic = struct.unpack('<I', gh[:4])[0]
        if magic in (0xa1b2c3d4, 0xa1b23c4d):
            endian = '<'
        elif magic in (0xd4c3b2a1, 0x4d3cb2a1):
            endian = '>'
        else:
            raise SystemExit('not a pcap file (pcapng is not supported): %s' % path)
        nano = struct.unpack(endian + 'I', gh[:4])[0] == 0xa1b23c4d
        linktype = struct.unpack(endian + 'I', gh[20:24])[0]
        div = 1e9 if nano else 1e6
        while True:
            ph = f.read(16)
            if len(ph) < 16:
                return
            sec, frac, incl, _orig = struct.unpack(endian + 'IIII', ph)
            data = f.read(incl)
            ts = sec + frac / div
            if linktype == 1:          # Ethernet (Linux lo)
                if len(data) < 14:
                    continue
                etype = struct.unpack('!H', data[12:14])[0]
                off = 14
            elif linktype == 113:      # Linux cooked
                etype = struct.unpack('!H', data[14:16])[0]
                off = 16
            elif linktype == 276:      # Linux cooked v2
                etype = struct.unpack('!H', data[0:2])[0]
                off = 20
            elif linktype == 0:        # BSD loopback
                fam = struct.unpack('<I', data[:4])[0]
                etype = 0x0800 if fam == 2 else 0x86dd
                off = 4
            elif linktype in (101, 12):  # raw IP
                etype = 0x0800 if data[0] >> 4 == 4 else 0x86dd
                off = 0
            else:
                raise SystemExit('unsupported link type %d' % linktype)
            if etype == 0x0800:
                ihl = (data[off] & 0x0f) * 4
                tot = struct.unpack('!H', data[off + 2:off + 4])[0]
                proto = data[off + 9]
                src, dst = data[off + 12:off + 16], data[off + 16:off + 20]
                l4 = off + ihl
                end = off + tot
            elif etype == 0x86dd:
                plen = struct.unpack('!H', data[off + 4:off + 6])[0]
                proto = data[off + 6]
                src, dst = data[off + 8:off + 24], data[off + 24:off + 40]
                l4 = off + 40
                end = l4 + plen
            else:
                continue
            if proto == 6:
                sport, dport = struct.unpack('!HH', data[l4:l4 + 4])
                doff = (data[l4 + 12] >> 4) * 4
                payload = data[l4 + doff:end]
                yield ts, src, sport, dst, dport, 'tcp', payload
            elif proto == 17:
                sport, dport = struct.unpack('!HH', data[l4:l4 + 4])
                yield ts, src, sport, dst, dport, 'udp', data[l4 + 8:end]


def messages(path):
    """Yield (ts, sport, dport, start_line, call_id, cseq_method)."""
    bufs = {}
    for ts, src, sport, dst, dport, proto, payload in packets(path):
        if not payload:
            continue
        if proto == 'udp':
            chunks = [payload]
            key = None
        else:
            key = (src, sport, dst, dport)
            buf = bufs.get(key, b'') + payload
            chunks = []
            while True:
                m = START_RE.search(buf)
                if not m:
                    buf = buf[-200:]     # keep a tail in case a start line is split
                    break
                if m.start():
                    buf = buf[m.start():]  # skip CRLF keepalives / garbage
                hend = buf.find(b'\r\n\r\n')
                if hend < 0:
                    break
                hdr = buf[:hend]
                cl = CL_RE.search(hdr)
                blen = int(cl.group(1)) if cl else 0
                total = hend + 4 + blen
                if len(buf) < total:
                    break
                chunks.append(buf[:total])
                buf = buf[total:]
            bufs[key] = buf
        for msg in chunks:
            hend = msg.find(b'\r\n\r\n')
            hdr = msg[:hend if hend >= 0 else len(msg)]
            first = hdr.split(b'\r\n', 1)[0].decode('latin-1')
            cid = CALLID_RE.search(hdr)
            cseq = CSEQ_RE.search(hdr)
            yield (ts, sport, dport, first,
                   cid.group(1).decode('latin-1') if cid else None,
                   cseq.group(1).decode('latin-1').upper() if cseq else None)


def pct(vals, q):
    if not vals:
        return float('nan')
    v = sorted(vals)
    return v[max(0, math.ceil(q * len(v)) - 1)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('pcap')
    ap.add_argument('--uac-port-target', type=int, default=5060,
                    help='port the caller sends to (server under test, or the callee when direct)')
    ap.add_argument('--callee-port', type=int, default=5070)
    ap.add_argument('--oneline', action='store_true', help='print key=value pairs on one line')
    ap.add_argument('--ladder', action='store_true',
                    help='print every SIP message in capture order (time, ports, start line, Call-ID)')
    a = ap.parse_args()
    direct = a.uac_port_target == a.callee_port

    if a.ladder:
        t0 = None
        for ts, sport, dport, first, cid, cseq in messages(a.pcap):
            t0 = ts if t0 is None else t0
            print('%+10.3f ms  %5d -> %-5d  %-40s %s' % ((ts - t0) * 1e3, sport, dport, first[:40], cid))
        return

    inv_a, ok_a, inv_b, ok_b = {}, {}, {}, {}
    n_msgs = 0
    for ts, sport, dport, first, cid, cseq in messages(a.pcap):
        n_msgs += 1
        if cid is None:
            continue
        is_req = not first.startswith('SIP/2.0')
        on_b = (a.callee_port in (sport, dport)) and not direct
        on_a = (a.uac_port_target in (sport, dport)) and not on_b
        if is_req and first.startswith('INVITE '):
            if on_a and dport == a.uac_port_target:
                inv_a.setdefault(cid, ts)
            elif on_b and dport == a.callee_port:
                inv_b.setdefault(cid, ts)
        elif not is_req and first.startswith('SIP/2.0 200') and cseq == 'INVITE':
            if on_a and sport == a.uac_port_target:
                ok_a.setdefault(cid, ts)
            elif on_b and sport == a.callee_port:
                ok_b.setdefault(cid, ts)

    res = {}

    def add(name, pairs):
        us = [(e - s) * 1e6 for s, e in pairs if e >= s]
        res[name] = us

    add('setup', [(inv_a[c], ok_a[c]) for c in inv_a if c in ok_a])
    if not direct:
        add('callee', [(inv_b[c], ok_b[c]) for c in inv_b if c in ok_b])
        add('srv_inv', [(inv_a[c], inv_b[c]) for c in inv_a if c in inv_b])
        add('srv_200', [(ok_b[c], ok_a[c]) for c in ok_b if c in ok_a])

    if a.oneline:
        parts = ['pcap_invites=%d' % len(inv_a), 'pcap_answered=%d' % len(res['setup'])]
        for name, us in res.items():
            parts.append('pcap_%s_us_p50=%.0f' % (name, pct(us, .5)))
            parts.append('pcap_%s_us_p95=%.0f' % (name, pct(us, .95)))
            if name == 'setup':
                parts.append('pcap_setup_us_p99=%.0f' % pct(us, .99))
                parts.append('pcap_setup_us_max=%.0f' % (max(us) if us else float('nan')))
        print(' '.join(parts))
    else:
        print('SIP messages parsed: %d, INVITEs on caller leg: %d' % (n_msgs, len(inv_a)))
        print('%-8s %8s %10s %10s %10s %10s %10s' % ('what', 'n', 'p50_us', 'p95_us', 'p99_us', 'max_us', 'mean_us'))
        for name, us in res.items():
            mean = sum(us) / len(us) if us else float('nan')
            print('%-8s %8d %10.0f %10.0f %10.0f %10.0f %10.0f' % (
                name, len(us), pct(us, .5), pct(us, .95), pct(us, .99),
                max(us) if us else float('nan'), mean))


if __name__ == '__main__':
    main()
