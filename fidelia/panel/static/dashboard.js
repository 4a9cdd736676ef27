// The dashboard's charts: each <canvas data-chart="{...}"> gets a Chart.js chart drawn from
// its data attribute (the page carries no inline script; see the Content-Security-Policy).
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  if (!window.Chart) return;
  var colors = ["#1971c2", "#e8590c", "#2f9e44"];
  document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
    var spec = JSON.parse(canvas.getAttribute("data-chart"));
    var chart = new window.Chart(canvas, {
      type: spec.kind,
      data: {
        labels: spec.labels,
        datasets: spec.datasets.map(function (set, i) {
          return {
            label: set.label,
            data: set.data,
            borderColor: colors[i % colors.length],
            backgroundColor: colors[i % colors.length],
            tension: 0.2,
            pointRadius: spec.labels.length > 31 ? 0 : 2
          };
        })
      },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        interaction: { mode: "index", intersect: false },
        scales: { y: { beginAtZero: true, ticks: { precision: 0 } } }
      }
    });
    canvas.setAttribute("data-drawn", String(chart.data.datasets.length));
  });
});
