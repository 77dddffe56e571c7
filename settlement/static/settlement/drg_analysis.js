// The DRG 运行分析 page: the quadrant of CMI against 费用消耗指数 and the monthly trend lines, from data
// built in Python (json_script); tooltips show the exact figures. Table headers sort their column.
(function () {
  "use strict";
  function read(id) {
    var node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  }
  function quadrant() {
    var holder = document.getElementById("drg-quadrant");
    var data = read("drg-quadrant-data");
    if (!holder || !data || typeof echarts === "undefined") { return; }
    var pool = data.points.filter(function (p) { return p.pool; })[0];
    var maxCases = Math.max.apply(null, data.points.map(function (p) { return p.cases; }).concat([1]));
    var chart = echarts.init(holder, null, { renderer: "svg" });
    chart.setOption({
      animation: false,
      title: { text: data.title, left: "center", textStyle: { fontSize: 14 } },
      grid: { left: 70, right: 130, top: 70, bottom: 50 },
      tooltip: { trigger: "item", formatter: function (p) { return data.points[p.dataIndex].tooltip; } },
      xAxis: { type: "value", name: data.x, scale: true, boundaryGap: ["12%", "12%"] },
      yAxis: { type: "value", name: data.y, scale: true, boundaryGap: ["12%", "12%"] },
      series: [{
        type: "scatter",
        data: data.points.map(function (p) {
          return {
            value: [Number(p.cmi), Number(p.cost_index), p.cases],
            name: p.name,
            symbolSize: 12 + 40 * Math.sqrt(p.cases / maxCases),
            itemStyle: { color: p.pool ? "#ba2121" : "#417690", opacity: 0.75 }
          };
        }),
        label: { show: true, position: "top", fontSize: 11, formatter: function (p) { return p.name; } },
        markLine: pool ? {
          silent: true, symbol: "none", lineStyle: { type: "dashed", color: "#999" },
          label: { formatter: "{b}" },
          data: [{ name: "池平均CMI", xAxis: Number(pool.cmi) }, { name: "池平均费用消耗指数", yAxis: Number(pool.cost_index) }]
        } : undefined
      }]
    });
    holder.setAttribute("data-rendered", "1");
    window.addEventListener("resize", function () { chart.resize(); });
  }
  function trend() {
    var holder = document.getElementById("drg-trend");
    var data = read("drg-trend-data");
    if (!holder || !data || typeof echarts === "undefined") { return; }
    var chart = echarts.init(holder, null, { renderer: "svg" });
    chart.setOption({
      animation: false,
      title: { text: data.title, left: "center", textStyle: { fontSize: 14 } },
      legend: { bottom: 0 },
      grid: { left: 70, right: 90, top: 60, bottom: 60 },
      tooltip: {
        trigger: "axis",
        formatter: function (items) {
          var lines = [items[0].axisValue];
          items.forEach(function (it) {
            var raw = data.series[it.seriesIndex].values[it.dataIndex];
            lines.push(it.marker + it.seriesName + " " + (raw === null ? "—" : raw));
          });
          return lines.join("<br>");
        }
      },
      xAxis: { type: "category", data: data.months },
      yAxis: [{ type: "value", name: "指数", scale: true }, { type: "value", name: "点值（元/点）", scale: true }],
      series: data.series.map(function (s) {
        return {
          name: s.name, type: "line", yAxisIndex: s.axis, connectNulls: false,
          data: s.values.map(function (v) { return v === null ? null : Number(v); })
        };
      })
    });
    holder.setAttribute("data-rendered", "1");
    window.addEventListener("resize", function () { chart.resize(); });
  }
  function sortable() {
    document.querySelectorAll(".drg-table th[data-sort]").forEach(function (th) {
      th.addEventListener("click", function () {
        var table = th.closest("table");
        var body = table.tBodies[0];
        var index = Array.prototype.indexOf.call(th.parentNode.children, th);
        var numeric = th.getAttribute("data-sort") === "number";
        var descending = th.getAttribute("data-dir") !== "desc";
        th.setAttribute("data-dir", descending ? "desc" : "asc");
        var rows = Array.prototype.slice.call(body.rows).filter(function (r) { return !r.classList.contains("pool"); });
        var pinned = Array.prototype.slice.call(body.rows).filter(function (r) { return r.classList.contains("pool"); });
        function key(row) {
          var text = row.cells[index].textContent.trim();
          if (!numeric) { return text; }
          var n = Number(text.replace(/,/g, "").replace("\u2212", "-"));
          return isNaN(n) ? -Infinity : n;
        }
        rows.sort(function (a, b) {
          var x = key(a), y = key(b);
          var order = x < y ? -1 : x > y ? 1 : 0;
          return descending ? -order : order;
        });
        rows.concat(pinned).forEach(function (r) { body.appendChild(r); });
      });
    });
  }
  function start() { quadrant(); trend(); sortable(); }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); } else { start(); }
})();
