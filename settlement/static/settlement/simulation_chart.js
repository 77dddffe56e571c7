// The bar chart of a simulation's differences (年终清算金额, 模拟 − 基准) per unit. Its data are built
// in Python and handed over with json_script; the tooltip shows the exact figures as formatted there.
(function () {
  "use strict";
  function draw() {
    var holder = document.getElementById("simulation-chart");
    var source = document.getElementById("simulation-chart-data");
    if (!holder || !source || typeof echarts === "undefined") { return; }
    var data = JSON.parse(source.textContent);
    var chart = echarts.init(holder, null, { renderer: "svg" });
    chart.setOption({
      animation: false,
      title: { text: data.title, left: "center", textStyle: { fontSize: 14 } },
      grid: { left: 90, right: 30, top: 50, bottom: 110 },
      tooltip: {
        trigger: "item",
        formatter: function (params) { return data.tooltips[params.dataIndex]; }
      },
      xAxis: { type: "category", data: data.units, axisLabel: { rotate: 40, interval: 0, fontSize: 11 } },
      yAxis: {
        type: "value", name: "元",
        axisLabel: { formatter: function (value) { return String(value).replace("-", "\u2212"); } }
      },
      series: [{
        name: data.series,
        type: "bar",
        data: data.values.map(function (value) {
          var number = Number(value);
          return { value: number, itemStyle: { color: number < 0 ? "#ba2121" : "#2a7a2a" } };
        })
      }]
    });
    holder.setAttribute("data-rendered", "1");
    window.addEventListener("resize", function () { chart.resize(); });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
