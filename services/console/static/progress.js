// The bundle page follows a build by itself: one stream of server-sent
// events (/console/evidence/ID/progress, the API's progress of the build
// from its memory, recorded once as a read) updates the progress bar and
// the state; when the build ends, the page loads again to show the
// result (a status read, recorded as any). Without scripts the page's
// Refresh link does the same by hand.
(function () {
  "use strict";
  var dl = document.getElementById("bundle");
  if (!dl || !dl.dataset.progress || typeof EventSource === "undefined") {
    return;
  }
  var bar = document.getElementById("progress");
  var text = document.getElementById("progress-text");
  var state = document.getElementById("bundle-status");
  var es = new EventSource(dl.dataset.progress);
  es.addEventListener("progress", function (e) {
    var p = JSON.parse(e.data);
    dl.dataset.status = p.status;
    if (state) {
      state.textContent = p.status;
    }
    if (bar) {
      bar.max = p.total > 0 ? p.total : 1;
      bar.value = p.done;
      bar.textContent = p.done + " of " + p.total;
    }
    if (text) {
      text.textContent = p.done + " of " + p.total + " records";
    }
  });
  es.addEventListener("end", function () {
    es.close();
    window.location.reload();
  });
  es.addEventListener("error", function () {
    // A refusal or a closed server: no retry loop; Refresh remains.
    if (es.readyState === EventSource.CLOSED) {
      dl.dataset.following = "stopped";
    }
  });
  dl.dataset.following = "yes";
})();
