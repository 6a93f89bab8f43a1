// edgecrystal review page: the token and name boxes, relabelling through the JSON API, and the
// keys of a drop's page (1..9 relabel, n the next uncertain drop).
// Names from the index reach the page only through textContent, never as HTML.
"use strict";

function remember(id) {
  const box = document.getElementById(id);
  if (!box) return;
  box.value = sessionStorage.getItem("edgecrystal-" + id) || "";
  box.addEventListener("input", () => sessionStorage.setItem("edgecrystal-" + id, box.value));
}

async function relabel(form, event) {
  event.preventDefault();
  const status = form.querySelector(".status");
  const label = form.elements.label.value;
  const token = document.getElementById("token").value.trim();
  const who = document.getElementById("who").value.trim() || "reviewer";
  status.className = "status";
  status.textContent = "saving…";
  let reply;
  try {
    reply = await fetch("/api/images/" + form.dataset.imageId + "/label", {
      method: "POST",
      headers: {"Content-Type": "application/json", "Authorization": "Bearer " + token},
      body: JSON.stringify({label: label, who: who}),
    });
  } catch (error) {
    status.className = "status failed";
    status.textContent = "not saved: " + error;
    return;
  }
  const body = await reply.json().catch(() => ({}));
  if (!reply.ok) {
    status.className = "status failed";
    status.textContent = "not saved: " + (body.error || reply.status);
    return;
  }
  status.className = "status ok";
  status.textContent = "saved";
  const holder = form.closest("tr") || form.closest(".current");
  const chip = holder.querySelector(".label-cell .chip");
  chip.textContent = body.effective_label;
  chip.className = "chip label-" + body.effective_label;
  const uncertain = holder.querySelector(".label-cell .mark.uncertain");
  if (uncertain) uncertain.remove();  // a person has looked: no longer waiting
}

function dropKeys(current) {
  const form = current.querySelector("form.relabel");
  document.addEventListener("keydown", (event) => {
    const typing = event.target.closest && event.target.closest("input, select, textarea");
    if (typing || event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.key === "n") {
      event.preventDefault();
      window.location.assign(document.getElementById("next-uncertain").href);
      return;
    }
    const choice = form.elements.label.options[Number(event.key) - 1];
    if (/^[1-9]$/.test(event.key) && choice) {
      event.preventDefault();
      form.elements.label.value = choice.value;
      form.requestSubmit();
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  remember("token");
  remember("who");
  for (const form of document.querySelectorAll("form.relabel")) {
    form.addEventListener("submit", (event) => relabel(form, event));
  }
  const current = document.querySelector(".current[data-current-image]");
  if (current) dropKeys(current);
});
