"use strict";
// Re-renders the tables from status.json every few seconds and ticks the token countdowns
// every second. Only textContent is written: IMS's error text is shown, never interpreted.
(function () {
  var REFRESH_MS = 5000;

  function cell(text, cls) {
    var td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    return td;
  }

  function duration(seconds) {
    var s = Math.max(0, Math.floor(seconds));
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    return (h ? h + "h " : "") + (h || m ? m + "m " : "") + r + "s";
  }

  function rate(v) {
    return v === null || v === undefined ? "\u2013" : v.toFixed(2);
  }

  function stateCell(state) {
    var td = document.createElement("td");
    var span = document.createElement("span");
    span.className = "state state-" + state;
    span.textContent = state;
    td.appendChild(span);
    return td;
  }

  function expiryCell(c) {
    var td = cell("\u2013", "num countdown");
    if (c.state === "ok" || c.state === "rejected") {
      if (c.expires_in_seconds === null || c.expires_in_seconds === undefined) {
        td.textContent = "never";
      } else {
        td.setAttribute("data-expires-in", String(c.expires_in_seconds));
        td.textContent = duration(c.expires_in_seconds);
      }
    }
    return td;
  }

  // One line per status: "403 403025 \u00d72, last 2026-12-06T16:00:00Z".
  function refusalsCell(rows) {
    if (!rows || rows.length === 0) return cell("\u2013");
    var td = cell("", "error refusals");
    rows.forEach(function (r, i) {
      if (i > 0) td.appendChild(document.createElement("br"));
      var text = String(r.status) + (r.error_code ? " " + r.error_code : "") +
        " \u00d7" + r.count + ", last " + r.at;
      td.appendChild(document.createTextNode(text));
    });
    return td;
  }

  function replaceRows(id, rows) {
    var body = document.getElementById(id);
    while (body.firstChild) body.removeChild(body.firstChild);
    rows.forEach(function (tr) { body.appendChild(tr); });
  }

  function render(s) {
    replaceRows("routes", s.routes.map(function (r) {
      var tr = document.createElement("tr");
      tr.appendChild(cell(r.prefix, "mono"));
      tr.appendChild(cell(r.upstream, "mono"));
      tr.appendChild(cell(r.api || "\u2013"));
      tr.appendChild(cell(r.credential));
      tr.appendChild(cell(String(r.requests), "num"));
      tr.appendChild(cell(String(r.errors), "num"));
      tr.appendChild(cell(rate(r.requests_per_second), "num"));
      tr.appendChild(cell(rate(r.errors_per_second), "num"));
      tr.appendChild(refusalsCell(r.upstream_refusals));
      return tr;
    }));
    replaceRows("credentials", s.credentials.map(function (c) {
      var tr = document.createElement("tr");
      tr.appendChild(cell(c.name));
      tr.appendChild(cell(c.type));
      tr.appendChild(stateCell(c.state));
      tr.appendChild(expiryCell(c));
      tr.appendChild(cell(c.last_error || "\u2013", c.last_error ? "error" : ""));
      return tr;
    }));
    replaceRows("quotas", (s.quotas || []).map(function (q) {
      var tr = document.createElement("tr");
      tr.appendChild(cell(q.credential));
      tr.appendChild(cell(String(q.per_second), "num"));
      tr.appendChild(cell(String(q.burst), "num"));
      return tr;
    }));
    replaceRows("cool_downs", (s.cool_downs || []).map(function (c) {
      var tr = document.createElement("tr");
      tr.appendChild(cell(c.credential));
      tr.appendChild(cell(c.host, "mono"));
      var td = cell(duration(c.remaining_seconds), "num countdown");
      td.setAttribute("data-expires-in", String(c.remaining_seconds));
      tr.appendChild(td);
      return tr;
    }));
    var ready = document.getElementById("ready");
    ready.textContent = s.ready ? "ready" : "not ready";
    ready.className = "state state-" + (s.ready ? "ok" : "not_ready");
    document.getElementById("window").textContent =
      s.rate_window_seconds === null ? "collecting" : "the last " + Math.round(s.rate_window_seconds) + " s";
    arm();
  }

  // Countdowns run from when their value arrived.
  function arm() {
    var now = Date.now();
    document.querySelectorAll("[data-expires-in]").forEach(function (td) {
      td.setAttribute("data-deadline", String(now + Number(td.getAttribute("data-expires-in")) * 1000));
    });
  }

  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-deadline]").forEach(function (td) {
      td.textContent = duration((Number(td.getAttribute("data-deadline")) - now) / 1000);
    });
  }

  function refresh() {
    var refreshed = document.getElementById("refreshed");
    fetch("status.json", { cache: "no-store", headers: { Accept: "application/json" } })
      .then(function (resp) {
        if (!resp.ok) throw new Error("HTTP " + resp.status);
        return resp.json();
      })
      .then(function (s) {
        render(s);
        refreshed.textContent = "refreshed " + new Date().toLocaleTimeString();
        refreshed.className = "note";
      })
      .catch(function (e) {
        refreshed.textContent = "refresh failed (" + e.message + "), retrying";
        refreshed.className = "stale";
      })
      .then(function () { setTimeout(refresh, REFRESH_MS); });
  }

  arm();
  setInterval(tick, 1000);
  refresh();
})();
