// netboot's fleet page: polls the status API and draws each client's last boots to scale.
// No build step and no third-party code: every byte is served by netboot itself.
"use strict";

// Colours by stage name; the stages themselves, in order, come with each status answer.
const COLOURS = {dhcp: "#4e79a7", loader: "#59a14f", kernel: "#9c755f", initramfs: "#f28e2b",
                 network: "#76b7b2", login: "#b07aa1", root: "#2e7d32", "os-up": "#edc948",
                 failed: "#c62828"};
const POLL_MS = 2000;
const BAR_WIDTH = 360;  // pixels for the slowest shown boot

function token() { return sessionStorage.getItem("netboot-token"); }

async function fetchStatus() {
  const headers = token() ? {Authorization: "Bearer " + token()} : {};
  const reply = await fetch("/api/v1/status", {headers, cache: "no-store"});
  if (reply.status === 401) {
    document.getElementById("login").hidden = false;
    throw new Error("this address needs the admin token");
  }
  if (!reply.ok) throw new Error("status API: HTTP " + reply.status);
  return reply.json();
}

function ago(stamp, now) {
  if (stamp == null) return "";
  const s = Math.max(0, Math.round(now - stamp));
  if (s >= 86400) return Math.floor(s / 86400) + "d ago";
  if (s >= 3600) return Math.floor(s / 3600) + "h ago";
  if (s >= 60) return Math.floor(s / 60) + "m ago";
  return s + "s ago";
}

function cell(row, text, cls) {
  const td = row.insertCell();
  td.textContent = text == null ? "" : String(text);
  if (cls) td.className = cls;
  return td;
}

// One boot as a bar: each segment runs from reaching a stage to reaching the next one.
function timeline(boot, scale) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  const stages = boot.stages;
  const total = stages.length ? stages[stages.length - 1].seconds : 0;
  svg.setAttribute("class", "timeline");
  svg.setAttribute("width", String(BAR_WIDTH + 60));
  svg.setAttribute("height", "16");
  svg.dataset.stages = stages.map(s => s.stage).join(" ");
  stages.forEach((s, i) => {
    const end = i + 1 < stages.length ? stages[i + 1].seconds : s.seconds;
    const x = s.seconds * scale;
    const width = Math.max(3, (end - s.seconds) * scale);
    const rect = document.createElementNS(ns, "rect");
    rect.setAttribute("x", x.toFixed(1));
    rect.setAttribute("y", "0");
    rect.setAttribute("width", width.toFixed(1));
    rect.setAttribute("height", "16");
    rect.setAttribute("fill", COLOURS[s.stage] || "#999");
    rect.setAttribute("class", "segment " + s.stage);
    const title = document.createElementNS(ns, "title");
    title.textContent = s.stage + " at " + s.seconds.toFixed(1) + " s";
    rect.appendChild(title);
    svg.appendChild(rect);
  });
  const label = document.createElementNS(ns, "text");
  label.setAttribute("x", String(total * scale + 6));
  label.setAttribute("y", "12");
  label.setAttribute("style", "fill:#333");
  label.textContent = total.toFixed(1) + " s";
  svg.appendChild(label);
  return svg;
}

function render(status) {
  legend(status.stages);
  const body = document.querySelector("#fleet tbody");
  const slowest = Math.max(1, ...status.clients.flatMap(
    c => c.boots.map(b => b.stages.length ? b.stages[b.stages.length - 1].seconds : 0)));
  const scale = BAR_WIDTH / slowest;
  body.replaceChildren();
  for (const c of status.clients) {
    const row = body.insertRow();
    row.dataset.mac = c.mac;
    cell(row, c.hostname + " (" + c.mac + ")");
    cell(row, c.ip);
    // the version it is set to, and the one it runs when they differ (after a reimage)
    cell(row, c.booted_image && c.booted_image !== c.image ?
      c.image + " (runs " + c.booted_image + ")" : c.image);
    cell(row, c.boot_method);
    cell(row, c.stage, "stage " + (c.stage || ""));
    cell(row, ago(c.last_seen, status.now));
    const boots = cell(row, null, "boots");
    for (const boot of c.boots.slice().reverse()) boots.appendChild(timeline(boot, scale));
  }
  const live = status.servers.filter(s => s.state === "running").length;
  document.getElementById("summary").textContent =
    status.clients.length + " clients, " + status.unknown_machines + " unregistered asking, " +
    live + "/" + status.servers.length + " servers running, portal held by " +
    (status.portal_holder || "nobody");
}

// The stages' colours, drawn once, from the first status answer.
function legend(stages) {
  if (document.querySelector(".legend")) return;
  const p = document.createElement("p");
  p.className = "legend";
  for (const s of stages) {
    const span = document.createElement("span");
    span.style.background = COLOURS[s] || "#999";
    span.textContent = s;
    p.appendChild(span);
  }
  document.getElementById("servers").appendChild(p);
}

async function poll() {
  const problem = document.getElementById("problem");
  try {
    render(await fetchStatus());
    problem.hidden = true;
  } catch (err) {
    problem.textContent = String(err.message || err);
    problem.hidden = false;
  }
  setTimeout(poll, POLL_MS);
}

document.getElementById("login").addEventListener("submit", event => {
  event.preventDefault();
  sessionStorage.setItem("netboot-token", document.getElementById("token").value);
  document.getElementById("login").hidden = true;
});
poll();
