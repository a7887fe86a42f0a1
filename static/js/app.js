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
      var row = selected() || document.querySelector("#results tr.exact-single");
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
