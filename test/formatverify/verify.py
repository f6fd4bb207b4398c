#!/usr/bin/env python3
"""An independent verifier of auditledger's formats, written from
docs/FORMAT.md alone (§1 events, §2 records, §3 leaves/tree/chain, §4
segments, §5 checkpoints, §7 what verify checks; not S3, producers,
retention or legal holds). It shares no code with the Go implementation.

Usage: verify.py SCHEMA CASES.json — each case {"kind": "event"|"store",
"path": ..., "vkey": ...}; prints one JSON line per case:
{"path": ..., "ok": true|false, "reason": "..."}.
"""
import base64, hashlib, json, os, re, sys
from datetime import datetime

import jsonschema
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.exceptions import InvalidSignature


class Fail(Exception):
    pass


# ---- §1 events ----------------------------------------------------------

def _pairs(pairs):
    seen = set()
    for k, _ in pairs:
        if k in seen:
            raise Fail("duplicate member name %r" % k)
        seen.add(k)
    return dict(pairs)


class _Float(float):
    """A JSON number written with a fraction or exponent."""


def _strings(v):
    if isinstance(v, str):
        yield v
    elif isinstance(v, dict):
        for k, x in v.items():
            yield k
            yield from _strings(x)
    elif isinstance(v, list):
        for x in v:
            yield from _strings(x)


_validators = {}


def _validator(schema):
    v = _validators.get(id(schema))
    if v is None:
        v = _validators[id(schema)] = jsonschema.Draft202012Validator(schema)
    return v


def parse_event(b, schema, sealed=False):
    """Returns the event as a dict, or raises Fail. sealed: the event is in
    a sealed record, where the legacy forms of §1 are accepted."""
    if len(b) > 65536:
        raise Fail("event larger than 65,536 bytes")
    try:
        text = b.decode("utf-8")
    except UnicodeDecodeError:
        raise Fail("not UTF-8")
    try:
        ev = json.loads(text, object_pairs_hook=_pairs, parse_float=_Float)
    except ValueError as e:
        raise Fail("not JSON: %s" % e)
    if not isinstance(ev, dict):
        raise Fail("not an object")
    # §1: an escape that is not half of a surrogate pair (Python's json
    # joins pairs, so what is left is lone).
    for s in _strings(ev):
        if any(0xD800 <= ord(c) <= 0xDFFF for c in s):
            raise Fail("lone surrogate")
    # §1: envelope integers as digits only.
    for k in ("version", "session_seq"):
        if isinstance(ev.get(k), _Float):
            raise Fail("%s written with a fraction or exponent" % k)
    # §1: the legacy form, accepted in sealed records only.
    check = ev
    if sealed and ev.get("session_seq") == 0 and "session_id" not in ev:
        check = {k: v for k, v in ev.items() if k != "session_seq"}
    errs = sorted(_validator(schema).iter_errors(json.loads(json.dumps(check))), key=lambda e: e.path)
    if errs:
        raise Fail("schema: %s" % errs[0].message)
    # §1: RFC 3339 UTC, never second 60.
    t = ev["time"]
    m = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-]00:00)", t, re.I)
    if not m:
        raise Fail("time %r is not RFC 3339 UTC" % t)
    try:
        datetime(*(int(m.group(i)) for i in range(1, 7)))
    except ValueError:
        raise Fail("time %r out of range (second 60 refused)" % t)
    return ev


# ---- §3 hashes -----------------------------------------------------------

def sha(b):
    return hashlib.sha256(b).digest()


def node(l, r):
    return sha(b"\x01" + l + r)


