#!/usr/bin/env python3
"""An independent reading of docs/FORMAT.md sections 12.1 and 12.3,
written from the spec alone: re-derives every control's assertion.csv of
an unzipped evidence bundle from its events.jsonl, context/clock.json,
context/verifications.json (re-derived here from
log/verifications.jsonl, the writer's verification records, whose
inclusion proofs the Go verifier checks, and compared byte for byte) and
its expectations (given as JSON, to keep to the standard library) and
the period of its manifest, and
prints, per control, one line "<control> <population> <exceptions>
<result>"; and every derived table of section 12.3 from events.jsonl,
context/clock.json, context/verifications.json, segments.json and the
manifest. Writes the CSVs to
OUT/<control>/. GRANT_VKEY is the grant key as the operator published it
(section 13): access grants' signed notes (section 8) are opened with it
by the Ed25519 verification of RFC 8032 written out below; without it, a
grant whose judgement comes to its signature is an error.

usage: rederive.py BUNDLE_DIR EXPECTATIONS_JSON OUT_DIR [GRANT_VKEY]
"""
import base64
import hashlib
import json
import os
import re
import sys
from datetime import datetime, timezone

NO_APPROVAL = "ran without a second person's approval"
SELF_APPROVED = "approved by its own requester"
MACHINE = "approved by a machine identity, not a person"
NO_GRANT = "privileged statements ran outside any access grant"
UNMASKED = "returned rows with the column unmasked"
NO_RULE = "refused with no rule named"
DECIDED_BY_REQUESTER = "decided by its own requester"
CLOCK_UNREAD = "the clock could not be read"
CLOCK_UNSYNCED = "the clock was not synchronised"
CLOCK_ERROR = "the clock's maximum error was above the bound"
NO_LISTING = "no listing of the identity provider before the session"
NOT_LISTED = "not listed by the identity provider"
INACTIVE = "listed as inactive by the identity provider"
EXTRA_GROUPS = "held groups the identity provider did not give it"
REVIEW_LATE = "the audit data went unreviewed for longer than the bound before this review"
REVIEW_LATE_END = "the audit data went unreviewed for longer than the bound before the period's end"
UNVERIFIED_GRANT = "granted only by an unverified record"
WHY_SSH = "an SSH certificate's record, not a grant"
WHY_NOT_JIT = "not a just-in-time grant"
WHY_NOT_API = "not published by the api"
WHY_WINDOW = "its window is not two RFC 3339 times"
WHY_NO_SIGNATURE = "it carries no grant signature"
WHY_BAD_SIGNATURE = "its grant signature does not verify with the grant key over the grant text rebuilt from the record"
WHY_NOT_FIRST = "another record of its access_id counts"

# Ed25519 verification (RFC 8032 section 5.1.7), as Go's crypto/ed25519
# does it: s below L, A decoded accepting non-canonical encodings, and the
# encoding of [s]B - [k]A compared with the signature's R bytes.
_P = 2**255 - 19
_L = 2**252 + 27742317777372353535851937790883648493
_D = -121665 * pow(121666, _P - 2, _P) % _P
_I = pow(2, (_P - 1) // 4, _P)


def _xrecover(y, sign):
    xx = (y * y - 1) * pow(_D * y * y + 1, _P - 2, _P) % _P
    x = pow(xx, (_P + 3) // 8, _P)
    if (x * x - xx) % _P:
        x = x * _I % _P
    if (x * x - xx) % _P:
        return None
    if x & 1 != sign:
        x = (_P - x) % _P
    return x


def _add(p, q):
    x1, y1, z1, t1 = p
    x2, y2, z2, t2 = q
    a, b = (y1 - x1) * (y2 - x2) % _P, (y1 + x1) * (y2 + x2) % _P
    c, d = t1 * 2 * _D * t2 % _P, z1 * 2 * z2 % _P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _mul(s, p):
    q = (0, 1, 1, 0)
    while s:
        if s & 1:
            q = _add(q, p)
        p, s = _add(p, p), s >> 1
    return q


def _encode(p):
    x, y, z, _ = p
    zi = pow(z, _P - 2, _P)
    x, y = x * zi % _P, y * zi % _P
    return (y | (x & 1) << 255).to_bytes(32, "little")


_BY = 4 * pow(5, _P - 2, _P) % _P
_BX = _xrecover(_BY, 0)
_B = (_BX, _BY, 1, _BX * _BY % _P)


def ed25519_verify(pub, msg, sig):
    if len(pub) != 32 or len(sig) != 64:
        return False
    y = int.from_bytes(pub, "little")
    sign, y = y >> 255, (y & (1 << 255) - 1) % _P
    x = _xrecover(y, sign)
    s_ = int.from_bytes(sig[32:], "little")
    if x is None or s_ >= _L:
        return False
    k = int.from_bytes(hashlib.sha512(sig[:32] + pub + msg).digest(), "little") % _L
    minus_a = ((_P - x) % _P, y, 1, (_P - x) * y % _P)
    return _encode(_add(_mul(s_, _B), _mul(k, minus_a))) == sig[:32]


def parse_vkey(vkey):
    """A verifier key, name+hash+base64(0x01 || public key) (section 5)."""
    name, h, b64 = vkey.strip().split("+", 2)
    key = base64.b64decode(b64, validate=True)
    if len(h) != 8 or len(key) != 33 or key[0] != 1:
        raise ValueError("not an Ed25519 verifier key: " + vkey)
    if hashlib.sha256(name.encode() + b"\n" + key).digest()[:4] != bytes.fromhex(h):
        raise ValueError("the key hash is not the key's: " + vkey)
    return name.encode(), int(h, 16), key[1:]


def _valid_name(n):
    try:
        n = n.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return n != "" and all(c != "+" and not c.isspace() and c.isprintable() for c in n)


def open_note(note, key):
    """A signed note's text when it carries exactly one valid signature by
    key (and every signature line is well formed), else None."""
    name, khash, pub = key
    i = note.rfind(b"\n\n")
    if i < 0:
        return None
    text, sigs = note[:i + 1], note[i + 2:]
    if not sigs.endswith(b"\n"):
        return None
    found = False
    for line in sigs[:-1].split(b"\n"):
        dash = "\u2014 ".encode()
        if not line.startswith(dash) or b" " not in line[len(dash):]:
            return None
        n, b64 = line[len(dash):].split(b" ", 1)
        if not _valid_name(n):
            return None
        try:
            sig = base64.b64decode(b64, validate=True)
        except ValueError:
            return None
        if base64.b64encode(sig) != b64 or len(sig) < 5:
            return None
        if n != name or int.from_bytes(sig[:4], "big") != khash:
            continue
        if found or not ed25519_verify(pub, text, sig[4:]):
            return None
        found = True
    return text if found else None


def go_json_string(v):
    """A string as Go's encoding/json writes it (HTML-safe)."""
    out = []
    for c in v:
        o = ord(c)
        if 0xD800 <= o <= 0xDFFF:
            c, o = "\ufffd", 0xFFFD
        if c in '"\\':
            out.append("\\" + c)
        elif c in "\n\r\t\b\f":
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}[c])
        elif o < 0x20 or c in "<>&" or o in (0x2028, 0x2029):
            out.append("\\u%04x" % o)
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def go_bytes(v):
    """A decoded JSON string's UTF-8 bytes, as Go holds them (a lone
    surrogate escape decodes to U+FFFD)."""
    return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in v).encode("utf-8")


