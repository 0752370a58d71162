// Tocsin console: live updates and small conveniences. Every page works without this
// script; it only saves reloads.
//
// Live updates: the body's data-live attribute lists what the page shows ("cases",
// "case:12", "run:4", "approvals", "audit", "*"). The server streams changes from
// /live (Server-Sent Events); when one concerns the page, the page fetches itself and
// swaps each element marked data-live-region (matched by id) for its new version.
"use strict";

(function () {
  const status = document.getElementById("live-status");
  const loadedAt = Date.now();
  const topics = (document.body.dataset.live || "").split(/\s+/).filter(Boolean);

  function concerns(change) {
    return topics.some(function (topic) {
      if (topic === "*") return true;
      if (change.action === "bulk") return true;
      if (topic === "cases") return change.case !== null || change.action.startsWith("case.");
      if (topic === "approvals") return change.action.startsWith("approval.");
      if (topic === "audit") return change.action !== "case.seen";
      if (topic.startsWith("case:")) return change.case === Number(topic.slice(5)) || change.target === topic;
      return change.target === topic;
    });
  }

  // Form state the user is in the middle of survives a swap: ticked boxes, typed text.
  function keepState(region) {
    const kept = { checked: new Set(), values: new Map() };
    region.querySelectorAll("input[type=checkbox]:checked").forEach(function (box) {
      kept.checked.add(box.name + "=" + box.value);
    });
    region.querySelectorAll("textarea[id], input[type=text][id], input[type=search][id], select[id]").forEach(function (el) {
      kept.values.set(el.id, el.value);
    });
    return kept;
  }

  function restoreState(region, kept) {
    region.querySelectorAll("input[type=checkbox]").forEach(function (box) {
      if (kept.checked.has(box.name + "=" + box.value)) box.checked = true;
    });
    kept.values.forEach(function (value, id) {
      const el = region.querySelector("#" + CSS.escape(id));
      if (el) el.value = value;
    });
  }

  let refreshing = false;
  let again = false;
  async function refresh() {
    if (refreshing) { again = true; return; }
    refreshing = true;
    try {
      const res = await fetch(location.href, { credentials: "same-origin", headers: { "X-Tocsin-Live": "1" } });
      if (!res.ok || res.redirected) return;
      const next = new DOMParser().parseFromString(await res.text(), "text/html");
      const focusedId = document.activeElement && document.activeElement.id;
      let swapped = 0;
      document.querySelectorAll("[data-live-region][id]").forEach(function (region) {
        const fresh = next.getElementById(region.id);
        if (!fresh) return;
        const kept = keepState(region);
        region.replaceWith(fresh);
        restoreState(fresh, kept);
        swapped += 1;
      });
      if (focusedId) {
        const el = document.getElementById(focusedId);
        if (el && el !== document.activeElement) el.focus({ preventScroll: true });
      }
      if (swapped && status) status.textContent = "Updated " + new Date().toLocaleTimeString();
      document.dispatchEvent(new CustomEvent("tocsin:refreshed"));
      countdowns();
    } catch (_) {
      // The next change tries again.
    } finally {
      refreshing = false;
      if (again) { again = false; setTimeout(refresh, 200); }
    }
  }

  let pending = null;
  function soon() {
    if (pending) return;
    pending = setTimeout(function () { pending = null; refresh(); }, 250);
  }

  if (topics.length && window.EventSource) {
    const source = new EventSource("/live");
    source.addEventListener("hello", function () {
      // Changes between rendering this page and following the feed would be missed.
      if (Date.now() - loadedAt > 1500) soon();
    });
    source.addEventListener("changes", function (event) {
      let changes = [];
      try { changes = JSON.parse(event.data); } catch (_) { return; }
      if (changes.some(concerns)) soon();
    });
    document.body.dataset.liveConnected = "1";
  }

  // SLA countdowns and ages: <time data-countdown datetime="..."> / data-ago.
  function span(seconds) {
    const s = Math.abs(Math.round(seconds));
    if (s < 60) return s + "s";
    if (s < 3600) return Math.floor(s / 60) + "m";
    if (s < 86400) {
      const m = Math.floor((s % 3600) / 60);
      return Math.floor(s / 3600) + "h" + (m ? " " + m + "m" : "");
    }
    const h = Math.floor((s % 86400) / 3600);
    return Math.floor(s / 86400) + "d" + (h ? " " + h + "h" : "");
  }

  function countdowns() {
    const now = Date.now();
    document.querySelectorAll("time[data-countdown]").forEach(function (el) {
      const due = Date.parse(el.getAttribute("datetime"));
      if (isNaN(due)) return;
      const secs = (due - now) / 1000;
      el.textContent = secs >= 0 ? "in " + span(secs) : "overdue " + span(secs);
      el.classList.toggle("overdue", secs < 0);
    });
    document.querySelectorAll("time[data-ago]").forEach(function (el) {
      const at = Date.parse(el.getAttribute("datetime"));
      if (isNaN(at)) return;
      const secs = (now - at) / 1000;
      el.textContent = secs < 5 ? "just now" : span(secs) + " ago";
    });
  }
  countdowns();
  setInterval(countdowns, 15000);

  // "Select all" boxes: <input type=checkbox data-select-all="name">.
  document.addEventListener("change", function (event) {
    const all = event.target.closest("input[data-select-all]");
    if (!all) return;
    document.querySelectorAll("input[type=checkbox][name='" + all.dataset.selectAll + "']").forEach(function (box) {
      box.checked = all.checked;
    });
  });
})();
