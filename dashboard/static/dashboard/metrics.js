/* Draws the metrics page's charts with Chart.js (a static file, vendor/chartjs) from the same
   numbers as its tables (the JSON in #metrics-data). No inline script: the content security
   policy forbids it. */
(function () {
  "use strict";
  function draw() {
    var source = document.getElementById("metrics-data");
    if (!source || !window.Chart) { return; }
    var data = JSON.parse(source.textContent);
    var months = data.months.map(function (m) { return m.month; });
    var palette = ["#1f5fa8", "#b3261e", "#1e7a3c", "#9a5b00", "#6b4fa0", "#2b8a99", "#7a6a00", "#5b6675", "#c2185b"];
    window.Chart.defaults.animation = false;
    window.Chart.defaults.maintainAspectRatio = false;

    new window.Chart(document.getElementById("chart-times"), {
      type: "line",
      data: {
        labels: months,
        datasets: [
          {label: "Time to triage (h)", data: data.months.map(function (m) { return m.time_to_triage_median_hours; }), borderColor: palette[0], backgroundColor: palette[0], spanGaps: true},
          {label: "Time to declare (h)", data: data.months.map(function (m) { return m.time_to_declare_median_hours; }), borderColor: palette[1], backgroundColor: palette[1], spanGaps: true},
          {label: "Time to notify (h)", data: data.months.map(function (m) { return m.time_to_notify_median_hours; }), borderColor: palette[2], backgroundColor: palette[2], spanGaps: true}
        ]
      },
      options: {scales: {y: {beginAtZero: true, title: {display: true, text: "hours"}}}}
    });

    new window.Chart(document.getElementById("chart-share"), {
      type: "bar",
      data: {
        labels: months,
        datasets: [{label: "Notified within the window (%)", backgroundColor: palette[2],
          data: data.months.map(function (m) { return m.notified_within_window_share === null ? null : Math.round(m.notified_within_window_share * 100); })}]
      },
      options: {scales: {y: {beginAtZero: true, max: 100, title: {display: true, text: "%"}}}}
    });

    function breakdown(id, counts, label) {
      var keys = Object.keys(counts);
      new window.Chart(document.getElementById(id), {
        type: "bar",
        data: {
          labels: keys.map(function (k) { return k ? (k.charAt(0).toUpperCase() + k.slice(1)).replace(/_/g, " ") : "not recorded"; }),
          datasets: [{label: label, data: keys.map(function (k) { return counts[k]; }), backgroundColor: palette[0]}]
        },
        options: {indexAxis: "y", plugins: {legend: {display: false}}, scales: {x: {beginAtZero: true, ticks: {precision: 0}}}}
      });
    }
    breakdown("chart-severity", data.by_severity, "Incidents");
    breakdown("chart-scenario", data.by_scenario, "Incidents");
    breakdown("chart-source", data.by_detection_source, "Incidents");
    document.documentElement.setAttribute("data-charts", "drawn");
  }
  document.addEventListener("DOMContentLoaded", draw);
})();
