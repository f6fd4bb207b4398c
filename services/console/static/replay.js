// auditledger console: plays an asciicast v2 file (the API's cast of a
// terminal session) on a character grid. No dependencies, no eval, no
// inline code: the Content-Security-Policy allows this file only.
//
// The grid understands what shells and common programs write: printable
// text with wrapping, CR, LF, BS, TAB, cursor movement and positioning,
// erasing the screen or a line, the alternate screen and resize frames
// ("r", COLSxROWS). Colours and other attributes are dropped: the text is
// what an auditor reads.
(function () {
  "use strict";

  var player = document.getElementById("player");
  var source = document.getElementById("cast");
  if (!player || !source) return;

  function parse(text) {
    var lines = text.split("\n");
    var head = JSON.parse(lines[0]);
    var frames = [];
    for (var i = 1; i < lines.length; i++) {
      var l = lines[i].trim();
      if (!l) continue;
      var f = JSON.parse(l);
      if (Array.isArray(f) && f.length === 3) frames.push({ t: +f[0], k: f[1], d: String(f[2]) });
    }
    return { width: head.width || 80, height: head.height || 24, frames: frames };
  }

  function Term(cols, rows) {
    this.resize(cols, rows);
  }
  Term.prototype.resize = function (cols, rows) {
    this.cols = Math.max(1, Math.min(cols, 500));
    this.rows = Math.max(1, Math.min(rows, 200));
    this.reset();
  };
  Term.prototype.reset = function () {
    this.grid = [];
    for (var y = 0; y < this.rows; y++) this.grid.push(this.blank());
    this.x = 0;
    this.y = 0;
    this.state = 0; // 0 text, 1 after ESC, 2 CSI, 3 OSC, 4 OSC after ESC
    this.params = "";
  };
  Term.prototype.blank = function () {
    var row = [];
    for (var x = 0; x < this.cols; x++) row.push(" ");
    return row;
  };
  Term.prototype.lineFeed = function () {
    if (this.y === this.rows - 1) {
      this.grid.shift();
      this.grid.push(this.blank());
    } else {
      this.y++;
    }
  };
  Term.prototype.put = function (ch) {
    if (this.x >= this.cols) {
      this.x = 0;
      this.lineFeed();
    }
    this.grid[this.y][this.x] = ch;
    this.x++;
  };
  Term.prototype.erase = function (y, from, to) {
    for (var x = Math.max(0, from); x < Math.min(this.cols, to); x++) this.grid[y][x] = " ";
  };
  Term.prototype.csi = function (final, params) {
    var priv = params.charAt(0) === "?";
    var ps = (priv ? params.slice(1) : params).split(";").map(function (p) { return parseInt(p, 10); });
    var n = isNaN(ps[0]) || ps[0] === 0 ? 1 : ps[0];
    var y;
    switch (final) {
      case "A": this.y = Math.max(0, this.y - n); break;
      case "B": this.y = Math.min(this.rows - 1, this.y + n); break;
      case "C": this.x = Math.min(this.cols - 1, this.x + n); break;
      case "D": this.x = Math.max(0, Math.min(this.x, this.cols) - n); break;
      case "G": this.x = Math.min(this.cols - 1, n - 1); break;
      case "d": this.y = Math.min(this.rows - 1, n - 1); break;
      case "H": case "f":
        this.y = Math.min(this.rows - 1, (isNaN(ps[0]) || ps[0] === 0 ? 1 : ps[0]) - 1);
        this.x = Math.min(this.cols - 1, (isNaN(ps[1]) || ps[1] === 0 ? 1 : ps[1]) - 1);
        break;
      case "J": {
        var mode = isNaN(ps[0]) ? 0 : ps[0];
        if (mode === 0) {
          this.erase(this.y, this.x, this.cols);
          for (y = this.y + 1; y < this.rows; y++) this.erase(y, 0, this.cols);
        } else if (mode === 1) {
          for (y = 0; y < this.y; y++) this.erase(y, 0, this.cols);
          this.erase(this.y, 0, this.x + 1);
        } else {
          for (y = 0; y < this.rows; y++) this.erase(y, 0, this.cols);
        }
        break;
      }
      case "K": {
        var m = isNaN(ps[0]) ? 0 : ps[0];
        if (m === 0) this.erase(this.y, this.x, this.cols);
        else if (m === 1) this.erase(this.y, 0, this.x + 1);
        else this.erase(this.y, 0, this.cols);
        break;
      }
      case "P": // delete characters
        this.grid[this.y].splice(this.x, n);
        while (this.grid[this.y].length < this.cols) this.grid[this.y].push(" ");
        break;
      case "@": // insert blanks
        for (var i = 0; i < n; i++) this.grid[this.y].splice(this.x, 0, " ");
        this.grid[this.y].length = this.cols;
        break;
      case "h": case "l":
        // The alternate screen (1049, 47, 1047): a fresh screen either way.
        if (priv && (ps[0] === 1049 || ps[0] === 47 || ps[0] === 1047)) {
          for (y = 0; y < this.rows; y++) this.erase(y, 0, this.cols);
          this.x = 0;
          this.y = 0;
        }
        break;
      default: // SGR (m) and the rest change no text
    }
  };
  Term.prototype.write = function (s) {
    for (var i = 0; i < s.length; i++) {
      var ch = s.charAt(i);
      var c = s.charCodeAt(i);
      switch (this.state) {
        case 0:
          if (c === 27) this.state = 1;
          else if (c === 13) this.x = 0;
          else if (c === 10 || c === 11 || c === 12) this.lineFeed();
          else if (c === 8) this.x = Math.max(0, Math.min(this.x, this.cols) - 1);
          else if (c === 9) this.x = Math.min(this.cols - 1, (Math.floor(this.x / 8) + 1) * 8);
          else if (c >= 32 && c !== 127) this.put(ch);
          break;
        case 1:
          if (ch === "[") { this.state = 2; this.params = ""; }
          else if (ch === "]") this.state = 3;
          else if (ch === "c") { this.reset(); }
          else this.state = 0; // a two-byte escape: nothing to draw
          break;
        case 2:
          if (c >= 0x40 && c <= 0x7e) { this.state = 0; this.csi(ch, this.params); }
          else this.params += ch;
          break;
        case 3:
          if (c === 7) this.state = 0;
          else if (c === 27) this.state = 4;
          break;
        case 4:
          this.state = ch === "\\" ? 0 : 3;
          break;
      }
    }
  };
  Term.prototype.text = function () {
    return this.grid.map(function (r) { return r.join("").replace(/\s+$/, ""); }).join("\n").replace(/\n+$/, "");
  };

  var cast;
  try {
    cast = parse(source.textContent);
  } catch (e) {
    player.dataset.state = "error";
    var err = document.createElement("p");
    err.className = "refusal";
    err.setAttribute("role", "alert");
    err.textContent = "The cast cannot be read: " + e.message;
    player.appendChild(err);
    return;
  }
  var screen = document.getElementById("screen");
  var controls = document.getElementById("controls");
  var play = document.getElementById("play");
  var speed = document.getElementById("speed");
  var position = document.getElementById("position");
  var clock = document.getElementById("clock");
  var term = new Term(cast.width, cast.height);
  var end = cast.frames.length ? cast.frames[cast.frames.length - 1].t : 0;
  var next = 0; // the next frame to apply
  var at = 0; // the cast's time shown
  var timer = null;
  var startedAt = 0; // performance.now() at which the cast's time 0 would have been

  function apply(f) {
    if (f.k === "o") term.write(f.d);
    else if (f.k === "r") {
      var m = /^(\d+)x(\d+)$/.exec(f.d);
      if (m) term.resize(+m[1], +m[2]);
    }
  }
  function show() {
    screen.textContent = term.text();
    position.value = String(at);
    clock.textContent = at.toFixed(1) + " s of " + end.toFixed(1) + " s";
    player.dataset.position = String(at);
  }
  // seek shows the screen as it was at time t.
  function seek(t) {
    if (t < at) {
      term.resize(cast.width, cast.height);
      next = 0;
    }
    while (next < cast.frames.length && cast.frames[next].t <= t) apply(cast.frames[next++]);
    at = t;
    show();
  }
  function stop(state) {
    if (timer !== null) clearTimeout(timer);
    timer = null;
    play.textContent = "Play";
    player.dataset.state = state;
  }
  function tick() {
    timer = null;
    var rate = +speed.value || 1;
    var t = Math.min(end, (performance.now() - startedAt) * rate / 1000);
    seek(t);
    if (next >= cast.frames.length) {
      stop("ended");
      return;
    }
    var wait = (cast.frames[next].t - t) * 1000 / rate;
    timer = setTimeout(tick, Math.max(0, Math.min(wait, 250)));
  }
  function start() {
    if (next >= cast.frames.length) seek(0);
    var rate = +speed.value || 1;
    startedAt = performance.now() - at * 1000 / rate;
    play.textContent = "Pause";
    player.dataset.state = "playing";
    tick();
  }

  play.addEventListener("click", function () {
    if (timer !== null || player.dataset.state === "playing") stop("paused");
    else start();
  });
  speed.addEventListener("change", function () {
    if (player.dataset.state === "playing") {
      stop("paused");
      start();
    }
  });
  position.addEventListener("input", function () {
    var playing = player.dataset.state === "playing";
    if (playing) stop("paused");
    seek(Math.min(end, Math.max(0, parseFloat(position.value) || 0)));
    if (playing) start();
  });

  controls.hidden = false;
  term.resize(cast.width, cast.height);
  seek(0);
  player.dataset.state = "ready";
})();
