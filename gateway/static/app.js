// The hub page: sign in with a PIN, then show the person's own data and let them decide.
// No framework and no build step. Text is always set with textContent; the only markup taken
// from the hub is the trend charts' SVG, parsed as SVG (it holds no script).
"use strict";

const state = {
  subject: null,
  csrf: null,
  events: null,
  refreshTimer: null,
  lastLatest: {},
  historyAll: false,
  summary: null,
};

const $ = (id) => document.getElementById(id);

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

function show(id, visible) {
  $(id).hidden = !visible;
}

// Times ------------------------------------------------------------------------------------

function sameDay(a, b) {
  return a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();
}

function when(iso) {
  if (!iso) return "";
  const moment = new Date(iso);
  if (Number.isNaN(moment.getTime())) return iso;
  const now = new Date();
  const time = moment.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  const yesterday = new Date(now);
  yesterday.setDate(now.getDate() - 1);
  if (sameDay(moment, now)) return `Today at ${time}`;
  if (sameDay(moment, yesterday)) return `Yesterday at ${time}`;
  const day = moment.toLocaleDateString([], { weekday: "long", day: "numeric", month: "long" });
  return `${day} at ${time}`;
}

function ago(iso) {
  if (!iso) return "never";
  const seconds = Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
  if (seconds < 90) return "just now";
  if (seconds < 3600) return `${Math.round(seconds / 60)} minutes ago`;
  if (seconds < 86400 * 1.5) return `${Math.round(seconds / 3600)} hours ago`;
  return `${Math.round(seconds / 86400)} days ago`;
}

// Talking to the hub -------------------------------------------------------------------------

class SignedOut extends Error {}

async function call(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && state.csrf) headers["X-CSRF-Token"] = state.csrf;
  const response = await fetch(path, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try {
    data = await response.json();
  } catch (_) {
    data = null;
  }
  if (response.status === 401 && path.startsWith("/api/")) throw new SignedOut();
  if (!response.ok) {
    const error = new Error((data && data.error) || `The hub answered ${response.status}`);
    error.status = response.status;
    throw error;
  }
  return data;
}

function subjectPath(suffix) {
  return `/api/subjects/${encodeURIComponent(state.subject)}${suffix}`;
}

// Signing in and out -----------------------------------------------------------------------

function showLogin(message) {
  stopEvents();
  state.subject = null;
  state.csrf = null;
  show("loading", false);
  show("home", false);
  show("sign-out", false);
  show("login", true);
  $("login-message").textContent = message || "";
  $("pin").value = "";
  $("pin").focus();
}

function signedIn(session) {
  state.subject = session.subject;
  state.csrf = session.csrf;
  show("loading", false);
  show("login", false);
  show("home", true);
  show("sign-out", true);
  $("download-json").href = subjectPath("/export?format=json");
  $("download-fhir").href = subjectPath("/export?format=fhir");
  startEvents();
  refresh();
}

function loginError(error) {
  if (error.status === 401) return "That PIN is not right. Please try again.";
  if (error.status === 429) return `Too many wrong tries. ${error.message.replace(/^too many wrong tries; /, "Please ")}.`;
  return error.message;
}

async function signIn(body) {
  $("login-message").textContent = "";
  try {
    signedIn(await call("POST", "/session", body));
  } catch (error) {
    const message = body.pin !== undefined ? loginError(error) : error.message;
    $("login-message").textContent = message;
    $("pin").value = "";
  }
}

// Rendering ----------------------------------------------------------------------------------

function empty(list, text) {
  list.replaceChildren(el(list.tagName === "UL" ? "li" : "p", "empty", text));
}

function renderLatest(latest) {
  const box = $("latest");
  if (!latest.length) {
    box.replaceChildren(el("p", "empty", "No readings yet. Take a measurement and it will show here."));
    return;
  }
  const cards = latest.map((reading) => {
    const card = el("div", "reading");
    card.dataset.kind = reading.kind;
    const previous = state.lastLatest[reading.kind];
    if (previous && previous !== reading.reading_id) card.classList.add("fresh");
    state.lastLatest[reading.kind] = reading.reading_id;
    card.append(el("div", "kind", reading.label));
    const value = el("div", "value", reading.headline);
    value.append(el("span", "unit", reading.unit));
    card.append(value);
    if (reading.details.length) {
      card.append(el("div", "details", reading.details.map((d) => `${d.label} ${d.value} ${d.unit}`.trim()).join(" · ")));
    }
    const source = reading.device ? ` · ${reading.device}` : "";
    card.append(el("div", "when", `${when(reading.when)}${source}`));
    return card;
  });
  box.replaceChildren(...cards);
}

