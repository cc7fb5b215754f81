/* Breachdesk's shared behaviour, loaded on every page (no inline scripts: the content security
   policy allows scripts from our static files only).
   - Countdowns: every element with data-due (an ISO 8601 instant) shows the time left, updated
     every second (data-precision="seconds" shows the seconds too); the server rendered the
     first value, so the page reads well without this.
   - Confirmation: a form with data-confirm asks before it is submitted (irreversible steps). */
(function () {
  "use strict";

  function two(n) { return (n < 10 ? "0" : "") + n; }

  /* "71 h 05 min left" or "overdue by 2 h 00 min"; with seconds, "71 h 05 min 09 s left".
     Hours are not folded into days, so the number compares with the 72-hour commitment. */
  function countdownText(ms, seconds) {
    var total = Math.floor(Math.abs(ms) / 1000);
    var hours = Math.floor(total / 3600);
    var span = hours + " h " + two(Math.floor(total / 60) % 60) + " min";
    if (seconds) { span += " " + two(total % 60) + " s"; }
    return ms >= 0 ? span + " left" : "overdue by " + span;
  }

  function urgency(ms) {
    if (ms < 0) { return "overdue"; }
    if (ms < 6 * 3600000) { return "critical"; }
    if (ms < 24 * 3600000) { return "soon"; }
    return "running";
  }

  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-due]").forEach(function (element) {
      var ms = Date.parse(element.getAttribute("data-due")) - now;
      if (isNaN(ms)) { return; }
      element.textContent = countdownText(ms, element.getAttribute("data-precision") === "seconds");
      element.classList.toggle("overdue", ms < 0);
      var row = element.closest("[data-urgency]");
      if (row) { row.setAttribute("data-urgency", urgency(ms)); }
      var badge = ms < 0 && element.closest("tr") && element.closest("tr").querySelector(".clock-status.status-open");
      if (badge) { badge.className = "badge clock-status status-overdue"; badge.textContent = "Overdue"; }
    });
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) { event.preventDefault(); }
  }, true);

  document.addEventListener("DOMContentLoaded", tick);
  document.addEventListener("htmx:afterSwap", tick);
  window.setInterval(tick, 1000);
})();
