// Pricing page: switch monthly/yearly without a reload. Without this script the switch is a
// plain GET form, so the page works the same, just with a reload.
(function () {
  "use strict";
  var root = document.querySelector("[data-pricing]");
  if (!root) return;
  var choices = root.querySelectorAll("[data-interval-choice]");
  var status = root.querySelector("[data-interval-status]");
  var NAMES = { month: "monthly", year: "yearly" };

  function show(interval) {
    root.querySelectorAll("[data-interval-only]").forEach(function (el) {
      el.hidden = el.getAttribute("data-interval-only") !== interval;
    });
    choices.forEach(function (button) {
      button.setAttribute("aria-pressed", String(button.value === interval));
    });
    root.querySelectorAll("[data-cta]").forEach(function (link) {
      link.setAttribute("data-interval", interval);
      // A link to a quote at the page's interval (an upgrade, a first plan) follows the
      // switch; a move down keeps the subscription's own interval, set by the server.
      var href = link.getAttribute("href");
      if (href && link.hasAttribute("data-follows-interval") && /[?&]interval=/.test(href)) {
        var target = new URL(href, window.location.href);
        target.searchParams.set("interval", interval);
        link.setAttribute("href", target.toString());
      }
    });
    // Keep the other forms (currency) on the chosen interval when they reload the page.
    root.querySelectorAll("form.currency-form").forEach(function (form) {
      var field = form.querySelector("[data-interval-field]");
      if (!field) {
        field = document.createElement("input");
        field.type = "hidden";
        field.name = "interval";
        field.setAttribute("data-interval-field", "");
        form.appendChild(field);
      }
      field.value = interval;
    });
    root.setAttribute("data-interval", interval);
    var url = new URL(window.location.href);
    url.searchParams.set("interval", interval);
    window.history.replaceState(window.history.state, "", url.toString());
    if (status) status.textContent = "Showing " + NAMES[interval] + " prices.";
  }

  choices.forEach(function (button) {
    button.addEventListener("click", function (event) {
      event.preventDefault();
      if (button.getAttribute("aria-pressed") !== "true") show(button.value);
    });
  });
})();
