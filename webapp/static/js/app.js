// The pages' small amount of glue, kept out of the HTML so the CSP can forbid inline scripts.
(function () {
  "use strict";

  // The browser's IANA time zone goes into every form that has a `timezone` field, so the
  // server reads `datetime-local` values in the zone the person typed them in.
  function browserZone() {
    try {
      return Intl.DateTimeFormat().resolvedOptions().timeZone || "";
    } catch (e) {
      return "";
    }
  }

  function fillZones(root) {
    var zone = browserZone();
    if (!zone || !root.querySelectorAll) return;
    root.querySelectorAll('input[name="timezone"]').forEach(function (input) {
      if (!input.value) input.value = zone;
    });
    // The zone picker of a fresh form starts on the browser's zone (one typed in is kept). The
    // change event lets the live preview read the times in it.
    root.querySelectorAll("select[data-browser-default]").forEach(function (select) {
      select.removeAttribute("data-browser-default");
      if (select.value === zone || !select.querySelector('option[value="' + zone.replace(/"/g, "") + '"]')) return;
      select.value = zone;
      select.dispatchEvent(new Event("change", { bubbles: true }));
    });
  }

  document.addEventListener("DOMContentLoaded", function () { fillZones(document); });
  document.addEventListener("htmx:load", function (evt) { fillZones(evt.detail.elt.parentNode || document); });

  // Cheap polling. A polling element keeps the ETag of what it shows in `data-etag` and sends it
  // itself: the server answers 304 with no body when nothing changed and htmx (configured in
  // base.html) leaves the element alone. Sending the header ourselves matters: with only the
  // browser's cache, a 304 reaches htmx as a 200 carrying the old body and gets swapped anyway.
  document.addEventListener("htmx:configRequest", function (evt) {
    var etag = evt.detail.elt.getAttribute("data-etag");
    if (etag && evt.detail.verb === "get") evt.detail.headers["If-None-Match"] = etag;
  });
  // A 304 may carry a fresh ETag too (the server looked at the table and found it unchanged): keep it,
  // so the next polls are answered from the account's change mark alone (webapp/polling.py).
  document.addEventListener("htmx:afterRequest", function (evt) {
    var elt = evt.detail.elt, xhr = evt.detail.xhr;
    if (!elt.hasAttribute("data-etag") || !xhr || (xhr.status !== 200 && xhr.status !== 304)) return;
    var etag = xhr.getResponseHeader("ETag");
    if (etag) elt.setAttribute("data-etag", etag);
  });

  // Poll only while the tab is visible, and catch up at once when it becomes visible again.
  // (The same test as `every 2s [document.visibilityState === 'visible']`, without the eval
  // that an htmx trigger filter needs and our CSP forbids.)
  document.addEventListener("htmx:beforeRequest", function (evt) {
    if (document.visibilityState !== "visible" && evt.detail.elt.hasAttribute("data-poll")) {
      evt.preventDefault();
    }
  });
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible" && window.htmx) window.htmx.trigger(document.body, "refresh");
  });

  // Bulk actions (admin jobs table): the ticks live on rows that the 2 s poll replaces, so keep them
  // across each swap; a header checkbox ticks every row of the page.
  function ticked(formId) {
    return Array.prototype.slice.call(document.querySelectorAll('input[name="ids"][form="' + formId + '"]'));
  }
  var kept = null;
  document.addEventListener("htmx:beforeSwap", function (evt) {
    if (evt.detail.target && evt.detail.target.id === "job-rows") {
      kept = ticked("bulk-form").filter(function (box) { return box.checked; }).map(function (box) { return box.value; });
    }
  });
  document.addEventListener("htmx:afterSwap", function (evt) {
    if (!kept || !evt.detail.target || evt.detail.target.id !== "job-rows") return;
    ticked("bulk-form").forEach(function (box) { if (kept.indexOf(box.value) !== -1) box.checked = true; });
    kept = null;
  });
  document.addEventListener("change", function (evt) {
    var formId = evt.target.getAttribute && evt.target.getAttribute("data-select-all");
    if (!formId) return;
    ticked(formId).forEach(function (box) { box.checked = evt.target.checked; });
  });

  // Say so when a background request fails, instead of failing silently.
  function notify(text, kind) {
    var box = document.getElementById("notice");
    if (!box) return;
    box.textContent = text;
    box.setAttribute("data-kind", kind);
    box.hidden = false;
  }
  document.addEventListener("htmx:responseError", function (evt) {
    var status = evt.detail.xhr.status;
    if (status === 400) notify("That was refused: the page is out of date. Reload the page and try again.", "error");
    else if (status === 403) notify("You are not allowed to do that any more. Reload the page.", "error");
    else if (status === 404) notify("That job or user no longer exists. Reload the page.", "error");
    else if (status === 429) notify("Too many requests. Wait a minute and try again.", "error");
    else notify("Something went wrong on our side (" + status + "). Try again in a moment.", "error");
  });
  document.addEventListener("htmx:sendError", function () {
    notify("The server cannot be reached. The page will update again once it is back.", "offline");
  });
  document.addEventListener("htmx:afterRequest", function (evt) {
    var box = document.getElementById("notice");
    if (box && !box.hidden && box.getAttribute("data-kind") === "offline" && evt.detail.successful) box.hidden = true;
  });
})();
