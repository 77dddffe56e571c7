// The KPI dashboard's charts: each alliance's monthly A against B/12 (bars, red when over; a click
// opens the month's claims) and each KPI's monthly trend line against its target (red points where
// the target is missed). All data come from Python (json_script) as exact decimal strings; tooltips
// show them unchanged. A chart is drawn when it scrolls into view: a city has many blocks.
(function () {
  "use strict";
  var RED = "#ba2121", BLUE = "#417690";
  function read(id) {
    var node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  }
  function budget(holder, data) {
    var chart = echarts.init(holder, null, { renderer: "svg" });
    chart.setOption({
      animation: false,
      title: { text: data.title, left: "center", textStyle: { fontSize: 13 } },
      grid: { left: 90, right: 150, top: 40, bottom: 30 },
      tooltip: {
        trigger: "axis",
        formatter: function (items) {
          var i = items[0].dataIndex;
          return data.months[i] + "<br>实际A " + data.actual[i] + " 元<br>月度预算 " + data.per_month + " 元" +
            (data.over[i] ? "<br><b style=\"color:" + RED + "\">超出月度预算</b>" : "");
        }
      },
      xAxis: { type: "category", data: data.months },
      yAxis: { type: "value", name: "元" },
      series: [{
        type: "bar", name: "实际A",
        data: data.actual.map(function (v, i) {
          return { value: Number(v), itemStyle: { color: data.over[i] ? RED : "#79aec8" } };
        }),
        markLine: {
          silent: true, symbol: "none", lineStyle: { type: "dashed", color: "#333" },
          label: { position: "end", formatter: "月度预算 " + data.per_month },
          data: [{ yAxis: Number(data.per_month) }]
        }
      }]
    });
    chart.on("click", function (p) { if (data.urls[p.dataIndex]) { window.location.href = data.urls[p.dataIndex]; } });
    return chart;
  }
  function trend(holder, data) {
    var chart = echarts.init(holder, null, { renderer: "svg" });
    var target = Number(data.target);
    var band = data.tolerance === null ? null : Number(data.tolerance);
    chart.setOption({
      animation: false,
      title: { text: data.title, left: "center", textStyle: { fontSize: 12 } },
      grid: { left: 50, right: 20, top: 36, bottom: 40 },
      legend: { bottom: 0, data: [data.name, "目标 " + data.target_text] },
      tooltip: {
        trigger: "axis",
        formatter: function (items) {
          var i = items[0].dataIndex, v = data.values[i];
          return data.months[i] + "<br>" + data.name + " " + (v === null ? "无数据" : v) +
            "<br>目标 " + data.target_text + (data.attainment[i] === null ? "" : "<br>达成度 " + data.attainment[i] + "%") +
            (data.missed[i] ? "<br><b style=\"color:" + RED + "\">未达标</b>" : "");
        }
      },
      xAxis: { type: "category", data: data.months },
      yAxis: { type: "value", scale: true },
      series: [
        {
          name: data.name, type: "line", connectNulls: false, symbolSize: 7, itemStyle: { color: BLUE },
          data: data.values.map(function (v, i) {
            return v === null ? null : { value: Number(v), itemStyle: { color: data.missed[i] ? RED : BLUE },
                                           symbolSize: data.missed[i] ? 10 : 7 };
          })
        },
        {
          name: "目标 " + data.target_text, type: "line", symbol: "none",
          lineStyle: { type: "dashed", color: "#e0a030" }, itemStyle: { color: "#e0a030" },
          data: data.months.map(function () { return target; }),
          markArea: band === null ? undefined : {
            silent: true, itemStyle: { color: "rgba(224,160,48,0.12)" },
            data: [[{ yAxis: target - band }, { yAxis: target + band }]]
          }
        }
      ]
    });
    return chart;
  }
  var charts = [];
  function draw(holder) {
    if (holder.getAttribute("data-rendered") || typeof echarts === "undefined") { return; }
    var data = read(holder.getAttribute("data-source"));
    if (!data) { return; }
    charts.push(holder.classList.contains("budget-chart") ? budget(holder, data) : trend(holder, data));
    holder.setAttribute("data-rendered", "1");
  }
  function start() {
    var holders = document.querySelectorAll(".budget-chart, .kpi-trend-chart");
    if (!("IntersectionObserver" in window)) { holders.forEach(draw); return; }
    var observer = new IntersectionObserver(function (entries) {
      entries.forEach(function (e) { if (e.isIntersecting) { draw(e.target); observer.unobserve(e.target); } });
    }, { rootMargin: "300px" });
    holders.forEach(function (h) { observer.observe(h); });
    window.addEventListener("resize", function () { charts.forEach(function (c) { c.resize(); }); });
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); } else { start(); }
})();
