// Kapok dashboard: the little the pages do in the browser. Everything works
// without it; with it, the alarm count stays live, risky forms ask first,
// and device pages draw their readings with uPlot.
"use strict";

(function () {
  const LIVE_SECONDS = 10;

  // ---- the live count of open alarms in the navigation
  function startLive() {
    const url = document.body.dataset.liveUrl;
    if (!url) return;
    const baseTitle = document.title;
    async function poll() {
      try {
        const r = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
        const type = r.headers.get("content-type") || "";
        if (!r.ok || !type.includes("json")) return;
        const counts = await r.json();
        for (const el of document.querySelectorAll("[data-live]")) {
          const n = counts[el.dataset.live];
          if (n === undefined) continue;
          const before = Number(el.textContent);
          el.textContent = String(n);
          el.classList.toggle("hot", n > 0);
          if (n > before) {
            el.classList.remove("pulse");
            void el.offsetWidth; // restart the animation
            el.classList.add("pulse");
          }
        }
        document.title = counts.open > 0 ? "(" + counts.open + ") " + baseTitle : baseTitle;
      } catch (e) {
        // offline for a moment: try again at the next tick
      }
    }
    setInterval(poll, LIVE_SECONDS * 1000);
  }

  // ---- forms that ask before they act (revoke, rotate, remove, rollouts)
  function startConfirms() {
    document.addEventListener("submit", function (event) {
      const form = event.target;
      const question = form.dataset && form.dataset.confirm;
      if (question && !window.confirm(question)) event.preventDefault();
    });
  }

  // ---- the reading chart (uPlot, served by Kapok from node_modules)
  function startChart() {
    const box = document.getElementById("chart");
    if (!box) return;
    const source = document.getElementById(box.dataset.series);
    if (!source || typeof window.uPlot !== "function") {
      box.classList.add("muted");
      return;
    }
    const data = JSON.parse(source.textContent);
    const decimals = data.decimals;
    const label = data.unit ? data.name + " (" + data.unit + ")" : data.name;
    const size = () => ({ width: Math.max(box.clientWidth - 16, 200), height: window.innerWidth < 640 ? 240 : 320 });
    const opts = Object.assign(size(), {
      tzDate: (ts) => window.uPlot.tzDate(new Date(ts * 1e3), data.tz),
      scales: { x: { time: true } },
      legend: { live: true },
      series: [
        {},
        {
          label: label,
          stroke: "#c0392b",
          width: 2,
          fill: "rgba(192, 57, 43, 0.08)",
          points: { show: data.t.length < 200 },
          value: (u, v) => (v == null ? "—" : v.toFixed(decimals)),
        },
      ],
      axes: [{}, { size: 70, values: (u, ticks) => ticks.map((v) => v.toFixed(Math.min(decimals, 3))) }],
    });
    const plot = new window.uPlot(opts, [data.t, data.v], box);
    let pending = null;
    window.addEventListener("resize", function () {
      clearTimeout(pending);
      pending = setTimeout(() => plot.setSize(size()), 150);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    startLive();
    startConfirms();
    startChart();
  });
})();
