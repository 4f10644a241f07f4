// The review grid's keyboard and in-place updates. Every action is also a plain form post: this
// only saves the page reload. j/k move, a/r/u set approved/rejected/pending, x selects, o opens.
(() => {
  "use strict";
  const base = document.body.dataset.base || "";
  const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";
  const canReview = ["reviewer", "admin"].includes(document.body.dataset.role);
  const cards = [...document.querySelectorAll(".card")];
  const live = document.getElementById("status-message");
  const reason = document.getElementById("reason");
  const viewer = document.getElementById("viewer");
  let current = -1;

  function say(text, error) {
    if (!live) return;
    live.textContent = text;
    live.classList.toggle("error", Boolean(error));
  }

  function focusCard(i) {
    if (!cards.length) return;
    current = Math.max(0, Math.min(cards.length - 1, i));
    cards[current].focus();
    cards[current].scrollIntoView({ block: "nearest" });
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
  }

  async function review(keys, status) {
    if (!canReview) { say("Your role cannot review.", true); return false; }
    if (!keys.length) { say("Select creatives first (x, or the Select boxes).", true); return false; }
    let response;
    try {
      response = await fetch(`${base}/review`, {
        method: "POST",
        headers: { "Content-Type": "application/json", "Accept": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify({ keys, status, reason: status === "rejected" && reason ? reason.value : "" }),
        credentials: "same-origin",
      });
    } catch (e) {
      say(`Not saved: ${e}`, true);
      return false;
    }
    const body = await response.json().catch(() => ({ detail: response.statusText }));
    if (!response.ok) { say(`Not saved: ${body.detail}`, true); return false; }
    for (const key of keys) {  // a key already in that state is not in the changes: shown as asked
      const card = cards.find((c) => c.dataset.key === key);
      const item = body.items.find((i) => i.key === key);
      if (card && item) show(card, item);
    }
    for (const [name, value] of Object.entries(body.counts || {})) {
      const el = document.getElementById(`count-${name}`);
      if (el) el.textContent = value.toLocaleString("en");
    }
    const n = keys.length;
    const one = cards.find((c) => c.dataset.key === keys[0]);
    say(`${status === "pending" ? "Back to pending" : status[0].toUpperCase() + status.slice(1)}: ${n === 1 && one ? one.dataset.title : n + " creatives"}`);
    return true;
  }

  function open(card) {
    if (!viewer || !card) return;
    document.getElementById("viewer-creative").src = card.dataset.full;
    document.getElementById("viewer-catalog").src = card.dataset.catalog;
    document.getElementById("viewer-title").textContent = card.dataset.title;
    viewer.showModal();
  }

  cards.forEach((card, i) => {
    card.addEventListener("focus", () => { current = i; });
    card.addEventListener("dblclick", () => open(card));
  });

  document.addEventListener("keydown", async (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey || e.target.matches("input, select, textarea, button")) return;
    if (viewer?.open && e.key !== "Escape") return;
    const card = current >= 0 ? cards[current] : null;
    switch (e.key) {
      case "j": focusCard(current + 1); break;
      case "k": focusCard(current - 1); break;
      case "a": case "r": case "u":
        if (!card) { focusCard(0); break; }
        if (await review([card.dataset.key], { a: "approved", r: "rejected", u: "pending" }[e.key]) && e.key !== "u") focusCard(current + 1);
        break;
      case "x": {
        const box = card?.querySelector('input[type="checkbox"]');
        if (box) box.checked = !box.checked;
        break;
      }
      case "o": case "Enter": if (card) open(card); break;
      default: return;
    }
    e.preventDefault();
  });

  const bulk = document.getElementById("bulk");
  bulk?.addEventListener("submit", async (e) => {
    e.preventDefault();
    const keys = [...document.querySelectorAll('input[name="keys"][form="bulk"]:checked')].map((b) => b.value);
    if (await review(keys, e.submitter.value)) {
      document.querySelectorAll('input[name="keys"][form="bulk"]:checked').forEach((b) => { b.checked = false; });
    }
  });
  document.getElementById("select-all")?.addEventListener("change", (e) => {
    document.querySelectorAll('input[name="keys"][form="bulk"]').forEach((b) => { b.checked = e.target.checked; });
  });
})();
