// The preview page's countdown: counts down from the seconds the server computed (never from this
// device's clock, which may be wrong), and disables the download once the link has ended.
"use strict";
(function () {
  var element = document.getElementById("countdown");
  if (!element) return;
  var seconds = parseInt(element.getAttribute("data-seconds"), 10) || 0;
  var deadline = Date.now() + seconds * 1000;
  var units = [["day", 86400], ["hour", 3600], ["minute", 60], ["second", 1]];

  function describe(left) {
    var parts = [];
    for (var i = 0; i < units.length && parts.length < 2; i++) {
      var count = Math.floor(left / units[i][1]);
      left -= count * units[i][1];
      if (count || parts.length) parts.push(count + " " + units[i][0] + (count === 1 ? "" : "s"));
    }
    return parts.filter(function (part) { return part.indexOf("0 ") !== 0; }).join(" ");
  }

  function tick() {
    var left = Math.floor((deadline - Date.now()) / 1000);
    if (left <= 0) {
      element.textContent = "This link has expired";
      element.classList.add("ended");
      var download = document.getElementById("download");
      if (download) download.classList.add("disabled");
      return;
    }
    element.textContent = "Available for " + describe(left);
    setTimeout(tick, left > 3600 ? 30000 : 1000);
  }
  tick();
})();
