// relay console: the live view polls a small JSON endpoint and fills its table with text
// nodes only (never HTML), so nothing an event carries can run here.
"use strict";
(function () {
  var table = document.getElementById("live");
  if (!table) { return; }
  var body = table.querySelector("tbody");
  var source = table.getAttribute("data-source");
  var eventsPath = table.getAttribute("data-events");
  var stamp = document.getElementById("live-at");
  var problem = document.getElementById("live-error");

  function cell(row, text) {
    var td = document.createElement("td");
    td.textContent = text;
    row.appendChild(td);
    return td;
  }

  function attemptsText(attempts) {
    return attempts.map(function (a) {
      return a.subscription + " #" + a.attempt + " " + a.outcome + (a.status ? " " + a.status : "");
    }).join("; ") || "none yet";
  }

  function show(data) {
    var rows = document.createDocumentFragment();
    data.events.forEach(function (e) {
      var row = document.createElement("tr");
      row.className = "live-event";
      cell(row, e.received);
      var idCell = cell(row, "");
      var link = document.createElement("a");
      link.href = eventsPath + encodeURIComponent(e.id);
      link.textContent = e.id;
      idCell.appendChild(link);
      cell(row, e.source);
      cell(row, e.type);
      cell(row, attemptsText(e.attempts));
      rows.appendChild(row);
    });
    body.replaceChildren(rows);
    stamp.textContent = "Updated " + data.at + ".";
    problem.textContent = "";
  }

  function poll() {
    fetch(source, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) {
        if (!r.ok) { throw new Error("the console answered " + r.status); }
        return r.json();
      })
      .then(show)
      .catch(function (err) { problem.textContent = String(err.message || err); })
      .finally(function () { window.setTimeout(poll, 2000); });
  }
  poll();
})();
