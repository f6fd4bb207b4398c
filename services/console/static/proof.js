// auditledger console: checks an event's inclusion in the log in the
// browser. It fetches the event's inclusion proof (C2SP tlog-proof@v1,
// docs/FORMAT.md §6) with its signed checkpoint, hashes the record's bytes
// with WebCrypto SHA-256 (leaf = SHA-256(0x00 ‖ leaf input); a bound
// record's event must match the digest its header commits to) and walks
// the proof to the checkpoint's root (RFC 9162 §2.1.3.2), showing each
// step. No dependencies, no eval, no inline code.
(function () {
  "use strict";

  var box = document.getElementById("proof");
  if (!box) return;
  var result = document.getElementById("proof-result");
  var steps = document.getElementById("proof-steps");
  var again = document.getElementById("proof-run");
  var pin = document.getElementById("vkey");
  var pinKey = "auditledger.console.vkey";
  var seenKey = "auditledger.console.checkpoint";
  var HASH = 32;

  function b64(s) {
    var bin = atob(s);
    var out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }
  function hex(u8) {
    var s = "";
    for (var i = 0; i < u8.length; i++) s += (u8[i] < 16 ? "0" : "") + u8[i].toString(16);
    return s;
  }
  function toB64(u8) {
    var s = "";
    for (var i = 0; i < u8.length; i++) s += String.fromCharCode(u8[i]);
    return btoa(s);
  }
  function equal(a, b) {
    if (a.length !== b.length) return false;
    var d = 0;
    for (var i = 0; i < a.length; i++) d |= a[i] ^ b[i];
    return d === 0;
  }
  function concat() {
    var n = 0, i;
    for (i = 0; i < arguments.length; i++) n += arguments[i].length;
    var out = new Uint8Array(n), at = 0;
    for (i = 0; i < arguments.length; i++) { out.set(arguments[i], at); at += arguments[i].length; }
    return out;
  }
  function sha256(u8) {
    return crypto.subtle.digest("SHA-256", u8).then(function (d) { return new Uint8Array(d); });
  }
  function node(l, r) { return sha256(concat(new Uint8Array([1]), l, r)); }

  function step(ok, text) {
    var li = document.createElement("li");
    li.className = ok ? "ok" : "failed";
    li.textContent = (ok ? "✓ " : "✗ ") + text;
    steps.appendChild(li);
  }
  function Fail(msg) { this.message = msg; }

  // parseProof reads tlog-proof@v1: index, the path, the checkpoint.
  function parseProof(text) {
    var cut = text.indexOf("\n\n");
    if (cut < 0) throw new Fail("the proof has no empty line before its checkpoint");
    var head = text.slice(0, cut).split("\n");
    var cp = text.slice(cut + 2);
    if (head[0] !== "c2sp.org/tlog-proof@v1") throw new Fail("the proof's first line is " + JSON.stringify(head[0]));
    var i = 1;
    if (head[i] && head[i].indexOf("extra ") === 0) i++;
    var m = /^index (\d+)$/.exec(head[i] || "");
    if (!m) throw new Fail("the proof has no index line");
    var hashes = [];
    for (i++; i < head.length; i++) {
      var h;
      try { h = b64(head[i]); } catch (e) { h = null; }
      if (!h || h.length !== HASH) throw new Fail("line " + (i + 1) + " of the proof is not a SHA-256 hash in base64");
      hashes.push(h);
    }
    // The checkpoint (C2SP tlog-checkpoint): origin, size, root hash,
    // extension lines, an empty line, signature lines.
    var body = cp.split("\n\n")[0].split("\n");
    var sigs = cp.slice(cp.indexOf("\n\n") + 2).split("\n").filter(function (l) { return l; });
    if (body.length < 3 || !/^\d+$/.test(body[1])) throw new Fail("the checkpoint is not origin, size and root hash");
    var root;
    try { root = b64(body[2]); } catch (e) { root = null; }
    if (!root || root.length !== HASH) throw new Fail("the checkpoint's root is not a SHA-256 hash in base64");
    return { index: +m[1], hashes: hashes, origin: body[0], size: +body[1], root: root, sigs: sigs, text: cp };
  }

  // rootFrom is RFC 9162 §2.1.3.2: the root the path leads to from leaf
  // at index in a tree of size, or a failure.
  function rootFrom(index, size, leaf, path) {
    if (index >= size) return Promise.reject(new Fail("index " + index + " is not below the tree size " + size));
    var fn = index, sn = size - 1, r = Promise.resolve(leaf);
    path.forEach(function (p) {
      r = r.then(function (h) {
        if (sn === 0) throw new Fail("the proof is longer than the path to the root");
        var next;
        if (fn % 2 === 1 || fn === sn) {
          next = node(p, h);
          if (fn % 2 === 0) while (fn % 2 === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
        } else {
          next = node(h, p);
        }
        fn = Math.floor(fn / 2);
        sn = Math.floor(sn / 2);
        return next;
      });
    });
    return r.then(function (h) {
      if (sn !== 0) throw new Fail("the proof is shorter than the path to the root");
      return h;
    });
  }

  // checkSignature verifies the checkpoint's signature by the pinned
  // key (a note verifier key, name+hash+base64(0x01 ‖ Ed25519 key)) with
  // WebCrypto Ed25519: the key hash is SHA-256(name ‖ "\n" ‖ key)'s first
  // four bytes, the signed text the checkpoint's lines before the empty
  // line.
  function checkSignature(cp, vkey) {
    var a = vkey.indexOf("+"), b = vkey.indexOf("+", a + 1);
    if (a < 1 || b < 0 || b - a !== 9) return Promise.reject(new Fail("the pinned key is not name+hash+key"));
    var name = vkey.slice(0, a), hash = vkey.slice(a + 1, b), key;
    try { key = b64(vkey.slice(b + 1)); } catch (e) { key = null; }
    if (!key || key.length !== 33 || key[0] !== 1) return Promise.reject(new Fail("the pinned key is not an Ed25519 note key"));
    var enc = new TextEncoder();
    var text = enc.encode(cp.slice(0, cp.indexOf("\n\n") + 1));
    return sha256(concat(enc.encode(name + "\n"), key)).then(function (h) {
      if (hex(h.slice(0, 4)) !== hash) throw new Fail("the pinned key's hash does not match its key");
      var sig = null;
      cp.slice(cp.indexOf("\n\n") + 2).split("\n").forEach(function (l) {
        var f = l.split(" ");
        if (f.length !== 3 || f[0] !== "\u2014" || f[1] !== name) return;
        var raw;
        try { raw = b64(f[2]); } catch (e) { return; }
        if (raw.length === 68 && hex(raw.slice(0, 4)) === hash) sig = raw.slice(4);
      });
      if (!sig) throw new Fail("the checkpoint has no signature by the pinned key " + name + " (key hash " + hash + ")");
      return crypto.subtle.importKey("raw", key.slice(1), { name: "Ed25519" }, false, ["verify"]).then(function (k) {
        return crypto.subtle.verify({ name: "Ed25519" }, k, sig, text);
      }).then(function (ok) {
        if (!ok) throw new Fail("the checkpoint's signature by " + name + " does not verify with the pinned key");
        return name + " (key hash " + hash + ")";
      });
    });
  }

  // consistent is RFC 9162 §2.1.4.2: does the consistency proof show the
  // tree of size m (root a) a prefix of the tree of size n (root b)?
  function consistent(m, a, n, b, path) {
    if (m === 0) return Promise.resolve(path.length === 0);
    if (m === n) return Promise.resolve(path.length === 0 && equal(a, b));
    if (m > n || path.length === 0) return Promise.resolve(false);
    var p2 = m;
    while (p2 % 2 === 0) p2 /= 2;
    if (p2 === 1) path = [a].concat(path); // m is a power of two
    var fn = m - 1, sn = n - 1;
    while (fn % 2 === 1) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
    var fr = Promise.resolve(path[0]), sr = Promise.resolve(path[0]);
    var broken = false;
    path.slice(1).forEach(function (c) {
      if (sn === 0) { broken = true; return; }
      if (fn % 2 === 1 || fn === sn) {
        fr = fr.then(function (h) { return node(c, h); });
        sr = sr.then(function (h) { return node(c, h); });
        if (fn % 2 === 0) while (fn % 2 === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
      } else {
        sr = sr.then(function (h) { return node(h, c); });
      }
      fn = Math.floor(fn / 2);
      sn = Math.floor(sn / 2);
    });
    return Promise.all([fr, sr]).then(function (r) { return !broken && sn === 0 && equal(r[0], a) && equal(r[1], b); });
  }

  // seenBefore checks the checkpoint against the last one of the same
  // log this browser saw (kept in local storage): the same size must
  // have the same root, and the smaller tree must be a prefix of the
  // larger, by the log's consistency proof. The larger is kept.
  function seenBefore(cp) {
    var seen = null;
    try { seen = JSON.parse(localStorage.getItem(seenKey) || "null"); } catch (e) { seen = null; }
    var keep = function (c) {
      try { localStorage.setItem(seenKey, JSON.stringify({ origin: c.origin, size: c.size, root: toB64(c.root) })); } catch (e) { /* not kept */ }
    };
    if (!seen || seen.origin !== cp.origin) {
      keep(cp);
      step(true, "the first checkpoint of " + cp.origin + " this browser keeps: later checks compare with it");
      return Promise.resolve();
    }
    var old = { size: seen.size, root: b64(seen.root) };
    var lo = old.size <= cp.size ? old : cp, hi = old.size <= cp.size ? cp : old;
    if (lo.size === hi.size) {
      if (!equal(lo.root, hi.root)) throw new Fail("the log shows another root at size " + cp.size + " than this browser saw before: a fork");
      step(true, "the same checkpoint as this browser saw before (size " + cp.size + ")");
      return Promise.resolve();
    }
    var url = box.dataset.consistencyUrl + "?from=" + lo.size + "&to=" + hi.size;
    return fetch(url, { credentials: "same-origin", headers: { Accept: "text/plain" } }).then(function (resp) {
      return resp.text().then(function (t) {
        if (!resp.ok) throw new Fail("the console refused the consistency proof: " + resp.status);
        var lines = t.split("\n");
        if (lines[0] !== "auditledger.dev/tlog-consistency@v1" || lines[1] !== "old " + lo.size || lines[2] !== "new " + hi.size) throw new Fail("the consistency proof is not of sizes " + lo.size + " and " + hi.size);
        var path = [];
        lines.slice(3).forEach(function (l) { if (l) path.push(b64(l)); });
        return consistent(lo.size, lo.root, hi.size, hi.root, path);
      });
    }).then(function (ok) {
      if (!ok) throw new Fail("the checkpoint of size " + hi.size + " is not consistent with the one of size " + lo.size + " (" + (lo === old ? "seen before" : "shown now") + "): the log was rewritten");
      step(true, "consistent with the checkpoint this browser saw before (size " + old.size + "), by the log's consistency proof");
      keep(hi === old ? { origin: cp.origin, size: old.size, root: old.root } : cp);
    });
  }

  function check() {
    steps.textContent = "";
    again.hidden = true;
    box.dataset.state = "checking";
    box.className = "proof";
    result.textContent = "Checking…";
    var index = +box.dataset.index;
    var record = b64(box.dataset.record);
    var v = record[0];
    var headLen = 25 + (v === 2 || v === 4 ? 68 : 0);
    var bound = v === 3 || v === 4;
    var input = bound ? record.slice(0, headLen + 2 * HASH) : record;
    var recIndex = 0;
    for (var i = 1; i <= 8; i++) recIndex = recIndex * 256 + record[i];
    var leaf, proof;
    var chain = Promise.resolve().then(function () {
      if (v < 1 || v > 4) throw new Fail("record version " + v + " is not one this page knows");
      if (recIndex !== index) throw new Fail("the record says index " + recIndex + ", the page " + index);
      step(true, "the record (version " + v + ", " + record.length + " bytes) is the one at index " + index);
      if (!bound) return;
      return sha256(record.slice(headLen + 2 * HASH)).then(function (d) {
        if (!equal(d, record.slice(headLen + HASH, headLen + 2 * HASH))) throw new Fail("the event's bytes do not match the digest its record commits to");
        step(true, "SHA-256 of the event's bytes is the digest its record commits to: " + hex(d));
      });
    }).then(function () {
      return sha256(concat(new Uint8Array([0]), input));
    }).then(function (h) {
      leaf = h;
      if (hex(h) !== box.dataset.leaf) throw new Fail("the record hashes to leaf " + hex(h) + ", not the " + box.dataset.leaf + " the API listed");
      step(true, "leaf = SHA-256(0x00 ‖ record" + (bound ? " header" : "") + ") = " + hex(h));
      return fetch(box.dataset.proofUrl, { credentials: "same-origin", headers: { Accept: "text/plain" } });
    }).then(function (resp) {
      return resp.text().then(function (t) {
        if (!resp.ok) throw new Fail("the console refused the proof: " + resp.status + " " + t.replace(/<[^>]*>/g, " ").replace(/\s+/g, " ").slice(0, 300));
        return t;
      });
    }).then(function (t) {
      proof = parseProof(t);
      if (proof.index !== index) throw new Fail("the proof is of index " + proof.index + ", not " + index);
      step(true, "proof of index " + index + ": " + proof.hashes.length + " hashes, against the checkpoint of " + proof.origin + " at size " + proof.size);
      var fn = index, sn = proof.size - 1, n = 0;
      proof.hashes.forEach(function (p) {
        n++;
        var left = fn % 2 === 1 || fn === sn;
        step(true, "step " + n + ": sibling " + toB64(p) + " on the " + (left ? "left" : "right"));
        if (left && fn % 2 === 0) while (fn % 2 === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
        fn = Math.floor(fn / 2);
        sn = Math.floor(sn / 2);
      });
      return rootFrom(index, proof.size, leaf, proof.hashes);
    }).then(function (root) {
      if (!equal(root, proof.root)) throw new Fail("the proof leads to root " + toB64(root) + ", not the checkpoint's " + toB64(proof.root));
      step(true, "the proof leads to the checkpoint's root " + toB64(root));
      var vkey = pin.value.trim();
      if (!vkey) return null;
      return checkSignature(proof.text, vkey).then(function (who) {
        step(true, "the checkpoint's signature by " + who + " verifies with the pinned key (Ed25519)");
        try { localStorage.setItem(pinKey, vkey); } catch (e) { /* private mode: not kept */ }
        return who;
      });
    }).then(function (pinned) {
      return seenBefore(proof).then(function () { return pinned; });
    }).then(function (pinned) {
      var keys = proof.sigs.map(function (l) { var f = l.split(" "); return f[1] + " (key hash " + (f[2] ? hex(b64(f[2]).slice(0, 4)) : "?") + ")"; });
      box.dataset.state = "verified";
      box.dataset.signature = pinned ? "verified" : "unchecked";
      box.className = "proof ok";
      result.textContent = "Verified: the event at index " + index + " is in the log " + proof.origin + " of size " + proof.size +
        (pinned ? ", and the checkpoint is signed by the pinned key " + pinned + "."
          : " (checkpoint signed by " + (keys.join(", ") || "nobody") + "; its signature is not checked: pin the log's published key to check it).");
    }).catch(function (e) {
      var msg = e instanceof Fail ? e.message : "the check could not run: " + (e && e.message || e);
      step(false, msg);
      box.dataset.state = "failed";
      box.className = "proof failed";
      result.textContent = "Failed: " + msg;
    }).then(function () {
      again.hidden = false;
    });
    return chain;
  }

  again.addEventListener("click", check);
  document.getElementById("pin").hidden = false;
  try { pin.value = localStorage.getItem(pinKey) || ""; } catch (e) { /* no storage */ }
  if (!window.crypto || !crypto.subtle) {
    result.textContent = "This browser offers no WebCrypto here (it needs https or localhost): check the proof offline.";
    box.dataset.state = "unavailable";
    return;
  }
  check();
})();
