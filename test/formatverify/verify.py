#!/usr/bin/env python3
"""An independent verifier of auditledger's formats, written from
docs/FORMAT.md alone (§1 events, §2 records and §2.4 redacted records, §3
leaves/tree/chain, §4 segments, §5 checkpoints as signed notes, §6
inclusion and consistency proofs, §7 what verify checks, §10 the golden
vectors; not S3, producers, retention or legal holds). It shares no code
with the Go implementation.

Usage: verify.py SCHEMA CASES.json — each case has a "kind" and a "path":
  event            path (line: one line of it), sealed
  store            path (a store directory), vkey
  checkpoint       path (a signed checkpoint), vkey
  record           path (one record's bytes, §2)
  segment          path (a segment; its framing, §7 "it parses")
  inclusion        path (a tlog-proof), record, vkey
  inclusion-text   path (a tlog-proof, parsed only)
  consistency      path (a consistency proof), old (checkpoint, or "" for
                   size 0), new (checkpoint), vkey
  consistency-text path (a consistency proof, parsed only)
  vectors          path (vectors.txt), segments (the golden ones), vkey
It prints one JSON line per case: {"path": ..., "ok": true|false,
"reason": "...", "detail": "..."}; detail says what an accepted case read
(sizes, roots, indexes), for the caller to compare too.
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
    if not re.fullmatch(r"0|[1-9][0-9]*", size) or int(size) >= 1 << 64:
        raise Fail("checkpoint size")
    rootb = b64(root)
    if len(rootb) != 32:
        raise Fail("checkpoint root")
    if not sigs.endswith("\n"):
        raise Fail("checkpoint: no final newline")
    mine = 0
    for line in sigs[:-1].split("\n"):
        # §5: the block is signature lines only, no empty line among them.
        m = re.fullmatch(r"\u2014 ([^\s+]+) (\S+)", line)
        if not m:
            raise Fail("checkpoint signature line")
        sig = b64(m.group(2))
        if len(sig) < 5:
            raise Fail("checkpoint: a signature shorter than a key hash and one byte")
        if m.group(1) != name or sig[:4] != khash:
            continue
        mine += 1
        try:
            pub.verify(sig[4:], (body + "\n").encode())
        except InvalidSignature:
            raise Fail("checkpoint signature")
    if mine != 1:
        raise Fail("checkpoint: %d signature lines by the log key" % mine)
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


def bulk_form(pl):
    """§1.7: a session.output payload with bulk: {object, pseudonym, size}
    and stream, offset, bytes; no data, sha256, binary or hmac."""
    for m in ("data", "sha256", "binary", "hmac"):
        if m in pl:
            raise Fail("payload.%s: not allowed beside bulk" % m)
    b = pl["bulk"]
    if not isinstance(b, dict) or set(b) - {"object", "pseudonym", "size"}:
        raise Fail("payload.bulk: want {object, pseudonym, size}")

    def integer(v):
        return isinstance(v, int) and not isinstance(v, bool)
    o, ps, size = b.get("object"), b.get("pseudonym"), b.get("size", 0)
    if not isinstance(o, str) or not re.fullmatch(r"[0-9a-f]{64}", o):
        raise Fail("payload.bulk.object: not 64 lower-case hex digits")
    if not isinstance(ps, str) or not re.fullmatch(r"[0-9a-f]{32}", ps):
        raise Fail("payload.bulk.pseudonym: not 32 lower-case hex digits")
    st, off, n = pl.get("stream"), pl.get("offset"), pl.get("bytes")
    if not isinstance(st, str) or st == "":
        raise Fail("payload.stream: required beside bulk")
    if not integer(off) or off < 0:
        raise Fail("payload.offset: required beside bulk, at least 0")
    if not integer(n) or not 1 <= n <= 524288:
        raise Fail("payload.bytes: a bulk piece holds 1 to 524288 bytes")
    if not integer(size) or size != n + 28:
        raise Fail("payload.bulk.size: not bytes + 28")
    return b


READ_MEMBERS = ("bulk", "data", "sha256", "binary", "hmac", "stream", "offset", "bytes", "bulk_before", "insert")
# Unicode's simple case folding maps these two to ASCII letters as well.
FOLDS_TO = {"\u212a": "k", "\u017f": "s"}


def read_member_names(pl):
    """§1.7: a session.output member spelled like one its readers act on
    in another case (ASCII case, K U+212A for k, ſ U+017F for s) is
    refused. A member named twice was refused when the event was parsed."""
    for k in pl:
        for m in READ_MEMBERS:
            if k != m and len(k) == len(m) and all(
                    c == t or c == t.upper() or FOLDS_TO.get(c) == t for c, t in zip(k, m)):
                raise Fail("payload.%s: %s in another case" % (k, m))


def verify_store(root, vkey_text, schema):
    vkey = parse_vkey(vkey_text)
    segs, cps, bulk_listed = [], {}, []
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
            elif rel.startswith("bulk/"):
                if not re.fullmatch(r"bulk/[0-9a-f]{64}", rel):
                    raise Fail("unexpected object among bulk pieces: %s" % rel)
                bulk_listed.append(rel[len("bulk/"):])
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
    bulk_seen = set()
    for first, rel in segs:
        pieces = []
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
            if ev["type"] == "session.output":
                try:
                    read_member_names(ev["payload"])
                except Fail as e:
                    raise Fail("record body is not a valid event: %s" % e)
            if ev["type"] == "session.output" and "bulk" in ev["payload"]:
                try:
                    bk = bulk_form(ev["payload"])
                except Fail as e:
                    raise Fail("record body is not a valid event: %s" % e)
                pieces.append((idx, bk["object"], bk["size"]))
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
        # §7: each bulk piece (§1.7) a record names, once, as bulk/<name>
        # of its size and SHA-256 (a local store: no lock to compare).
        for idx, name, size in pieces:
            if name in bulk_seen:
                continue
            bulk_seen.add(name)
            piece = os.path.join(root, "bulk", name)
            if not os.path.isfile(piece):
                raise Fail("index %d: bulk/%s: bulk piece the event names is not in the store" % (idx, name))
            with open(piece, "rb") as fh:
                data = fh.read()
            if len(data) != size:
                raise Fail("index %d: bulk/%s: bulk piece size %d, want %d" % (idx, name, len(data), size))
            if sha(data).hex() != name:
                raise Fail("index %d: bulk/%s: bulk piece SHA-256 is not its name" % (idx, name))
    if cps and max(cps) != len(leaves):
        raise Fail("the latest checkpoint does not cover every record")
    # §7: objects under bulk/ that no record names: a warning, not a failure.
    return sorted("bulk/" + n for n in bulk_listed if n not in bulk_seen)


# ---- §2 records standing alone (§2.4 redacted), §4 segments parsed ------

def parse_record_alone(r):
    """§2 and §2.4 structure only (no event checks, which are §7's): a
    bound record may be redacted — its leaf input and nothing after."""
    if len(r) < 25:
        raise Fail("record shorter than its fixed fields")
    v = r[0]
    if v not in (1, 2, 3, 4):
        raise Fail("record version %d" % v)
    off = 25 + (68 if v in (2, 4) else 0)
    if v >= 3:
        off += 64
    if len(r) < off:
        raise Fail("record shorter than its fixed fields")
    ev = r[off:]
    redacted = v >= 3 and len(ev) == 0
    if not redacted and not 2 <= len(ev) <= 65536:
        raise Fail("record event of %d bytes" % len(ev))
    if v >= 3 and not redacted and sha(ev) != r[off - 32:off]:
        raise Fail("record event digest")
    idx = int.from_bytes(r[1:9], "big")
    return {"index": idx, "redacted": redacted, "leaf": sha(b"\x00" + r[:off] if v >= 3 else b"\x00" + r)}


def parse_segment(b):
    """§4 framing: what 'it parses' means in §7 (magic, counts, lengths,
    end marker, nothing extra); the records are checked after, one by one."""
    if len(b) < 52 + 72 or b[:8] != b"AUDLSEG1" or b[-8:] != b"AUDLEND1":
        raise Fail("segment framing")
    first = int.from_bytes(b[8:16], "big")
    count = int.from_bytes(b[16:20], "big")
    if not 1 <= count <= 1 << 24:
        raise Fail("segment count")
    p, recs = 52, []
    for i in range(count):
        if p + 4 > len(b) - 72:
            raise Fail("segment truncated")
        n = int.from_bytes(b[p:p + 4], "big")
        if p + 4 + n > len(b) - 72:
            raise Fail("segment truncated")
        recs.append(b[p + 4:p + 4 + n])
        p += 4 + n
    if p + 72 != len(b):
        raise Fail("segment: bytes after the records")
    return first, recs


# ---- §6 proofs -----------------------------------------------------------

DECIMAL = re.compile(r"0|[1-9][0-9]*")


def _number(line, word):
    m = re.fullmatch(word + r" (0|[1-9][0-9]*)", line)
    if not m:
        raise Fail("proof: %r is not '%s <decimal>'" % (line, word))
    n = int(m.group(1))
    if n >= 1 << 64:
        raise Fail("proof: %s out of range" % word)
    return n


def _hash(line):
    h = b64(line)
    if len(h) != 32:
        raise Fail("proof: a hash is not 32 bytes")
    return h


def parse_inclusion(b):
    try:
        text = b.decode("utf-8")
    except UnicodeDecodeError:
        raise Fail("proof: not UTF-8")
    head, sep, cp = text.partition("\n\n")
    if not sep:
        raise Fail("proof: no empty line before the checkpoint")
    lines = head.split("\n")
    if lines[0] != "c2sp.org/tlog-proof@v1":
        raise Fail("proof: not a c2sp.org/tlog-proof@v1")
    i = 1
    if i < len(lines) and lines[i].startswith("extra "):
        b64(lines[i][len("extra "):])
        i += 1
    if i >= len(lines):
        raise Fail("proof: no index line")
    index = _number(lines[i], "index")
    hashes = [_hash(l) for l in lines[i + 1:]]
    return index, hashes, cp.encode()


def parse_consistency(b):
    try:
        text = b.decode("utf-8")
    except UnicodeDecodeError:
        raise Fail("proof: not UTF-8")
    if not text.endswith("\n"):
        raise Fail("proof: no final newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3 or lines[0] != "auditledger.dev/tlog-consistency@v1":
        raise Fail("proof: not an auditledger.dev/tlog-consistency@v1")
    m, n = _number(lines[1], "old"), _number(lines[2], "new")
    return m, n, [_hash(l) for l in lines[3:]]


def verify_inclusion_path(leaf, index, size, path, root):
    """RFC 9162 §2.1.3.2."""
    if index >= size:
        raise Fail("inclusion: index %d not below size %d" % (index, size))
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            raise Fail("inclusion: proof too long")
        if fn & 1 or fn == sn:
            r = node(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise Fail("inclusion: proof too short")
    if r != root:
        raise Fail("inclusion: the path does not lead to the checkpoint's root")


def verify_consistency_path(m, n, path, old_root, new_root):
    """§6's special cases, then RFC 9162 §2.1.4.2."""
    if m > n:
        raise Fail("consistency: old size above new")
    if m == 0 or m == n:
        if path:
            raise Fail("consistency: the proof for m = 0 or m = n must be empty")
        if m == n and old_root != new_root:
            raise Fail("consistency: equal sizes, different roots")
        return
    if not path:
        raise Fail("consistency: empty proof")
    if m & (m - 1) == 0:
        path = [old_root] + path
    fn, sn = m - 1, n - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise Fail("consistency: proof too long")
        if fn & 1 or fn == sn:
            fr, sr = node(c, fr), node(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node(sr, c)
        fn >>= 1
        sn >>= 1
    if fr != old_root or sr != new_root or sn != 0:
        raise Fail("consistency: the proof does not join the two roots")


def _read(p):
    with open(p, "rb") as fh:
        return fh.read()


def _vkey(c):
    with open(c["vkey"]) as fh:
        return parse_vkey(fh.read())


def judge_inclusion(c):
    index, path, cp = parse_inclusion(_read(c["path"]))
    size, root = open_checkpoint(cp, _vkey(c))
    rec = parse_record_alone(_read(c["record"]))
    if rec["index"] != index:
        raise Fail("inclusion: the record's index is not the proof's")
    verify_inclusion_path(rec["leaf"], index, size, path, root)
    return "index %d size %d" % (index, size)


def judge_consistency(c):
    m, n, path = parse_consistency(_read(c["path"]))
    vk = _vkey(c)
    if c.get("old"):
        om, old_root = open_checkpoint(_read(c["old"]), vk)
    else:
        om, old_root = 0, sha(b"")
    nn, new_root = open_checkpoint(_read(c["new"]), vk)
    if om != m or nn != n:
        raise Fail("consistency: the checkpoints' sizes %d, %d are not the proof's %d, %d" % (om, nn, m, n))
    verify_consistency_path(m, n, path, old_root, new_root)
    return "old %d new %d" % (m, n)


# ---- §10 golden vectors --------------------------------------------------

def judge_vectors(c):
    with open(c["vkey"]) as fh:
        vk = fh.read().strip()
    parse_vkey(vk)
    text = _read(c["path"]).decode("utf-8")
    if not text.endswith("\n"):
        raise Fail("vectors: no final newline")
    lines = text[:-1].split("\n")
    if lines[0] != "verifier key: " + vk:
        raise Fail("vectors: the first line does not name the verifier key")
    leaves, chain = [], b"\x00" * 32
    for seg in c["segments"]:
        first, recs = parse_segment(_read(seg))
        if first != len(leaves):
            raise Fail("vectors: segments not contiguous")
        for r in recs:
            leaves.append(parse_record_alone(r)["leaf"])
    want = []
    for i, leaf in enumerate(leaves):
        chain = sha(chain + leaf)
        want.append("index %d leaf %s chain %s root(size %d) %s" % (i, leaf.hex(), chain.hex(), i + 1, mth(leaves[:i + 1]).hex()))
    if lines[1:] != want:
        for i, (got, w) in enumerate(zip(lines[1:], want)):
            if got != w:
                raise Fail("vectors: line %d is %r, the log gives %r" % (i + 2, got, w))
        raise Fail("vectors: %d record lines, the log has %d records" % (len(lines) - 1, len(want)))
    return "%d records" % len(want)


def judge(c, schema):
    """Returns a detail string for a case that holds, raises Fail else."""
    k = c["kind"]
    if k == "event":
        b = _read(c["path"])
        if "line" in c:
            b = b.split(b"\n")[c["line"]]
        parse_event(b.strip(), schema, sealed=c.get("sealed", False))
        return ""
    if k == "store":
        with open(c["vkey"]) as fh:
            unnamed = verify_store(c["path"], fh.read(), schema)
        return "unnamed " + " ".join(unnamed) if unnamed else ""
    if k == "checkpoint":
        size, root = open_checkpoint(_read(c["path"]), _vkey(c))
        return "size %d root %s" % (size, root.hex())
    if k == "record":
        r = parse_record_alone(_read(c["path"]))
        return "index %d redacted %s" % (r["index"], "true" if r["redacted"] else "false")
    if k == "segment":
        first, recs = parse_segment(_read(c["path"]))
        return "first %d count %d" % (first, len(recs))
    if k == "inclusion":
        return judge_inclusion(c)
    if k == "inclusion-text":
        index, path, _ = parse_inclusion(_read(c["path"]))
        return "index %d hashes %d" % (index, len(path))
    if k == "consistency":
        return judge_consistency(c)
    if k == "consistency-text":
        m, n, path = parse_consistency(_read(c["path"]))
        return "old %d new %d hashes %d" % (m, n, len(path))
    if k == "vectors":
        return judge_vectors(c)
    raise Fail("unknown case kind %r" % k)


def main():
    with open(sys.argv[1]) as fh:
        schema = json.load(fh)
    with open(sys.argv[2]) as fh:
        cases = json.load(fh)
    for c in cases:
        ok, reason, detail = True, "", ""
        try:
            detail = judge(c, schema)
        except Fail as e:
            ok, reason = False, str(e)
        except Exception as e:  # anything unforeseen is a refusal, named
            ok, reason = False, "%s: %s" % (type(e).__name__, e)
        print(json.dumps({"path": c["path"], "ok": ok, "reason": reason, "detail": detail}))


if __name__ == "__main__":
    main()
