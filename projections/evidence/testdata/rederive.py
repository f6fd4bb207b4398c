#!/usr/bin/env python3
"""An independent reading of docs/FORMAT.md section 12.1, written from the
spec alone: re-derives every control's assertion.csv of an unzipped
evidence bundle from its events.jsonl and its expectations (given as JSON,
to keep to the standard library), and prints, per control, one line
"<control> <population> <exceptions> <result>". Writes the CSVs to OUT.

usage: rederive.py BUNDLE_DIR EXPECTATIONS_JSON OUT_DIR
"""
import json
import os
import re
import sys
from datetime import datetime

NO_APPROVAL = "ran without a second person's approval"
SELF_APPROVED = "approved by its own requester"
MACHINE = "approved by a machine identity, not a person"
NO_GRANT = "privileged statements ran outside any access grant"
UNMASKED = "returned rows with the column unmasked"
NO_RULE = "refused with no rule named"
DECIDED_BY_REQUESTER = "decided by its own requester"


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
    out = []
    for key in order:
        cmds = groups[key]
        first = cmds[0]
        item = "1 privileged statement" if len(cmds) == 1 else "%d privileged statements" % len(cmds)
        grant = None
        sid = s(first.get("session_id"))
        if sid:
            started = next((e for e in evs if e.get("type") == "session.started" and s(e.get("session_id")) == sid), None)
            if started is not None and pl(started, "access_id"):
                for g in evs:
                    req = (g.get("payload") or {}).get("requester")
                    req = req if isinstance(req, dict) else {}
                    if (g.get("type") == "access.granted" and pl(g, "access_id") == pl(started, "access_id")
                            and s(req.get("subject")) == actor(started)[1]):
                        try:
                            nb, na, t = rfc3339(pl(g, "not_before")), rfc3339(pl(g, "not_after")), rfc3339(started["time"])
                        except Exception:
                            continue
                        if nb <= t < na:
                            grant = g
                            break
        if grant is not None:
            out.append(row(first, item, grant))
            continue
        approvals = [approval(c, evs) for c in cmds]
        if x.get("ApprovalsCover") and all(ex == "" for _, ex in approvals):
            out.append(row(first, item, approvals[-1][0]))
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
    out = []
    for e in evs:
        if e.get("type") == "command.blocked":
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


CHECKS = {
    "changes-approved": changes_approved,
    "privileged-sessions-granted": privileged_granted,
    "columns-masked": columns_masked,
    "refusals-name-rule": refusals_name_rule,
    "approvals-decided-by-another": approvals_decided_by_another,
}


def field(v):
    if v == "":
        return v
    if v == "\\." or any(c in v for c in ',"\r\n') or v[0].isspace():
        return '"' + v.replace('"', '""') + '"'
    return v


def main():
    bundle, xfile, out = sys.argv[1:4]
    with open(xfile) as f:
        x = json.load(f)
    evs = []
    with open(os.path.join(bundle, "events.jsonl")) as f:
        for line in f:
            l = json.loads(line)
            e = l["event"]
            e["_idx"] = l["index"]
            evs.append(e)
    for exp in x["Controls"]:
        rows = CHECKS[exp["Check"]](exp, evs)
        text = "index,type,session_id,actor,item,evidence_index,exception\n" + "".join(",".join(field(v) for v in r) + "\n" for r in rows)
        os.makedirs(os.path.join(out, exp["Control"]), exist_ok=True)
        with open(os.path.join(out, exp["Control"], "assertion.csv"), "w", newline="") as f:
            f.write(text)
        exc = sum(1 for r in rows if r[6])
        result = "not observed" if not rows else ("exceptions found" if exc else "effective")
        print(exp["Control"], len(rows), exc, result)


main()