def mth(leaves):
    n = len(leaves)
    if n == 0:
        return sha(b"")
    if n == 1:
        return leaves[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return node(mth(leaves[:k]), mth(leaves[k:]))


# ---- §5 checkpoints ------------------------------------------------------

def b64(s):
    try:
        b = base64.b64decode(s, validate=True)
    except Exception:
        raise Fail("bad base64")
    if base64.b64encode(b).decode() != s:
        raise Fail("bad base64 (not canonical)")
    return b


def parse_vkey(text):
    name, h, key = text.strip().split("+", 2)
    raw = b64(key)
    if len(raw) != 33 or raw[0] != 1:
        raise Fail("verifier key: not an Ed25519 key")
    if sha(name.encode() + b"\n" + raw)[:4].hex() != h:
        raise Fail("verifier key: hash")
    return name, bytes.fromhex(h), Ed25519PublicKey.from_public_bytes(raw[1:])


def open_checkpoint(b, vkey):
    name, khash, pub = vkey
    text = b.decode()
    body, sep, sigs = text.partition("\n\n")
    if not sep:
        raise Fail("checkpoint: no signature block")
    lines = body.split("\n")
    if len(lines) != 3:
        raise Fail("checkpoint: extension lines or missing lines")
    origin, size, root = lines
    if origin != name:
        raise Fail("checkpoint origin %r is not the key name" % origin)
    if not re.fullmatch(r"0|[1-9][0-9]*", size):
        raise Fail("checkpoint size")
    rootb = b64(root)
    if len(rootb) != 32:
        raise Fail("checkpoint root")
    mine = 0
    for line in sigs.split("\n"):
        if line == "":
            continue
        m = re.fullmatch(r"\u2014 (\S+) (\S+)", line)
        if not m:
            raise Fail("checkpoint signature line")
        sig = b64(m.group(2))
        if m.group(1) != name or sig[:4] != khash:
            continue
        mine += 1
        try:
            pub.verify(sig[4:], (body + "\n").encode())
        except InvalidSignature:
            raise Fail("checkpoint signature")
    if mine != 1:
        raise Fail("checkpoint: %d signature lines by the log key" % mine)
    if not sigs.endswith("\n"):
        raise Fail("checkpoint: no final newline")
    return int(size), rootb


# ---- §2 records, §4 segments, §7 -----------------------------------------

def tenant_hash(t):
    return sha(b"auditledger tenant\x00" + t.encode())


def parse_record(r):
    v = r[0]
    if v not in (1, 2, 3, 4):
        raise Fail("record version %d" % v)
    idx = int.from_bytes(r[1:9], "big")
    tm = int.from_bytes(r[9:17], "big", signed=True)
    src = int.from_bytes(r[17:25], "big")
    off = 25 + (68 if v in (2, 4) else 0)
    rec = {"index": idx, "time": tm, "source": src, "bound": v >= 3}
    if v >= 3:
        leaf_input = r[:off + 64]
        rec["tenant"], digest = r[off:off + 32], r[off + 32:off + 64]
        ev = r[off + 64:]
        if len(ev) == 0:
            raise Fail("record is redacted")
        if sha(ev) != digest:
            raise Fail("record event digest")
    else:
        leaf_input, ev = r, r[off:]
    rec["leaf"] = sha(b"\x00" + leaf_input)
    rec["event"] = ev
    return rec


SYSTEM = b'{"type":"ledger.'


def verify_store(root, vkey_text, schema):
    vkey = parse_vkey(vkey_text)
    segs, cps = [], {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            rel = os.path.relpath(os.path.join(dirpath, f), root).replace(os.sep, "/")
            if rel.startswith("segments/"):
                m = re.fullmatch(r"segments/(\d{20})\.seg", rel)
                if not m:
                    raise Fail("unexpected object among segments: %s" % rel)
                segs.append((int(m.group(1)), rel))
            elif rel.startswith("checkpoints/"):
                m = re.fullmatch(r"checkpoints/(\d{20})", rel)
                if not m:
                    raise Fail("unexpected object among checkpoints: %s" % rel)
                cps[int(m.group(1))] = rel
    if not segs and not cps:
        raise Fail("holds no segments and no checkpoints")
    segs.sort()
    leaves, chain, last_time, last_src, last_src_seg = [], b"\x00" * 32, None, 0, None

    def check_cp(size):
        if size in cps:
            with open(os.path.join(root, cps[size]), "rb") as fh:
                s, r = open_checkpoint(fh.read(), vkey)
            if s != size or r != mth(leaves[:size]):
                raise Fail("checkpoint %d root" % size)

    check_cp(0)
    for first, rel in segs:
        with open(os.path.join(root, rel), "rb") as fh:
            b = fh.read()
        if b[:8] != b"AUDLSEG1" or b[-8:] != b"AUDLEND1":
            raise Fail("%s: framing" % rel)
        if int.from_bytes(b[8:16], "big") != first or first != len(leaves):
            raise Fail("%s: first index" % rel)
        count = int.from_bytes(b[16:20], "big")
        if not 1 <= count <= 1 << 24 or b[20:52] != chain:
            raise Fail("%s: count or header chain" % rel)
        p = 52
        for i in range(count):
            n = int.from_bytes(b[p:p + 4], "big")
            raw = b[p + 4:p + 4 + n]
            p += 4 + n
            r = parse_record(raw)
            idx = first + i
            if r["index"] != idx:
                raise Fail("record index")
            if last_time is not None and r["time"] < last_time:
                raise Fail("record time went backwards")
            last_time = r["time"]
            try:
                ev = parse_event(r["event"], schema, sealed=True)
            except Fail as e:
                raise Fail("record body is not a valid event: %s" % e)
            if r["bound"] and tenant_hash(ev["tenant"]) != r["tenant"]:
                raise Fail("record is bound to another tenant than its event's")
            sysrec = r["event"].startswith(SYSTEM)
            t = ev["type"]
            if r["source"] != 0:
                want = last_src + 1
                if sysrec and t == "ledger.gap":
                    pl = ev["payload"]
                    if pl["first_seq"] != want or pl["last_seq"] != r["source"]:
                        raise Fail("gap record does not cover the next stream sequences")
                elif sysrec and t not in ("ledger.rejected",):
                    raise Fail("system record type")
                else:
                    if sysrec:
                        pl = ev["payload"]
                        wid = "ledger/rejected/%d" % pl.get("seq", -1) + (".%d" % pl["part"] if pl.get("part") else "")
                        if pl.get("seq") != r["source"] or ev["id"] != wid:
                            raise Fail("rejection record is not tied to its source")
                    if r["source"] != want and not (r["source"] == last_src and last_src_seg == rel):
                        raise Fail("stream sequences skipped or repeated")
                last_src, last_src_seg = r["source"], rel
            elif sysrec and t not in ("ledger.retention.changed", "ledger.clock.status", "ledger.verification"):
                raise Fail("system record type with source 0")
            leaves.append(r["leaf"])
            chain = sha(chain + r["leaf"])
            check_cp(len(leaves))
        if b[p:p + 32] != chain or b[p + 32:p + 64] != mth(leaves) or p + 72 != len(b):
            raise Fail("%s: trailer" % rel)
        if len(leaves) not in cps:
            raise Fail("no checkpoint at the end of %s" % rel)
    if cps and max(cps) != len(leaves):
        raise Fail("the latest checkpoint does not cover every record")


def main():
    with open(sys.argv[1]) as fh:
        schema = json.load(fh)
    with open(sys.argv[2]) as fh:
        cases = json.load(fh)
    for c in cases:
        ok, reason = True, ""
        try:
            if c["kind"] == "event":
                with open(c["path"], "rb") as fh:
                    parse_event(fh.read().strip(), schema, sealed=c.get("sealed", False))
            else:
                with open(c["vkey"]) as fh:
                    verify_store(c["path"], fh.read(), schema)
        except Fail as e:
            ok, reason = False, str(e)
        except Exception as e:  # anything unforeseen is a refusal, named
            ok, reason = False, "%s: %s" % (type(e).__name__, e)
        print(json.dumps({"path": c["path"], "ok": ok, "reason": reason}))


if __name__ == "__main__":
    main()
