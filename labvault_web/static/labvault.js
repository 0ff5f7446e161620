// labvault Backups page: while a backup runs, its fields refresh in place (no manual reload).
// An element with data-refresh="URL" is replaced by the HTML that URL returns, every second,
// until the new element no longer asks for a refresh (the backup has ended).
(function () {
  "use strict";
  var INTERVAL_MS = 1000;

  function refresh(element) {
    var url = element.getAttribute("data-refresh");
    if (!url) { return; }
    window.setTimeout(function () {
      fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (response) {
          if (!response.ok) { throw new Error("HTTP " + response.status); }
          return response.text();
        })
        .then(function (html) {
          var holder = document.createElement("div");
          holder.innerHTML = html.trim();
          var fresh = holder.firstElementChild;
          if (!fresh) { return; }
          element.replaceWith(fresh);
          if (fresh.getAttribute("data-refresh")) {
            refresh(fresh);
          } else {
            document.dispatchEvent(new CustomEvent("labvault:ended", { detail: fresh.dataset.status }));
          }
        })
        .catch(function () { refresh(element); });
    }, INTERVAL_MS);
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-refresh]").forEach(refresh);
  });
})();