function renderTrends(trends) {
  const box = $("trends");
  const cards = trends.filter((t) => t.svg).map((trend) => {
    const card = el("div", "trend");
    card.append(el("h3", null, `${trend.label} (${trend.readings} reading${trend.readings === 1 ? "" : "s"})`));
    const svg = new DOMParser().parseFromString(trend.svg, "image/svg+xml").documentElement;
    if (svg && svg.nodeName === "svg") card.append(document.importNode(svg, true));
    const legend = el("div", "legend");
    for (const item of trend.legend) {
      const entry = el("span");
      entry.append(el("span", `swatch c-${item.colour.replace("#", "")}`), document.createTextNode(`${item.label} (${trend.unit})`));
      legend.append(entry);
    }
    card.append(legend);
    return card;
  });
  if (cards.length) box.replaceChildren(...cards);
  else box.replaceChildren(el("p", "empty", "No readings in the last 30 days."));
}

function renderDevices(devices) {
  const list = $("devices");
  if (!devices.length) return empty(list, "No devices are set up for you.");
  list.replaceChildren(
    ...devices.map((device) => {
      const item = el("li", "device");
      item.append(el("div", "name", device.name));
      const line = el("div");
      line.append(el("span", `badge ${device.connected ? "on" : "off"}`, device.connected ? "Connected" : "Not connected"));
      line.append(document.createTextNode(` Last seen ${ago(device.last_seen)}.`));
      if (device.battery_level !== null && device.battery_level !== undefined) {
        line.append(document.createTextNode(` Battery ${device.battery_level}%.`));
      }
      item.append(line);
      if (!device.connected) {
        item.append(el("div", "hint", "That is normal: it connects when you take a measurement."));
      }
      return item;
    }),
  );
}

function renderConsents(consents) {
  const box = $("consents");
  if (!consents.length) {
    box.replaceChildren(el("p", "empty", "Nothing is shared from this hub."));
    return;
  }
  box.replaceChildren(
    ...consents.map((consent) => {
      const row = el("div", "consent");
      row.dataset.purpose = consent.purpose;
      const title = el("div", "title", consent.label);
      title.id = `purpose-${consent.purpose}`;
      const toggle = el("button", "switch");
      toggle.type = "button";
      toggle.setAttribute("role", "switch");
      toggle.setAttribute("aria-checked", String(consent.granted));
      toggle.setAttribute("aria-labelledby", title.id);
      const track = el("span", "track");
      track.append(el("span", "knob"));
      toggle.append(track, el("span", "state", consent.granted ? "Allowed" : "Not allowed"));
      toggle.addEventListener("click", () => changeConsent(consent, toggle));
      row.append(title, toggle, el("p", "explain", consent.explanation));
      if (consent.destinations.length) row.append(el("p", "to", `Goes to: ${consent.destinations.join(", ")}`));
      if (consent.note) row.append(el("p", "note", consent.note));
      return row;
    }),
  );
}

const HISTORY_SHOWN = 8;

function renderHistory(history) {
  const list = $("history");
  const more = $("history-more");
  if (!history.length) {
    more.hidden = true;
    return empty(list, "Nothing has been sent yet.");
  }
  const shown = state.historyAll ? history : history.slice(0, HISTORY_SHOWN);
  more.hidden = history.length <= HISTORY_SHOWN;
  more.textContent = state.historyAll ? "Show fewer" : `Show all ${history.length}`;
  list.replaceChildren(
    ...shown.map((entry) => {
      const item = el("li", `item h-${entry.type}`);
      if (entry.legal_basis === "vital_interest") item.classList.add("vital");
      item.append(el("div", "title", entry.title));
      if (entry.detail) item.append(el("div", "detail", entry.detail));
      item.append(el("div", "when", when(entry.at)));
      return item;
    }),
  );
}

function renderNoticed(noticed) {
  const list = $("noticed");
  if (!noticed.length) return empty(list, "Nothing noticed in your readings.");
  list.replaceChildren(
    ...noticed.map((note) => {
      const item = el("li", "item alert raised");
      item.append(el("div", "title", note.text));
      if (note.instructions) item.append(el("div", "detail", note.instructions));
      if (note.since) item.append(el("div", "when", `Since ${when(note.since)}`));
      return item;
    }),
  );
}

