// Keyboard use of the search page: "/" focuses the box, arrows move, Enter opens, Escape clears.
(function () {
  "use strict";

  function searchBox() { return document.getElementById("q"); }
  function resultRows() { return Array.from(document.querySelectorAll("#results tr[data-result]")); }
  function selected() { return document.querySelector("#results tr[data-result].selected"); }

  function select(row) {
    resultRows().forEach(function (r) { r.classList.remove("selected"); r.removeAttribute("aria-selected"); });
    if (row) {
      row.classList.add("selected");
      row.setAttribute("aria-selected", "true");
      row.scrollIntoView({ block: "nearest" });
    }
  }

  function move(step) {
    var rows = resultRows();
    if (!rows.length) { return; }
    var index = rows.indexOf(selected());
    var next = index < 0 ? (step > 0 ? 0 : rows.length - 1) : Math.min(Math.max(index + step, 0), rows.length - 1);
    select(rows[next]);
  }

  function open(row) {
    var link = row && row.querySelector("a.record-link");
    if (link) { window.location.assign(link.href); return true; }
    return false;
  }

  function typing(target) {
    return target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
  }

  document.addEventListener("keydown", function (event) {
    var box = searchBox();
    if (!box || event.ctrlKey || event.metaKey || event.altKey) { return; }
    if (event.key === "/" && !typing(event.target)) {
      event.preventDefault();
      box.focus();
      box.select();
    } else if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      if (typing(event.target) && event.target !== box) { return; }
      event.preventDefault();
      move(event.key === "ArrowDown" ? 1 : -1);
    } else if (event.key === "Enter" && (event.target === box || !typing(event.target))) {
      // Enter opens the selected row, or the single exact match; otherwise the form submits.
      var row = selected() || document.querySelector("#results .best-match");
      if (row && open(row)) { event.preventDefault(); }
    } else if (event.key === "Escape" && event.target === box) {
      event.preventDefault();
      box.value = "";
      select(null);
      box.dispatchEvent(new Event("input", { bubbles: true }));
    }
  });

  // New results: nothing is selected until the agent moves.
  document.addEventListener("htmx:afterSwap", function (event) {
    if (event.detail.target && event.detail.target.id === "results") { select(null); }
  });
})();

// Drafts: what an agent typed into an edit form survives an expired session or form.
// Saved when a form is sent; dropped once the server has answered with the form itself
// (saved, refused, or a conflict: its answer shows the values); restored when the page loads
// again after a redirect to log in.
(function () {
  "use strict";
  var PREFIX = "draft:";
  var MAX_AGE_MS = 12 * 3600 * 1000;

  function fields(form) {
    return Array.from(form.querySelectorAll("input[type=text], select, textarea"));
  }

  function save(form) {
    var values = {};
    fields(form).forEach(function (field) { values[field.name] = field.value; });
    sessionStorage.setItem(PREFIX + form.dataset.draft, JSON.stringify({ at: Date.now(), values: values }));
  }

  function restore(form) {
    var raw = sessionStorage.getItem(PREFIX + form.dataset.draft);
    if (!raw) { return; }
    sessionStorage.removeItem(PREFIX + form.dataset.draft);
    var draft;
    try { draft = JSON.parse(raw); } catch (error) { return; }
    if (!draft || Date.now() - draft.at > MAX_AGE_MS) { return; }
    fields(form).forEach(function (field) {
      if (Object.prototype.hasOwnProperty.call(draft.values, field.name)) { field.value = draft.values[field.name]; }
    });
    var note = document.createElement("p");
    note.className = "flash flash-warning draft-restored";
    note.setAttribute("role", "status");
    note.textContent = form.dataset.draftNote;
    form.prepend(note);
  }

  document.addEventListener("htmx:beforeRequest", function (event) {
    var form = event.detail.elt;
    if (form && form.matches && form.matches("form[data-draft]")) { save(form); }
  });

  document.addEventListener("htmx:afterRequest", function (event) {
    var form = event.detail.elt;
    var xhr = event.detail.xhr;
    if (!form || !form.matches || !form.matches("form[data-draft]") || !xhr) { return; }
    if (!xhr.getResponseHeader("HX-Redirect") && [200, 403, 409, 422].indexOf(xhr.status) >= 0) {
      sessionStorage.removeItem(PREFIX + form.dataset.draft);
    }
  });

  function restoreAll() { document.querySelectorAll("form[data-draft]").forEach(restore); }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", restoreAll); } else { restoreAll(); }
})();

// Answers htmx does not swap (server errors, a lost connection) still say something.
(function () {
  "use strict";
  function show(text) {
    var box = document.getElementById("request-problem");
    if (!box) { return; }
    box.textContent = text;
    box.hidden = false;
  }
  document.addEventListener("htmx:responseError", function (event) {
    var box = document.getElementById("request-problem");
    if (box) { show(box.dataset.messageServer.replace("STATUS", String(event.detail.xhr.status))); }
  });
  document.addEventListener("htmx:sendError", function () {
    var box = document.getElementById("request-problem");
    if (box) { show(box.dataset.messageNetwork); }
  });
  document.addEventListener("htmx:beforeRequest", function () {
    var box = document.getElementById("request-problem");
    if (box) { box.hidden = true; }
  });
})();