def go_time(nanos):
    """Unix nanoseconds as Go writes a UTC time in JSON (RFC 3339, the
    fraction without trailing zeros)."""
    sec, frac = divmod(nanos, 10**9)
    t = datetime.fromtimestamp(sec, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return t + ("." + ("%09d" % frac).rstrip("0") if frac else "") + "Z"


def grant_text(g, nb, na):
    """The grant text (section 13) rebuilt from an access.granted record."""
    req = (g.get("payload") or {}).get("requester")
    req = req if isinstance(req, dict) else {}
    return ("{" + ",".join('"%s":%s' % kv for kv in [
        ("kind", go_json_string("auditledger access grant v1")), ("id", go_json_string(pl(g, "access_id"))),
        ("tenant", go_json_string(s(g.get("tenant")))), ("rule", go_json_string(pl(g, "rule"))),
        ("requester", "{\"issuer\":%s,\"subject\":%s}" % (go_json_string(s(req.get("issuer"))), go_json_string(s(req.get("subject"))))),
        ("target", go_json_string(pl(g, "target"))), ("not_before", '"%s"' % go_time(nb)), ("not_after", '"%s"' % go_time(na)),
        ("break_glass", "true" if (g.get("payload") or {}).get("break_glass") is True else "false")]) + "}\n").encode("utf-8")


GRANT_KEY = None  # set from the command line


def s(v):
    """A payload member as a string: only a JSON string is one."""
    return v if isinstance(v, str) else ""


def pl(e, name):
    return s((e.get("payload") or {}).get(name))


def actor(e):
    a = e.get("actor") or {}
    return s(a.get("issuer")), s(a.get("subject")), s(a.get("kind"))


def rfc3339(t):
    # Go's RFC 3339 with optional fraction; enough for the vectors.
    t = t.replace("Z", "+00:00")
    m = re.match(r"^(.*T\d\d:\d\d:\d\d)(\.\d+)?(.*)$", t)
    frac = (m.group(2) or ".0")[:7]
    return datetime.fromisoformat(m.group(1) + frac + m.group(3))


def unix_nanos(t):
    """An RFC 3339 time to nanoseconds since 1970, exactly."""
    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$", t)
    if not m:
        raise ValueError(t)
    whole = datetime.fromisoformat(m.group(1) + ("+00:00" if m.group(3) == "Z" else m.group(3)))
    return int(whole.timestamp()) * 10**9 + int((m.group(2) or "").ljust(9, "0"))


def approval(c, evs):
    g = None
    for e in evs:
        if e["_idx"] >= c["_idx"]:
            break
        if (e.get("type") == "approval.granted" and s(c.get("session_id")) != ""
                and pl(e, "session_id") == s(c.get("session_id"))
                and pl(e, "statement_sha256") != "" and pl(e, "statement_sha256") == pl(c, "statement_sha256")):
            g = e
    if g is None:
        return None, NO_APPROVAL
    gi, gs, gk = actor(g)
    ci, cs, _ = actor(c)
    if gk != "human":
        return g, MACHINE
    req = (g.get("payload") or {}).get("requester")
    req = req if isinstance(req, dict) else {}
    if (gs == cs and gi == ci) or (gs == s(req.get("subject")) and gi == s(req.get("issuer"))):
        return g, SELF_APPROVED
    return g, ""


def row(e, item, evidence=None, exception=""):
    return [str(e["_idx"]), s(e.get("type")), s(e.get("session_id")), actor(e)[1], item,
            "" if evidence is None else str(evidence["_idx"]), exception]


def privileged(x, e):
    return e.get("type") == "command.executed" and pl(e, "kind").upper() in [k.upper() for k in x["Kinds"]] and pl(e, "kind") != ""


def changes_approved(x, evs):
    out = []
    for e in evs:
        if privileged(x, e):
            g, ex = approval(e, evs)
            out.append(row(e, pl(e, "statement")[:200], g, ex))
    return out


def requester(g):
    req = (g.get("payload") or {}).get("requester")
    req = req if isinstance(req, dict) else {}
    return s(req.get("issuer")), s(req.get("subject"))


def window(g):
    try:
        return unix_nanos(pl(g, "not_before")), unix_nanos(pl(g, "not_after"))
    except ValueError:
        return None


def judge(recs, judged):
    """Why each access.granted of one access_id does not count ("" when it
    does): the first condition of section 12.1 it fails."""
    counted = None
    for g in recs:
        if g["_idx"] in judged:
            if judged[g["_idx"]] == "":
                counted = g
            continue
        w = window(g)
        if pl(g, "grant") == "ssh-user-certificate":
            why = WHY_SSH
        elif pl(g, "grant") != "just-in-time":
            why = WHY_NOT_JIT
        elif s((g.get("source") or {}).get("kind")) != "api":
            why = WHY_NOT_API
        elif w is None:
            why = WHY_WINDOW
        elif pl(g, "signature") == "":
            why = WHY_NO_SIGNATURE
        elif GRANT_KEY is None:
            sys.exit("rederive.py: the access.granted at index %d needs the grant key: give GRANT_VKEY" % g["_idx"])
        elif open_note(go_bytes(pl(g, "signature")), GRANT_KEY) != grant_text(g, *w):
            why = WHY_BAD_SIGNATURE
        else:
            why = ""
        if why == "" and counted is not None:
            why = "%s (index %d)" % (WHY_NOT_FIRST, counted["_idx"])
        if why == "":
            counted = g
        judged[g["_idx"]] = why


def holds(g, t):
    w = window(g)
    if w is None:
        return -1
    return 1 if w[0] <= t < w[1] else 0


def grant_of(x, first, evs, judged):
    """The grant covering first's session, or None and the record claiming
    to (or None)."""
    sid = s(first.get("session_id"))
    if not sid:
        return None, None
    started = next((e for e in evs if e.get("type") == "session.started" and s(e.get("session_id")) == sid), None)
    if started is None or not pl(started, "access_id"):
        return None, None
    recs = [g for g in evs if g.get("type") == "access.granted" and pl(g, "access_id") == pl(started, "access_id")]
    t = unix_nanos(started["time"])
    if x.get("Version") == 1:
        return next((g for g in recs if requester(g)[1] == actor(started)[1] and holds(g, t) == 1), None), None
    judge(recs, judged)
    unverified = None
    for g in recs:
        if requester(g) != actor(started)[:2]:
            continue
        h = holds(g, t)
        if judged[g["_idx"]] == "" and h == 1:
            return g, None
        if judged[g["_idx"]] != "" and h != 0 and unverified is None:
            unverified = g
    return None, unverified


def privileged_granted(x, evs):
    groups, order = {}, []
    for e in evs:
        if not privileged(x, e):
            continue
        key = ("s", s(e.get("session_id"))) if s(e.get("session_id")) else ("e", e["_idx"])
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append(e)
    out, judged = [], {}
    for key in order:
        cmds = groups[key]
        first = cmds[0]
        item = "1 privileged statement" if len(cmds) == 1 else "%d privileged statements" % len(cmds)
        grant, unverified = grant_of(x, first, evs, judged)
        approvals = [approval(c, evs) for c in cmds]
        if grant is not None:
            out.append(row(first, item, grant))
        elif x.get("ApprovalsCover") and all(ex == "" for _, ex in approvals):
            out.append(row(first, item, approvals[-1][0]))
        elif unverified is not None:
            out.append(row(first, item, None, "%s (index %d): %s" % (UNVERIFIED_GRANT, unverified["_idx"], judged[unverified["_idx"]])))
        else:
            out.append(row(first, item, None, NO_GRANT))
    return out


def words(text):
    return {w.lower() for w in re.findall(r"[A-Za-z0-9_]+", text)}


def columns_masked(x, evs):
    out, seen = [], set()
    for i, c in enumerate(evs):
        if c.get("type") != "command.executed" or c.get("id") in seen:
            continue
        w = words(pl(c, "statement"))
        named = [col.lower() for col in x["Columns"] if col.lower() in w]
        if not named:
            continue
        seen.add(c.get("id"))
        later = evs[i + 1:]
        rows_ = any(d.get("type") == "response.digest" and pl(d, "command_id") == c.get("id")
                    and isinstance((d.get("payload") or {}).get("rows"), (int, float))
                    and not isinstance((d.get("payload") or {}).get("rows"), bool)
                    and (d.get("payload") or {}).get("rows") != 0 for d in later)
        if not rows_:
            continue
        for col in named:
            m = next((d for d in later if d.get("type") == "mask.applied" and pl(d, "command_id") == c.get("id")
                      and pl(d, "column").lower() == col), None)
            out.append(row(c, col, m, "" if m is not None else UNMASKED))
    return out


def refusals_name_rule(x, evs):
    # Version 5: the refusals a policy rule decided - a payload member
    # "rule", whatever its value, or "access_required" JSON true. Versions
    # 1 to 4: every command.blocked.
    out = []
    for e in evs:
        if e.get("type") != "command.blocked":
            continue
        p = e.get("payload") or {}
        if VERSION >= 5 and "rule" not in p and p.get("access_required") is not True:
            continue
        rule = pl(e, "rule").strip()
        out.append(row(e, rule, None, "" if rule else NO_RULE))
    return out


def approvals_decided_by_another(x, evs):
    out = []
    for e in evs:
        if e.get("type") != "approval.requested":
            continue
        d = next((d for d in evs if d.get("type") in ("approval.granted", "approval.denied", "approval.expired")
                  and pl(d, "approval_id") != "" and pl(d, "approval_id") == pl(e, "approval_id")), None)
        if d is None:
            out.append(row(e, "pending: no decision in the period"))
            continue
        di, ds, dk = actor(d)
        ei, es, _ = actor(e)
        item = {"approval.expired": "expired: no one decided", "approval.granted": "granted by " + ds}.get(d["type"], "denied by " + ds)
        ex = ""
        if d["type"] != "approval.expired" and ds == es and di == ei:
            ex = DECIDED_BY_REQUESTER
        elif d["type"] == "approval.granted" and dk != "human":
            ex = MACHINE
        out.append(row(e, item, d, ex))
    return out


def clock_synchronised(x, evs, clock):
    out = []
    for r in clock:
        item = "synchronised=%s maxerror_us=%d source=%s host=%s" % (
            "true" if r.get("synchronised") is True else "false", r.get("maxerror_us") or 0, s(r.get("source")), s(r.get("host")))
        ex = ""
        if s(r.get("read_error")):
            ex = CLOCK_UNREAD
        elif r.get("synchronised") is not True:
            ex = CLOCK_UNSYNCED
        elif (r.get("maxerror_us") or 0) > x["MaxErrorMicros"]:
            ex = "%s (%d us > %d us)" % (CLOCK_ERROR, r["maxerror_us"], x["MaxErrorMicros"])
        out.append([str(r["index"]), "ledger.clock.status", "", "", item, "", ex])
    return out


def listings(evs):
    """For each session.started of a person, what the listing in force said."""
    building, current, out = {}, None, {}
    for e in evs:
        p = e.get("payload") or {}
        if e.get("type") == "identity.snapshot":
            sid, part, parts = s(p.get("snapshot")), p.get("part"), p.get("parts")
            if p.get("source") != "scim" or not sid or not isinstance(parts, int) or not isinstance(part, int) or parts < 1 or not 1 <= part <= parts:
                continue
            l = building.setdefault(sid, {"parts": parts, "seen": 0, "members": {}})
            for m in p.get("members") or []:
                l["members"][s(m.get("subject"))] = (e["_idx"], m.get("active") is True, [s(g) for g in (m.get("groups") or [])])
            l["seen"] += 1
            l["last"] = e["_idx"]
            if l["seen"] == l["parts"]:
                current = l
                del building[sid]
        elif e.get("type") == "session.started" and actor(e)[2] == "human":
            groups = (e.get("actor") or {}).get("groups") or []
            if current is None:
                out[e["_idx"]] = None
                continue
            m = current["members"].get(actor(e)[1])
            if m is None:
                out[e["_idx"]] = (current["last"], False, False, [])
                continue
            extra = []
            for g in groups:
                if g not in m[2] and g not in extra:
                    extra.append(g)
            out[e["_idx"]] = (m[0], True, m[1], extra)
    return out


def actors_listed(evs, groups):
    ls = listings(evs)
    out = []
    for e in evs:
        if e["_idx"] not in ls:
            continue
        d = ls[e["_idx"]]
        if d is None:
            item, ev, ex = "no listing", None, NO_LISTING
        else:
            snap, found, active, extra = d
            ev = snap
            if not found:
                item, ex = "not listed", NOT_LISTED
            elif not active:
                item, ex = "listed, inactive", INACTIVE
            else:
                item, ex = "listed, active", ""
                if groups and extra:
                    ex = EXTRA_GROUPS + ": " + ",".join(extra)
        if groups:
            item = "groups: " + ",".join((e.get("actor") or {}).get("groups") or [])
        out.append([str(e["_idx"]), "session.started", s(e.get("session_id")), actor(e)[1], item, "" if ev is None else str(ev), ex])
    return out


def asserted_period(m):
    """The time the assertions cover (section 12.1), in Unix nanoseconds:
    period.from, or range.first_sealed when the range starts at index 0
    and that is later; period.to, or when that is later the latest of
    created and range.last_sealed."""
    f, t = unix_nanos(m["period"]["from"]), unix_nanos(m["period"]["to"])
    r = m.get("range") or {}
    if r.get("first") == 0 and r.get("first_sealed") and unix_nanos(r["first_sealed"]) > f:
        f = unix_nanos(r["first_sealed"])
    built = unix_nanos(m["created"])
    if r.get("last_sealed"):
        built = max(built, unix_nanos(r["last_sealed"]))
    return f, min(t, built)


VERSION = None  # the expectations' version
PERIOD = None  # (from, to), set from the manifest


def audit_reviewed(x, evs):
    # Versions 1 and 2 test only the time between two reviews.
    legacy = VERSION < 3
    bound = x["EveryDays"] * 86400 * 10**9
    out, prev = [], None if legacy else PERIOD[0]
    for e in evs:
        if e.get("type") != "audit.accessed" or actor(e)[2] != "human":
            continue
        item = pl(e, "resource") or (pl(e, "method") + " " + pl(e, "path")).strip()
        t = unix_nanos(e["time"])
        ex = ""
        if prev is not None and t - prev > bound:
            ex = REVIEW_LATE
        if prev is None or t > prev:
            prev = t
        out.append(row(e, item, None, ex))
    if not legacy and PERIOD[1] - prev > bound:
        out.append(["", "", "", "", "no review from %s to %s" % (go_time(prev), go_time(PERIOD[1])), "", REVIEW_LATE_END])
    return out


VERIFS = []  # context/verifications.json's verifications (log/verifications.jsonl)
RANGE = None  # (range.first, range.end)
NO_VERIFICATION = "no full verification of the log after the period covered its records"
LOG_NOT_WHOLE = "the verification found the log not whole"
RANGE_NOT_WHOLE = "the verification found the period's records not whole"


def go_indent(v, level=0):
    """v as Go's json.MarshalIndent(v, "", "  ") writes it: members in
    the order given, strings HTML-safe."""
    pad, inner = "  " * level, "  " * (level + 1)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return go_json_string(v)
    if isinstance(v, list):
        if not v:
            return "[]"
        return "[\n" + ",\n".join(inner + go_indent(e, level + 1) for e in v) + "\n" + pad + "]"
    if not v:
        return "{}"
    return "{\n" + ",\n".join(inner + go_json_string(k) + ": " + go_indent(e, level + 1) for k, e in v.items()) + "\n" + pad + "}"


def record_time_event(b):
    """A record's sealing time (Unix nanoseconds) and event bytes
    (section 2): version, index, time, source; the producer's signature
    (versions 2, 4); the tenant and digest (bound, versions 3, 4)."""
    nanos = int.from_bytes(b[9:17], "big", signed=True)
    rest = b[25:]
    if b[0] in (2, 4):
        rest = rest[4 + 64:]
    if b[0] in (3, 4):
        rest = rest[64:]
    return nanos, rest


def verifications_context(path):
    """context/verifications.json derived from log/verifications.jsonl
    (section 12): one entry per line, in its order, its index, its
    record's time and its payload's members; times as Go's encoding/json
    writes a UTC time (RFC 3339, the fraction without trailing zeros and
    absent when zero, Z)."""
    out = []
    with open(path, "rb") as f:
        for line in f:
            l = json.loads(line)
            nanos, event = record_time_event(base64.b64decode(l["record"], validate=True))
            p = json.loads(event)["payload"]
            v = {"index": l["index"], "sealed_at": go_time(nanos),
                 "started": go_time(unix_nanos(p["started"])), "finished": go_time(unix_nanos(p["finished"])),
                 "size": p["size"], "root": go_bytes(p["root"]).decode("utf-8"), "ok": p["ok"],
                 "gaps": [{"index": g["index"], "first_seq": g["first_seq"], "last_seq": g["last_seq"]} for g in p["gaps"]]}
            fl = p.get("failure")
            if fl is not None:
                f2 = {}
                if fl.get("object"):
                    f2["object"] = go_bytes(fl["object"]).decode("utf-8")
                if fl.get("index") is not None:
                    f2["index"] = fl["index"]
                f2["error"] = go_bytes(fl["error"]).decode("utf-8")
                v["failure"] = f2
            out.append(v)
    return (go_indent({"verifications": out}) + "\n").encode("utf-8")


def covering():
    """The verification records of at least range.end records."""
    return [v for v in VERIFS if v["size"] >= RANGE[1]]


def verification_item(v):
    return "size=%d ok=%s started=%s finished=%s" % (v["size"], "true" if v["ok"] else "false",
                                                      go_time(unix_nanos(v["started"])), go_time(unix_nanos(v["finished"])))


def findings(v, lo, hi):
    """Gap records with index in [lo, hi), then the failed check when it
    failed below hi or at no index; "" when none."""
    parts = []
    gaps = [str(g["index"]) for g in v["gaps"] if lo <= g["index"] < hi]
    if gaps:
        parts.append("gap records " + ",".join(gaps))
    f = v.get("failure")
    if f is not None and (f.get("index") is None or f["index"] < hi):
        parts.append("failed: " + f["error"])
    return "; ".join(parts)


def log_verified(x, evs):
    out = []
    for v in covering():
        ex = ""
        if not v["ok"]:
            ex = LOG_NOT_WHOLE + ": " + (findings(v, 0, 2**64) or "not ok")
        out.append([str(v["index"]), "ledger.verification", "", "", verification_item(v), "", ex])
    if not out:
        out.append(["", "", "", "", "no verification of size >= %d" % RANGE[1], "", NO_VERIFICATION])
    return out


def log_intact(x, evs):
    out = []
    for v in covering():
        d = findings(v, RANGE[0], RANGE[1])
        out.append([str(v["index"]), "ledger.verification", "", "", verification_item(v), "", RANGE_NOT_WHOLE + ": " + d if d else ""])
    return out


def verification_rows():
    rows = []
    for v in covering():
        f = v.get("failure")
        rows.append([str(v["index"]), go_time(unix_nanos(v["sealed_at"])), go_time(unix_nanos(v["started"])), go_time(unix_nanos(v["finished"])),
                     str(v["size"]), v["root"], "true" if v["ok"] else "false", str(len(v["gaps"])), "" if f is None else f["error"]])
    return rows


def findings_rows():
    rows = []
    for v in covering():
        for g in v["gaps"]:
            if RANGE[0] <= g["index"] < RANGE[1]:
                rows.append([str(v["index"]), "gap", str(g["index"]), "stream sequences %d..%d missing" % (g["first_seq"], g["last_seq"])])
        f = v.get("failure")
        if f is not None and (f.get("index") is None or f["index"] < RANGE[1]):
            rows.append([str(v["index"]), "failure", "" if f.get("index") is None else str(f["index"]), f["error"]])
    return rows


CHECKS = {
    "log-verified": lambda x, evs, clock: log_verified(x, evs),
    "log-intact": lambda x, evs, clock: log_intact(x, evs),
    "clock-synchronised": lambda x, evs, clock: clock_synchronised(x, evs, clock),
    "actors-listed": lambda x, evs, clock: actors_listed(evs, False),
    "groups-provisioned": lambda x, evs, clock: actors_listed(evs, True),
    "audit-reviewed": lambda x, evs, clock: audit_reviewed(x, evs),
    "changes-approved": lambda x, evs, clock: changes_approved(x, evs),
    "privileged-sessions-granted": lambda x, evs, clock: privileged_granted(x, evs),
    "columns-masked": lambda x, evs, clock: columns_masked(x, evs),
    "refusals-name-rule": lambda x, evs, clock: refusals_name_rule(x, evs),
    "approvals-decided-by-another": lambda x, evs, clock: approvals_decided_by_another(x, evs),
}


def field(v):
    if v == "":
        return v
    if v == "\\." or any(c in v for c in ',"\r\n') or v[0].isspace():
        return '"' + v.replace('"', '""') + '"'
    return v


def num(e, name):
    """A payload member's text when it is a JSON number (as written)."""
    v = (e.get("payload") or {}).get(name)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return ""
    return json.dumps(v)


def count_rows(evs, types, key, vals=None):
    counts = {}
    for e in evs:
        if types and e.get("type") not in types:
            continue
        k = tuple(key(e))
        v = vals(e) if vals else [1]
        c = counts.setdefault(k, [0] * len(v))
        for i, n in enumerate(v):
            c[i] += n
    return [list(k) + [str(n) for n in counts[k]] for k in sorted(counts, key=lambda k: [x.encode() for x in k])]


def sample(evs, typ, make):
    keyed = sorted(((hashlib.md5(s(e.get("id")).encode()).hexdigest(), e["_idx"], make(e)) for e in evs if e.get("type") == typ),
                   key=lambda t: (t[0], t[1]))
    return [r for _, _, r in keyed[:25]]


def target(e):
    t = e.get("target")
    return s(t.get("name")) if isinstance(t, dict) and s(t.get("name")) else "-"


def tables(evs, clock, segs, erased):
    def shown(v):
        m = re.match(r"^pii1\.([0-9a-f]{32})\.", v)
        if not m:
            return v
        return "(erased)" if m.group(1) in erased else "(sealed)"

    def identities():
        ids, order = {}, []
        for e in evs:
            a = e.get("actor") or {}
            k = actor(e)
            if k not in ids:
                ids[k] = {"first": e["_idx"], "dev": False, "email": "", "n": 0}
            i = ids[k]
            i["dev"] = i["dev"] or a.get("dev_identity") is True
            if s(a.get("email")):
                i["email"] = a["email"]
            i["last"] = e["_idx"]
            i["n"] += 1
        rows = []
        for k in sorted(ids, key=lambda k: [x.encode() for x in k]):
            i = ids[k]
            rows.append([k[0], k[1], shown(i["email"]), k[2], "true" if i["dev"] else "false", str(i["first"]), str(i["last"]), str(i["n"])])
        return rows[:1000]

    def groups_of(typ, counted):
        c = {}
        for e in evs:
            if e.get("type") != typ:
                continue
            for g in (e.get("actor") or {}).get("groups") or []:
                c[(actor(e)[1], g)] = c.get((actor(e)[1], g), 0) + 1
        keys = sorted(c, key=lambda k: [x.encode() for x in k])
        return [[k[0], k[1]] + ([str(c[k])] if counted else []) for k in keys][:1000]

    def restrictions():
        c = {}
        for e in evs:
            if e.get("type") in ("command.blocked", "mask.applied"):
                n, ids = c.setdefault(e["type"], [0, set()])
                c[e["type"]][0] += 1
                ids.add(actor(e)[1])
        return [[t, str(c[t][0]), str(len(c[t][1]))] for t in sorted(c)]

    def refused():
        rows = count_rows(evs, ["authn.failed"], lambda e: [pl(e, "reason")])
        rows.sort(key=lambda r: -int(r[1]))  # stable: ties keep the reason order
        return rows[:100]

    def what(e):
        return pl(e, "resource") or pl(e, "framework") or "-"

    def listed(typ, make):
        return [make(e) for e in evs if e.get("type") == typ][:1000]

    def b(v):
        return {True: "true", False: "false"}.get(v, "") if isinstance(v, bool) else ""

    def n(v):
        return "" if isinstance(v, bool) or not isinstance(v, int) else str(v)

    # Commands with their result: the first response.digest after the
    # command naming it.
    cmds, by_id = [], {}
    for e in evs:
        # a command whose id an earlier command awaiting its result has is
        # not a new one
        if e.get("type") == "command.executed" and (s(e.get("id")) not in by_id or by_id[s(e.get("id"))]["digest"]):
            t = e.get("target")
            c = {"idx": e["_idx"], "time": s(e.get("time")), "subject": actor(e)[1], "session": s(e.get("session_id")),
                 "target": s(t.get("name")) if isinstance(t, dict) else "", "kind": pl(e, "kind"), "statement": pl(e, "statement")[:200],
                 "digest": False, "rows": None, "tag": "", "error": ""}
            cmds.append(c)
            by_id[s(e.get("id"))] = c
        elif e.get("type") == "response.digest":
            c = by_id.get(pl(e, "command_id"))
            if c is None or c["digest"]:
                continue
            c["digest"], c["tag"], c["error"] = True, pl(e, "command_tag"), pl(e, "error_code")
            r = (e.get("payload") or {}).get("rows")
            if isinstance(r, int) and not isinstance(r, bool):
                c["rows"] = r
    ddl = ["ALTER", "CREATE", "DROP", "TRUNCATE", "GRANT", "REVOKE", "COMMENT", "RENAME"]
    largest = sorted((c for c in cmds if c["rows"] is not None), key=lambda c: (-c["rows"], c["idx"]))[:25]
    vol = {}
    for c in cmds:
        v = vol.setdefault(c["subject"], [0, None])
        v[0] += 1
        if c["rows"] is not None:
            v[1] = (v[1] or 0) + c["rows"]
    volume = sorted(vol, key=lambda a: (vol[a][1] is None, -(vol[a][1] or 0), a.encode()))

    # Approval requests with their decision: the first after, of their id.
    reqs, first_req = [], {}
    for e in evs:
        if e.get("type") == "approval.requested":
            r = {"idx": e["_idx"], "id": pl(e, "approval_id"), "rule": pl(e, "rule"), "requester": actor(e)[1], "at": s(e.get("time")),
                 "decision": "", "approver": "", "decided": "", "waited": ""}
            reqs.append(r)
            if r["id"] and r["id"] not in first_req:
                first_req[r["id"]] = r
        elif e.get("type") in ("approval.granted", "approval.denied", "approval.expired"):
            r = first_req.get(pl(e, "approval_id"))
            if r is None or r["decision"]:
                continue
            r["decision"], r["approver"], r["decided"] = e["type"][len("approval."):], actor(e)[1], s(e.get("time"))
            try:
                d = unix_nanos(r["decided"]) - unix_nanos(r["at"])
                r["waited"] = str(abs(d) // 10**6 * (1 if d >= 0 else -1))
            except Exception:
                pass

    def approver(r):
        return "" if r["decision"] == "expired" else r["approver"]

    def self_approved(r):
        return r["approver"] != "" and r["approver"] == r["requester"]

    decisions = {}
    for r in reqs:
        d = decisions.setdefault(r["decision"] or "pending", [0, 0])
        d[0] += 1
        d[1] += 1 if self_approved(r) else 0
    by_rule = {}
    for r in reqs:
        k = (r["rule"], r["decision"] or "pending")
        by_rule[k] = by_rule.get(k, 0) + 1
    req_sample = sorted(reqs, key=lambda r: (hashlib.md5(r["id"].encode()).hexdigest(), r["idx"]))[:25]

    masks, summed = {}, set()
    for e in evs:
        if e.get("type") != "mask.applied":
            continue
        k = (pl(e, "rule_id"), num(e, "rule_version"), pl(e, "column") or pl(e, "field"), pl(e, "method"))
        m = masks.setdefault(k, [0, 0])
        m[0] += 1
        c = (e.get("payload") or {}).get("count")
        if isinstance(c, int) and not isinstance(c, bool):
            m[1] += c
            summed.add(k)

    return {
        "5.3/decisions": (["decision", "requests", "decided_by_requester"], [[d, str(decisions[d][0]), str(decisions[d][1])] for d in sorted(decisions)]),
        "5.3/sample": (["idx", "approval_id", "rule", "requester", "approver", "decision", "requested_at", "decided_at", "waited_ms", "self_approved"],
                       [[str(r["idx"]), r["id"], r["rule"], r["requester"], approver(r), r["decision"], r["at"], r["decided"], r["waited"],
                         ("true" if self_approved(r) else "false") if r["decision"] else ""] for r in req_sample]),
        "8.2/privileged_statements": (["idx", "approval_id", "rule", "requester", "approver", "decision", "two_people"],
                                      [[str(r["idx"]), r["id"], r["rule"], r["requester"], approver(r), r["decision"],
                                        ("true" if r["requester"] != r["approver"] else "false") if r["decision"] not in ("", "expired") else ""] for r in reqs][:1000]),
        "8.11/masks_by_rule": (["rule_id", "rule_version", "column_or_field", "method", "actions", "values_masked"],
                               [list(k) + [str(masks[k][0]), str(masks[k][1]) if k in summed else ""] for k in sorted(masks, key=lambda k: [x.encode() for x in k])]),
        "8.12/largest_results": (["idx", "actor_subject", "target_name", "statement", "rows", "command_tag"],
                                 [[str(c["idx"]), c["subject"], c["target"], c["statement"], str(c["rows"]), c["tag"]] for c in largest]),
        "8.12/volume": (["actor_subject", "statements", "rows"], [[a, str(vol[a][0]), "" if vol[a][1] is None else str(vol[a][1])] for a in volume][:100]),
        "8.16/statements_without_result": (["idx", "actor_subject", "session_id", "statement"],
                                           [[str(c["idx"]), c["subject"], c["session"], c["statement"]] for c in cmds if not c["digest"]][:100]),
        "8.32/changes": (["idx", "time", "actor_subject", "target_name", "kind", "statement", "command_tag", "error_code"],
                         [[str(c["idx"]), c["time"], c["subject"], c["target"], c["kind"], c["statement"], c["tag"], c["error"]] for c in cmds if c["kind"].upper() in ddl][:1000]),
        "8.32/approvals": (["rule", "decision", "requests"], [[k[0], k[1], str(by_rule[k])] for k in sorted(by_rule, key=lambda k: [x.encode() for x in k])]),
        "5.15/sessions_by_target": (["target", "actor_kind", "sessions"], count_rows(evs, ["session.started"], lambda e: [target(e), actor(e)[2]])),
        "5.15/blocked": (["rule", "blocked"], count_rows(evs, ["command.blocked"], lambda e: [pl(e, "rule")])),
        "5.16/identities": (["actor_issuer", "actor_subject", "email", "actor_kind", "dev_identity", "first_idx", "last_idx", "events"], identities()),
        "5.17/authentication": (["type", "actor_issuer", "events"], count_rows(evs, ["authn.succeeded", "authn.failed", "session.started"], lambda e: [e["type"], actor(e)[0]])),
        "5.17/failures": (["idx", "time", "client_addr", "reason"], sample(evs, "authn.failed", lambda e: [str(e["_idx"]), s(e.get("time")), pl(e, "client_addr"), pl(e, "reason")])),
        "5.18/access_reviews": (["idx", "time", "reviewer", "period_from", "period_to", "grants", "break_glass", "unverified_records", "listing_sha256", "recorded_by"],
                                listed("access.reviewed", lambda e: [str(e["_idx"]), s(e.get("time")), actor(e)[1], pl(e, "from"), pl(e, "to"), num(e, "grants"), num(e, "break_glass"),
                                                                     num(e, "unverified") or "0", pl(e, "listing_sha256"), s((e.get("source") or {}).get("kind"))])),
        "5.18/directory": (["idx", "time", "snapshot", "part", "parts", "source", "users", "active", "listing_sha256"],
                           listed("identity.snapshot", lambda e: [str(e["_idx"]), s(e.get("time")), pl(e, "snapshot"), num(e, "part"), num(e, "parts"), pl(e, "source"),
                                                                  num(e, "users"), num(e, "active"), pl(e, "listing_sha256")])),
        "5.18/groups_held": (["actor_subject", "group_name", "events"], groups_of("session.started", True)),
        "5.28/custody": (["type", "actor_subject", "what", "events"], count_rows(evs, ["audit.accessed", "evidence.exported"], lambda e: [e["type"], actor(e)[1], what(e)])),
        "5.33/segments": (["first", "size", "name", "sha256", "version", "lock_mode", "retain_until"],
                          [[str(g["first"]), str(g["size"]), g["name"], g["sha256"], s(g.get("version")), s(g.get("lock_mode")), s(g.get("retain_until"))] for g in segs]),
        "5.33/verification": (["index", "sealed_at", "started", "finished", "size", "root", "ok", "gaps", "failure"], verification_rows()[:1000]),
        "8.15/findings": (["verification_index", "kind", "record_index", "detail"], findings_rows()[:1000]),
        "8.2/privileged_groups": (["actor_subject", "group_name"], groups_of("approval.requested", False)),
        "8.3/restrictions": (["type", "events", "identities"], restrictions()),
        "8.3/blocked_sample": (["idx", "actor_subject", "rule", "reason", "statement"],
                               sample(evs, "command.blocked", lambda e: [str(e["_idx"]), actor(e)[1], pl(e, "rule"), pl(e, "reason"), pl(e, "statement")[:200]])),
        "8.5/issuers": (["actor_issuer", "sessions", "dev_identity_sessions"],
                        count_rows(evs, ["session.started"], lambda e: [actor(e)[0]], lambda e: [1, 1 if (e.get("actor") or {}).get("dev_identity") is True else 0])),
        "8.5/refused": (["reason", "refused"], refused()),
        "8.15/events_by_type": (["type", "events"], count_rows(evs, None, lambda e: [s(e.get("type"))])),
        "8.16/reviews": (["actor_subject", "resource", "reads"], count_rows(evs, ["audit.accessed"], lambda e: [actor(e)[1], pl(e, "resource")])),
        "8.17/clock": (["idx", "sealed_at", "synchronised", "maxerror_us", "esterror_us", "source", "host", "read_error"],
                       [[str(r["index"]), r["sealed_at"], b(r.get("synchronised")), n(r.get("maxerror_us")), n(r.get("esterror_us")), s(r.get("source")), s(r.get("host")), s(r.get("read_error"))]
                        for r in clock][:1000]),
    }


def csv_text(header, rows):
    return "".join(",".join(field(v) for v in r) + "\n" for r in [header] + rows)


def main():
    global GRANT_KEY, VERSION, PERIOD, VERIFS, RANGE
    bundle, xfile, out = sys.argv[1:4]
    if len(sys.argv) > 4:
        GRANT_KEY = parse_vkey(sys.argv[4])
    with open(xfile) as f:
        x = json.load(f)
    evs = []
    with open(os.path.join(bundle, "events.jsonl")) as f:
        for line in f:
            l = json.loads(line)
            e = l["event"]
            e["_idx"] = l["index"]
            evs.append(e)
    with open(os.path.join(bundle, "context", "clock.json")) as f:
        clock = json.load(f)["readings"]
    with open(os.path.join(bundle, "log", "segments.json")) as f:
        segs = json.load(f)
    with open(os.path.join(bundle, "manifest.json")) as f:
        m = json.load(f)
    VERSION, PERIOD = x["Version"], asserted_period(m)
    RANGE = (m["range"]["first"], m["range"]["end"])
    vpath = os.path.join(bundle, "context", "verifications.json")
    if os.path.exists(vpath):
        want = verifications_context(os.path.join(bundle, "log", "verifications.jsonl"))
        with open(vpath, "rb") as f:
            got = f.read()
        if got != want:
            sys.exit("context/verifications.json differs from what log/verifications.jsonl gives:\n%s\nwant:\n%s" % (got.decode("utf-8", "replace"), want.decode("utf-8")))
        VERIFS = json.loads(want)["verifications"]
    erased = {e["pseudonym"] for e in ((m.get("sealed_fields") or {}).get("erased") or [])}
    for k, (header, rows) in tables(evs, clock, segs, erased).items():
        control, name = k.split("/")
        os.makedirs(os.path.join(out, control), exist_ok=True)
        with open(os.path.join(out, control, name + ".csv"), "w", newline="") as f:
            f.write(csv_text(header, rows))
    for exp in x["Controls"]:
        rows = CHECKS[exp["Check"]](exp, evs, clock)
        text = "index,type,session_id,actor,item,evidence_index,exception\n" + "".join(",".join(field(v) for v in r) + "\n" for r in rows)
        os.makedirs(os.path.join(out, exp["Control"]), exist_ok=True)
        with open(os.path.join(out, exp["Control"], "assertion.csv"), "w", newline="") as f:
            f.write(text)
        exc = sum(1 for r in rows if r[6])
        result = "not observed" if not rows else ("exceptions found" if exc else "effective")
        print(exp["Control"], len(rows), exc, result)


main()
