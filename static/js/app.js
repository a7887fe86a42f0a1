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

  function answers(row, box) {
    var results = row.closest("[data-for]");
    return results !== null && results.dataset.for === box.value;
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
      // Only results for what the box holds now: typed or pasted faster than the search answers,
      // the rows on screen belong to the previous query, and the form asks for the new one.
      var row = selected() || document.querySelector("#results .best-match");
      if (row && answers(row, box) && open(row)) { event.preventDefault(); }
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

// Drafts: what an agent typed into edit forms survives an expired session and in-place saves.
// When any edit form is sent, every form with unsaved typing is kept in sessionStorage. After the
// answer is swapped in (it re-renders the whole references region), the other forms get their
// typing back; the sent form shows what the server answered. A redirect to log in leaves them all
// stored, and the page restores them when it loads again.
(function () {
  "use strict";
  var PREFIX = "draft:";
  var MAX_AGE_MS = 12 * 3600 * 1000;

  function fields(form) {
    return Array.from(form.querySelectorAll("input[type=text], select, textarea"));
  }

  function dirty(form) {
    return fields(form).some(function (field) {
      return field.tagName === "SELECT" ? field.selectedOptions[0] && !field.selectedOptions[0].defaultSelected
                                        : field.value !== field.defaultValue;
    });
  }

  function save(form) {
    var values = {};
    fields(form).forEach(function (field) { values[field.name] = field.value; });
    sessionStorage.setItem(PREFIX + form.dataset.draft, JSON.stringify({ at: Date.now(), values: values }));
  }

  function restore(form, note) {
    var raw = sessionStorage.getItem(PREFIX + form.dataset.draft);
    if (!raw) { return; }
    sessionStorage.removeItem(PREFIX + form.dataset.draft);
    var draft;
    try { draft = JSON.parse(raw); } catch (error) { return; }
    if (!draft || Date.now() - draft.at > MAX_AGE_MS) { return; }
    fields(form).forEach(function (field) {
      if (Object.prototype.hasOwnProperty.call(draft.values, field.name)) { field.value = draft.values[field.name]; }
    });
    if (note) {
      var message = document.createElement("p");
      message.className = "flash flash-warning draft-restored";
      message.setAttribute("role", "status");
      message.textContent = form.dataset.draftNote;
      form.prepend(message);
    }
  }

  function draftForms() { return Array.from(document.querySelectorAll("form[data-draft]")); }

  document.addEventListener("htmx:beforeRequest", function (event) {
    var sent = event.detail.elt && event.detail.elt.closest && event.detail.elt.closest("form[data-draft]");
    if (!sent) { return; }
    draftForms().forEach(function (form) { if (form === sent || dirty(form)) { save(form); } });
    document.body.dataset.draftSent = sent.dataset.draft;
  });

  document.addEventListener("htmx:afterSettle", function () {
    var sent = document.body.dataset.draftSent;
    if (!sent) { return; }
    delete document.body.dataset.draftSent;
    sessionStorage.removeItem(PREFIX + sent);  // the answer shows that form as the server saw it
    draftForms().forEach(function (form) { if (form.dataset.draft !== sent) { restore(form, false); } });
  });

  function restoreAll() { draftForms().forEach(function (form) { restore(form, true); }); }
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
