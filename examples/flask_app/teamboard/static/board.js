// Polls unfinished exports until their background job is done, then shows the link.
// Without JavaScript the board still works: reload the page to see the status.
(function () {
  "use strict";
  var DONE = { finished: true, failed: true };

  function poll(item) {
    fetch(item.dataset.statusUrl, {
      headers: { Accept: "application/json" },
      credentials: "same-origin",
      cache: "no-store",
    })
      .then(function (response) {
        if (!response.ok) throw new Error("status " + response.status);
        return response.json();
      })
      .then(function (exp) {
        item.dataset.status = exp.status;
        item.querySelector(".export-status").textContent = exp.status;
        if (exp.download_url) {
          var link = item.querySelector(".export-download");
          link.href = exp.download_url;
          link.hidden = false;
        }
        if (!DONE[exp.status]) window.setTimeout(function () { poll(item); }, 500);
      })
      .catch(function () {
        window.setTimeout(function () { poll(item); }, 2000);
      });
  }

  document.querySelectorAll(".export").forEach(function (item) {
    if (!DONE[item.dataset.status]) poll(item);
  });
})();
