// edgecrystal review page: the token and name boxes, and relabelling through the JSON API.
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
  const chip = form.closest("tr").querySelector(".label-cell .chip");
  chip.textContent = body.effective_label;
  chip.className = "chip label-" + body.effective_label;
}

document.addEventListener("DOMContentLoaded", () => {
  remember("token");
  remember("who");
  for (const form of document.querySelectorAll("form.relabel")) {
    form.addEventListener("submit", (event) => relabel(form, event));
  }
});
