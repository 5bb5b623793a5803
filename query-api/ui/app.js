// The console's page logic: sign-in, the usage chart and the live tail table.

import { clearSession, loadSession, saveSession, signIn } from "./api.js";
import { UsageChart } from "./charts.js";
import { LiveTail } from "./tail.js";

// Rows kept on screen; older ones are dropped (the list endpoints have them all).
const MAX_ROWS = 500;
const TYPES = { 1: "top-up", 2: "consume", 3: "manage", 4: "system", 5: "error", 6: "refund", 7: "login" };

const $ = (id) => document.getElementById(id);
let session = null;
let tail = null;
let chart = null;
let received = 0;
// The table's columns for the signed-in role, set at sign-in (every row uses them).
let tableColumns = [];

// Columns of the tail table: [heading, value of a row, css class]; the user view has no
// channel or ip (the API hides them from users as the user list does).
function tailColumns() {
  const columns = [
    ["time", (r) => new Date(r.created_at * 1000).toLocaleString(), ""],
    ["type", (r) => TYPES[r.type] || String(r.type), ""],
  ];
  if (session.admin) columns.push(["user", (r) => r.username, ""]);
  columns.push(
    ["token", (r) => r.token_name, ""],
    ["model", (r) => r.model_name, ""],
    ["quota", (r) => r.quota.toLocaleString(), "num"],
    ["prompt", (r) => r.prompt_tokens.toLocaleString(), "num"],
    ["completion", (r) => r.completion_tokens.toLocaleString(), "num"],
    ["time (s)", (r) => String(r.use_time), "num"],
    ["stream", (r) => (r.is_stream ? "yes" : ""), ""],
  );
  if (session.admin) {
    columns.push(["channel", (r) => (r.channel_name ? `${r.channel} ${r.channel_name}` : String(r.channel)), ""]);
    columns.push(["ip", (r) => r.ip || "", ""]);
  }
  columns.push(
    ["group", (r) => r.group, ""],
    ["request id", (r) => r.request_id, "request-id"],
    ["content", (r) => r.content, "content"],
  );
  return columns;
}

function showSignedIn() {
  $("signin-panel").hidden = true;
  $("console").hidden = false;
  $("sign-out").hidden = false;
  $("who").textContent = `user ${session.id} · ${session.admin ? "admin: every user's logs" : "your logs"}`;
  for (const element of document.querySelectorAll("[data-admin]")) {
    element.hidden = !session.admin;
  }
  tableColumns = tailColumns();
  const head = $("tail-head");
  head.replaceChildren(
    ...tableColumns.map(([heading]) => {
      const th = document.createElement("th");
      th.textContent = heading;
      return th;
    }),
  );
  chart = new UsageChart($("usage-chart"), $("usage-totals"));
  refreshUsage();
  startTail();
}

function showSignedOut() {
  if (tail) tail.stop();
  tail = null;
  session = null;
  $("console").hidden = true;
  $("sign-out").hidden = true;
  $("signin-panel").hidden = false;
  $("who").textContent = "";
}

async function refreshUsage() {
  const [seconds, interval] = $("usage-range").value.split(":");
  $("usage-error").textContent = "";
  try {
    await chart.load(session, {
      seconds: Number(seconds),
      interval,
      groupBy: $("usage-group").value,
      metric: $("usage-metric").value,
    });
  } catch (error) {
    $("usage-error").textContent = error.message;
  }
}

function tailFilters() {
  const filters = {};
  for (const element of $("tail-form").elements) {
    if (element.name && !element.closest("[hidden]")) {
      filters[element.name] = element.value;
    }
  }
  if (filters.type === "0") delete filters.type;
  return filters;
}

function addRow(log, cursor) {
  received += 1;
  const tr = document.createElement("tr");
  tr.className = "fresh";
  tr.dataset.cursor = cursor;
  tr.dataset.requestId = log.request_id || "";
  for (const [, value, css] of tableColumns) {
    const td = document.createElement("td");
    td.textContent = value(log) ?? "";
    if (css) td.className = css;
    tr.append(td);
  }
  const body = $("tail-rows");
  body.prepend(tr);
  while (body.rows.length > MAX_ROWS) body.lastElementChild.remove();
  setStatus("live", "");
}

function setStatus(state, detail) {
  const status = $("tail-status");
  status.dataset.state = state;
  const count = `${received.toLocaleString()} rows received`;
  const text = {
    connecting: "connecting…",
    live: `live · ${count}`,
    reconnecting: `reconnecting (${detail}) · ${count}`,
    stopped: `stopped · ${count}`,
    failed: "stopped",
  }[state];
  status.textContent = text;
  $("tail-error").textContent = state === "failed" ? detail : "";
  $("tail-start").disabled = state !== "stopped" && state !== "failed";
  $("tail-stop").disabled = state === "stopped" || state === "failed";
}

function startTail() {
  if (tail) tail.stop();
  tail = new LiveTail(session, tailFilters(), { onRow: addRow, onState: setStatus });
  tail.start();
}

$("signin").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("signin-error").textContent = "";
  try {
    session = await signIn($("user-id").value, $("access-token").value);
    saveSession(session);
    $("access-token").value = "";
    showSignedIn();
  } catch (error) {
    $("signin-error").textContent = error.message;
  }
});

$("sign-out").addEventListener("click", () => {
  clearSession();
  showSignedOut();
});

$("usage-form").addEventListener("submit", (event) => {
  event.preventDefault();
  refreshUsage();
});

$("tail-form").addEventListener("submit", (event) => {
  event.preventDefault();
  startTail();
});

$("tail-stop").addEventListener("click", () => tail && tail.stop());

$("tail-clear").addEventListener("click", () => {
  $("tail-rows").replaceChildren();
  received = 0;
  setStatus($("tail-status").dataset.state, "");
});

session = loadSession();
if (session) {
  showSignedIn();
}
