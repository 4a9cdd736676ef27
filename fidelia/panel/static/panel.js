// The panel's only script (the Content-Security-Policy allows no inline script).
// 1. htmx requests carry the CSRF token in a header, read from the page's meta tag.
// 2. Forms with data-confirm ask before a destructive action.
// 3. Read-only fields with data-select-on-focus select their text (links to copy).
// 4. Buttons with data-print print the page.
"use strict";
document.addEventListener("htmx:configRequest", function (event) {
  var meta = document.querySelector('meta[name="csrf-token"]');
  if (meta) event.detail.headers["X-CSRF-Token"] = meta.content;
});
document.addEventListener("submit", function (event) {
  var form = event.target;
  var question = form.getAttribute && form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) event.preventDefault();
}, true);
document.addEventListener("focusin", function (event) {
  if (event.target.hasAttribute && event.target.hasAttribute("data-select-on-focus")) {
    event.target.select();
  }
});
// 4. Buttons with data-print print the page (the sale PIN slip; see the print stylesheet).
document.addEventListener("click", function (event) {
  var button = event.target.closest && event.target.closest("[data-print]");
  if (button) window.print();
});