function renderAlerts(alerts) {
  const list = $("alerts");
  if (!alerts.length) return empty(list, "No alerts. Good.");
  list.replaceChildren(
    ...alerts.map((alert) => {
      const item = el("li", `item alert ${alert.type === "alert.resolved" ? "resolved" : "raised"}`);
      if (alert.vital_interest) item.classList.add("vital");
      item.append(el("div", "title", alert.title));
      if (alert.detail) item.append(el("div", "detail", alert.detail));
      for (const sent of alert.sent) item.append(el("div", "detail", sent.text));
      if (!alert.sent.length && alert.type === "alert.raised") {
        item.append(el("div", "detail", "Not sent to anyone."));
      }
      item.append(el("div", "when", when(alert.at)));
      return item;
    }),
  );
}

function render(summary) {
  state.summary = summary;
  show("restricted", summary.restricted);
  renderLatest(summary.latest);
  renderTrends(summary.trends);
  renderNoticed(summary.noticed || []);
  renderAlerts(summary.alerts);
  renderDevices(summary.devices);
  renderConsents(summary.consents);
  renderHistory(summary.history);
  $("updated").textContent = `Updated ${when(summary.generated_at)}.`;
  document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
}

async function refresh() {
  if (!state.subject) return;
  try {
    render(await call("GET", subjectPath("/summary")));
  } catch (error) {
    if (error instanceof SignedOut) showLogin("Please sign in again.");
    else $("updated").textContent = `Could not update: ${error.message}`;
  }
}

function refreshSoon() {
  clearTimeout(state.refreshTimer);
  state.refreshTimer = setTimeout(refresh, 250);
}

function startEvents() {
  stopEvents();
  state.events = new EventSource(subjectPath("/events"));
  state.events.addEventListener("changed", refreshSoon);
}

function stopEvents() {
  if (state.events) state.events.close();
  state.events = null;
}

// Decisions ------------------------------------------------------------------------------------

async function changeConsent(consent, toggle) {
  const grant = !consent.granted;
  const message = $("consent-message");
  toggle.disabled = true;
  message.className = "message";
  message.textContent = "Saving…";
  try {
    const result = await call("PUT", subjectPath("/consent"), { [consent.purpose]: grant });
    if (grant) {
      message.textContent = `You allowed: ${consent.label}.`;
    } else {
      const removed = (result.purged && result.purged[consent.purpose]) || 0;
      message.textContent =
        `You withdrew your consent: ${consent.label}. Nothing more will be sent for it. ` +
        `${removed} waiting item${removed === 1 ? " was" : "s were"} deleted.`;
    }
    message.classList.add("ok");
    await refresh();
  } catch (error) {
    if (error instanceof SignedOut) return showLogin("Please sign in again.");
    message.classList.add("error");
    message.textContent = `Not saved: ${error.message}`;
    toggle.disabled = false;
  }
}

async function erase() {
  const message = $("erase-message");
  $("erase-yes").disabled = true;
  try {
    const result = await call("DELETE", subjectPath("/data"));
    const counts = result.erased;
    message.className = "message ok";
    message.textContent = `Deleted: ${counts.readings} readings and ${counts.queued} waiting items. All your consents are now withdrawn.`;
    show("erase-confirm", false);
    await refresh();
  } catch (error) {
    if (error instanceof SignedOut) return showLogin("Please sign in again.");
    message.className = "message error";
    message.textContent = `Nothing was deleted: ${error.message}`;
  } finally {
    $("erase-yes").disabled = false;
  }
}

// Start --------------------------------------------------------------------------------------

async function start() {
  $("pin-form").addEventListener("submit", (event) => {
    event.preventDefault();
    signIn({ pin: $("pin").value });
  });
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    signIn({ token: $("token").value, subject: $("subject-id").value });
  });
  $("sign-out").addEventListener("click", async () => {
    try {
      await call("DELETE", "/session");
    } finally {
      showLogin("You are signed out.");
    }
  });
  $("erase").addEventListener("click", () => {
    show("erase-confirm", true);
    $("erase-no").focus();
  });
  $("erase-no").addEventListener("click", () => show("erase-confirm", false));
  $("history-more").addEventListener("click", () => {
    state.historyAll = !state.historyAll;
    if (state.summary) renderHistory(state.summary.history);
  });
  $("erase-yes").addEventListener("click", erase);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") refresh();
  });
  document.body.dataset.loadedAt = String(Date.now());
  try {
    const session = await call("GET", "/session");
    if (session.signed_in) signedIn(session);
    else showLogin();
  } catch (error) {
    show("loading", true);
    $("loading").textContent = `The hub did not answer: ${error.message}`;
  }
}

start();
