// The live page of a fakepop3 server: polls the control API once a second and redraws.
// Everything shown comes from the clients and the mail under test, so it is put in the page
// with textContent only, never as HTML. A token, when the server needs one, is given in the
// address: http://HOST:PORT/#token=TOKEN
"use strict";

const token = new URLSearchParams(location.hash.slice(1)).get("token");
const headers = token ? { Authorization: "Bearer " + token } : {};
const openMessage = { user: null, uid: null };

async function api(path) {
  const response = await fetch(path, { headers });
  if (!response.ok) {
    let reason = response.statusText;
    try { reason = (await response.json()).error; } catch (e) { /* not JSON */ }
    throw new Error(response.status + ": " + reason);
  }
  return response.json();
}

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function drawSessions(sessions) {
  const list = document.getElementById("sessions");
  document.getElementById("session-count").textContent = sessions.length;
  document.getElementById("no-sessions").hidden = sessions.length > 0;
  list.replaceChildren();
  for (const s of sessions.slice().reverse()) {
    const item = el("li", null, "session");
    item.dataset.session = s.session;
    const title = el("h3", "#" + s.session + " " + (s.user || "(not logged in)") + " from " + s.client);
    title.append(el("span", s.open ? "open" : "ended: " + s.reason, s.open ? "badge open" : "badge"));
    if (s.tls) title.append(el("span", "TLS", "badge"));
    const faults = s.commands.filter((c) => c.fault).length;
    if (faults) title.append(el("span", faults + " fault(s) fired", "badge fault"));
    item.append(title, el("pre", s.transcript, "transcript"));
    list.append(item);
  }
}

async function showMessage(user, uid) {
  openMessage.user = user;
  openMessage.uid = uid;
  const m = await api("/api/v1/users/" + encodeURIComponent(user) + "/messages/" + encodeURIComponent(uid) + "/text");
  const box = document.getElementById("message");
  document.getElementById("message-title").textContent = user + " — " + uid;
  const table = document.getElementById("message-headers");
  table.replaceChildren();
  for (const [name, value] of m.headers) {
    const row = el("tr");
    row.append(el("th", name), el("td", value));
    table.append(row);
  }
  document.getElementById("message-text").textContent = m.text;
  box.hidden = false;
}

async function drawUsers(users) {
  const box = document.getElementById("users");
  const parts = [];
  for (const u of users) {
    const messages = await api("/api/v1/users/" + encodeURIComponent(u.name) + "/messages");
    const part = el("div", null, "user");
    part.dataset.user = u.name;
    const title = el("h3", u.name + " ");
    title.append(el("span", messages.length, "count"));
    if (u.in_session) title.append(el("span", "in a session", "badge open"));
    const table = el("table");
    for (const m of messages) {
      const row = el("tr");
      const open = el("button", m.subject || "(no subject)", "msg");
      open.addEventListener("click", () => showMessage(u.name, m.uid).catch(report));
      const subject = el("td");
      subject.append(open);
      row.append(el("td", m.number), subject, el("td", m.from), el("td", m.size + " B"));
      table.append(row);
    }
    part.append(title, table);
    parts.push(part);
  }
  box.replaceChildren(...parts);
}

function drawFaults(rules) {
  const body = document.querySelector("#faults tbody");
  document.getElementById("no-faults").hidden = rules.length > 0;
  document.getElementById("faults").hidden = rules.length === 0;
  body.replaceChildren();
  for (const r of rules) {
    const row = el("tr");
    row.append(el("td", r.id), el("td", r.description), el("td", r.seen), el("td", r.fired));
    body.append(row);
  }
}

function report(error) {
  const status = document.getElementById("status");
  status.textContent = "cannot reach the server: " + error.message;
  status.className = "error";
}

async function refresh() {
  try {
    const health = await api("/health");
    document.getElementById("where").textContent = "POP3 on " + health.host + ":" + health.port;
    const [sessions, users, faults] = await Promise.all([
      api("/api/v1/sessions"), api("/api/v1/users"), api("/api/v1/faults").catch(() => []),
    ]);
    drawSessions(sessions);
    await drawUsers(users);
    drawFaults(faults);
    const status = document.getElementById("status");
    status.textContent = "live — updated " + new Date().toLocaleTimeString();
    status.className = "";
  } catch (error) {
    report(error);
  }
}

async function loop() {
  await refresh();
  setTimeout(loop, 1000);
}

loop();
