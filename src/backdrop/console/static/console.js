// The review pages' keyboard, viewer and in-place updates. Every action is also a plain form post:
// this only saves the page reload. j/k move, a approves, r rejects (1-8 picks the reason), u undoes
// the reviewer's last action wherever the focus is, x selects, o opens the viewer (z zooms).
(() => {
  "use strict";
  const base = document.body.dataset.base || "";
  const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";
  const canReview = ["reviewer", "admin"].includes(document.body.dataset.role);
  const cards = [...document.querySelectorAll(".card[data-key]")];
  const live = document.getElementById("status-message");
  const viewer = document.getElementById("viewer");
  const code = document.getElementById("grid-code");
  const note = document.getElementById("grid-note");
  const reasons = code ? [...code.options].map((o) => o.value).filter(Boolean) : [];
  let current = -1;
  let awaitingReason = false;

  function say(text, error) {
    for (const el of [live, viewer?.open ? document.getElementById("viewer-message") : null]) {
      if (!el) continue;
      el.textContent = text;
      el.classList.toggle("error", Boolean(error));
    }
  }

  function focusCard(i) {
    if (!cards.length) return;
    current = Math.max(0, Math.min(cards.length - 1, i));
    cards[current].focus({ preventScroll: Boolean(viewer?.open) });
    if (!viewer?.open) cards[current].scrollIntoView({ block: "nearest" });
    if (viewer?.open) fill(cards[current]);
  }

  function show(card, item) {
    card.classList.remove("state-pending", "state-approved", "state-rejected");
    card.classList.add(`state-${item.status}`);
    const review = card.querySelector(".review");
    review.replaceChildren();
    const state = document.createElement("span");
    state.className = `state ${item.status}`;
    state.textContent = item.status;
    review.append(state);
    if (item.status !== "pending") {
      const by = document.createElement("span");
      by.className = "by";
      by.textContent = ` by ${item.reviewer}, just now${item.reason ? ": " + item.reason : ""}`;
      review.append(by);
    }
    card.dataset.status = item.status;
    if (viewer?.open && cards[current] === card) fill(card);
  }

  function counts(body) {
    for (const [name, value] of Object.entries(body.counts || {})) {
      const el = document.getElementById(`count-${name}`);
      if (el) el.textContent = value.toLocaleString("en");
    }
  }

  async function post(path, payload) {
    let response;
    try {
      response = await fetch(`${base}${path}`, {
        method: "POST",
        headers: { "Content-Type": "application/json", "Accept": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify(payload),
        credentials: "same-origin",
      });
    } catch (e) {
      say(`Not saved: ${e}`, true);
      return null;
    }
    const body = await response.json().catch(() => ({ detail: response.statusText }));
    if (!response.ok) { say(`Not saved: ${body.detail}`, true); return null; }
    return body;
  }

  function apply(body) {
    for (const item of body.items || []) {
      const card = cards.find((c) => c.dataset.key === item.key);
      if (card) show(card, item);
    }
    counts(body);
  }

  async function review(keys, status) {
    if (!canReview) { say("Your role cannot review.", true); return false; }
    if (!keys.length) { say("Select creatives first (x, or the Select boxes).", true); return false; }
    const payload = { keys, status, reason_code: status === "rejected" && code ? code.value : "", note: note ? note.value : "" };
    const body = await post("/review", payload);
    if (!body) return false;
    apply(body);
    if (status === "rejected" || status === "approved") {  // a reason is for one action: the next starts clean
      if (code) code.value = "";
      if (note) note.value = "";
    }
    const one = cards.find((c) => c.dataset.key === keys[0]);
    const what = keys.length === 1 && one ? one.dataset.title : `${keys.length} creatives`;
    say(`${status === "pending" ? "Back to pending" : status[0].toUpperCase() + status.slice(1)}: ${what}. u undoes it.`);
    return true;
  }

  async function undo() {
    if (!canReview) { say("Your role cannot review.", true); return; }
    const body = await post("/review/undo", {});
    if (!body) return;
    apply(body);
    say(body.message);
  }

  async function reject(card) {
    if (code && !code.value) {
      awaitingReason = true;
      say(`Reason? ${reasons.map((r, i) => `${i + 1} ${r}`).join(" · ")} (Esc: cancel)`);
      return;
    }
    if (code?.value === "other" && note && !note.value.trim()) {
      const words = viewer?.open ? window.prompt("What is wrong with it?") : null;
      if (words === null && !viewer?.open) {
        awaitingReason = false;
        note.focus();
        say("Type what is wrong, then Enter.");
        return;
      }
      if (!words) { say("Not rejected: \"other\" needs a few words.", true); return; }
      note.value = words;
    }
    if (await review([card.dataset.key], "rejected")) focusCard(current + 1);
  }

  // -- both images at the same scale, zoom and pan (the viewer; a creative's details page) ---------
  function scaler(root) {
    const panes = [...root.querySelectorAll(".pane")];
    const images = panes.map((p) => p.querySelector("img"));
    const state = { zoom: "fit", images };
    function layout(center = true) {
      if (!images.length || images.some((img) => !img.naturalWidth)) return;
      let scale = Number(state.zoom);
      if (state.zoom === "fit") {
        scale = Math.min(...images.map((img, i) => Math.min(panes[i].clientWidth / img.naturalWidth, panes[i].clientHeight / img.naturalHeight)));
      }
      images.forEach((img) => { img.style.width = `${Math.round(img.naturalWidth * scale)}px`; });
      if (center) panes.forEach((p, i) => {  // zoomed in, start from the product (the creative's layout box; the photo's middle)
        const [fx, fy] = (images[i].dataset.focus || "0.5,0.5").split(",").map(Number);
        p.scrollLeft = fx * images[i].offsetWidth - p.clientWidth / 2;
        p.scrollTop = fy * images[i].offsetHeight - p.clientHeight / 2;
      });
      const label = root.querySelector(".scale");
      if (label) label.textContent = `${Math.round(scale * 100)}% (both)`;
    }
    state.setZoom = (z) => {
      state.zoom = z;
      root.querySelectorAll("[data-zoom]").forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.zoom === z)));
      layout();
    };
    images.forEach((img) => img.addEventListener("load", () => layout()));
    window.addEventListener("resize", () => layout(false));
    root.querySelectorAll("[data-zoom]").forEach((b) => b.addEventListener("click", () => state.setZoom(b.dataset.zoom)));
    let drag = null;
    panes.forEach((pane) => {
      pane.addEventListener("pointerdown", (e) => { drag = { x: e.clientX, y: e.clientY }; pane.setPointerCapture(e.pointerId); });
      pane.addEventListener("pointermove", (e) => {
        if (!drag) return;
        const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
        drag = { x: e.clientX, y: e.clientY };
        panes.forEach((p) => { p.scrollLeft -= dx; p.scrollTop -= dy; });  // both together: the same spot side by side
      });
      pane.addEventListener("pointerup", () => { drag = null; });
    });
    state.setZoom("fit");
    return state;
  }
  const view = viewer ? scaler(viewer) : null;
  document.querySelectorAll(".same-scale").forEach((root) => scaler(root));

  function fill(card) {
    viewer.dataset.key = card.dataset.key;
    document.getElementById("viewer-title").textContent = card.dataset.title;
    document.getElementById("viewer-meta").textContent = `${card.dataset.arm} · ${card.dataset.placement} · ${card.dataset.size}`;
    const state = document.getElementById("viewer-state");
    state.replaceChildren(card.querySelector(".review").cloneNode(true));
    const qa = document.getElementById("viewer-qa");
    qa.hidden = !card.dataset.qa;
    qa.textContent = card.dataset.qa ? `Flagged by QA:\n${card.dataset.qa}` : "";
    document.getElementById("viewer-prompt").textContent = card.dataset.prompt || "–";
    view.images[0].dataset.focus = card.dataset.focus || "0.5,0.5";
    view.images[0].src = card.dataset.full;
    view.images[1].src = card.dataset.catalog;
  }

  function open(card) {
    if (!viewer || !card) return;
    fill(card);
    viewer.showModal();
    view.setZoom("fit");
  }

  cards.forEach((card, i) => {
    card.addEventListener("focus", () => { current = i; });
    card.addEventListener("dblclick", () => open(card));
  });

  note?.addEventListener("keydown", async (e) => {
    if (e.key !== "Enter" || current < 0 || code?.value !== "other") return;
    e.preventDefault();
    if (await review([cards[current].dataset.key], "rejected")) focusCard(current + 1);
  });

  document.addEventListener("keydown", async (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey || e.target.matches("input, select, textarea")) return;
    if (e.target.matches("a, button") && e.key === "Enter") return;  // Enter follows a link, presses a button
    const card = current >= 0 ? cards[current] : null;
    if (awaitingReason) {
      const n = Number(e.key);
      awaitingReason = false;
      if (e.key === "Escape") { say("Not rejected."); e.preventDefault(); return; }
      if (n >= 1 && n <= reasons.length && card) {
        code.value = reasons[n - 1];
        e.preventDefault();
        await reject(card);
        return;
      }
      say("Not rejected: a reason is a number from the list.", true);
      return;
    }
    switch (e.key) {
      case "j": focusCard(current + 1); break;
      case "k": focusCard(current - 1); break;
      case "a":
        if (!card) { focusCard(0); break; }
        if (await review([card.dataset.key], "approved")) focusCard(current + 1);
        break;
      case "r":
        if (!card) { focusCard(0); break; }
        await reject(card);
        break;
      case "u": await undo(); break;
      case "z": if (viewer?.open) view.setZoom({ fit: "1", 1: "2", 2: "fit" }[view.zoom]); break;
      case "x": {
        const box = card?.querySelector('input[type="checkbox"]');
        if (box) box.checked = !box.checked;
        break;
      }
      case "o":  // with nothing focused yet: the first creative
        if (!viewer?.open && cards.length) { if (!card) focusCard(0); open(cards[current]); }
        break;
      case "Enter": if (card && !viewer?.open) open(card); break;
      default: return;
    }
    e.preventDefault();
  });

  const bulk = document.getElementById("bulk");
  bulk?.addEventListener("submit", async (e) => {
    if (e.submitter?.classList.contains("whole")) {  // a whole product: the server's confirmation page
      if (e.submitter.value === "rejected" && code && !code.value) { e.preventDefault(); say("Choose the reason for the rejection first.", true); code.focus(); }
      return;
    }
    e.preventDefault();
    if (e.submitter?.id === "undo") { await undo(); return; }
    const boxes = () => [...document.querySelectorAll('input[name="keys"][form="bulk"]:checked')];
    const status = e.submitter.value;
    if (status === "rejected" && code && !code.value) { say("Choose the reason for the rejection first.", true); code.focus(); return; }
    if (await review(boxes().map((b) => b.value), status)) boxes().forEach((b) => { b.checked = false; });
  });
  document.getElementById("select-all")?.addEventListener("change", (e) => {
    document.querySelectorAll('input[name="keys"][form="bulk"]').forEach((b) => { b.checked = e.target.checked; });
  });
})();
