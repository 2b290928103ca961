// The hub page: sign in with a PIN (on-screen keys or a keyboard), then show the person's own
// data and let them decide. No framework and no build step. Text is always set with textContent;
// the only markup taken from the hub is the trend charts' SVG, parsed as SVG (it holds no script).
//
// Words: the hub serves this page in one language (its setting, or the browser's wish) with the
// script's messages in #messages, and the summary's texts, dates and numbers come already in that
// language and the hub's time zone. Nothing here formats a date or a number with the browser's
// locale, so a page never mixes languages.
//
// A shared tablet: everything shown about a person is removed when they sign out or their
// session ends (forgetPerson), before anyone else can sign in.
"use strict";

const LANG = document.documentElement.lang || "en";
const MESSAGES = JSON.parse(document.getElementById("messages").textContent || "{}");
const PLURALS = new Intl.PluralRules(LANG);

function freshState() {
  return {
    subject: null,
    csrf: null,
    events: null,
    refreshTimer: null,
    lastLatest: {},
    historyAll: false,
    summary: null,
    pendingWithdrawal: null,
  };
}

let state = freshState();

const $ = (id) => document.getElementById(id);

function t(key, params) {
  const text = MESSAGES[`page.${key}`];
  if (text === undefined) return key;
  return text.replace(/\{([a-z_]+)\}/g, (whole, name) =>
    params && params[name] !== undefined ? String(params[name]) : whole,
  );
}

function tp(key, count, params) {
  const form = PLURALS.select(count);
  const found = MESSAGES[`page.${key}.${form}`] !== undefined ? form : "other";
  return t(`${key}.${found}`, { count, ...(params || {}) });
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

function show(id, visible) {
  $(id).hidden = !visible;
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
    const error = new Error((data && data.error) || String(response.status));
    error.status = response.status;
    error.retryAfter = Number(response.headers.get("Retry-After") || 0);
    throw error;
  }
  return data;
}

function subjectPath(suffix) {
  return `/api/subjects/${encodeURIComponent(state.subject)}${suffix}`;
}

// Signing in and out -----------------------------------------------------------------------

// Everything about the person who was signed in leaves the page: their readings, choices,
// messages and open dialogs, so the next person on a shared tablet sees none of it.
function forgetPerson() {
  stopEvents();
  clearTimeout(state.refreshTimer);
  state = freshState();
  $("consents").after($("withdraw-confirm"));
  for (const id of ["latest", "trends", "alerts", "alerts-resolved", "devices", "consents", "history"]) {
    $(id).replaceChildren();
  }
  for (const id of ["consent-message", "erase-message", "updated", "monitoring-banner", "storage-notice", "withdraw-question", "withdraw-warning"]) {
    $(id).textContent = "";
  }
  for (const id of ["monitoring-banner", "storage-notice", "restricted", "alerts-earlier", "withdraw-confirm", "erase-confirm", "history-more"]) {
    show(id, false);
  }
  $("alerts-earlier").open = false;
  $("download-json").href = "#";
  $("download-fhir").href = "#";
  $("token").value = "";
  $("subject-id").value = "";
  $("token-login").open = false;
}

function showLogin(message) {
  forgetPerson();
  show("loading", false);
  show("home", false);
  show("sign-out", false);
  show("login", true);
  $("login-message").textContent = message || "";
  $("pin").value = "";
  $("pin").focus();
}

function signedIn(session) {
  forgetPerson();
  state.subject = session.subject;
  state.csrf = session.csrf;
  show("loading", false);
  show("login", false);
  show("home", true);
  show("sign-out", true);
  $("login-message").textContent = "";
  $("download-json").href = subjectPath("/export?format=json");
  $("download-fhir").href = subjectPath("/export?format=fhir");
  startEvents();
  refresh();
}

function loginError(error) {
  if (error.status === 401) return t("login.wrong_pin");
  if (error.status === 429) {
    const match = /(\d+) seconds/.exec(error.message);
    return t("login.too_many", { seconds: error.retryAfter || (match ? match[1] : 30) });
  }
  return error.message;
}

async function signIn(body) {
  $("login-message").textContent = "";
  try {
    signedIn(await call("POST", "/session", body));
  } catch (error) {
    $("login-message").textContent = body.pin !== undefined ? loginError(error) : error.message;
    $("pin").value = "";
  }
}

function submitPin() {
  const pin = $("pin").value;
  if (!pin) {
    $("login-message").textContent = t("login.enter_pin");
    return;
  }
  signIn({ pin });
}

// Rendering ----------------------------------------------------------------------------------

function empty(list, text) {
  list.replaceChildren(el(list.tagName === "UL" ? "li" : "p", "empty", text));
}

function renderLatest(latest) {
  const box = $("latest");
  if (!latest.length) {
    box.replaceChildren(el("p", "empty", t("latest.none")));
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
    card.append(el("div", "when", reading.when));
    return card;
  });
  box.replaceChildren(...cards);
}

function renderTrends(trends) {
  const box = $("trends");
  const cards = trends.filter((trend) => trend.svg).map((trend) => {
    const card = el("div", "trend");
    card.dataset.kind = trend.kind;
    card.append(el("h3", null, trend.title));
    const svg = new DOMParser().parseFromString(trend.svg, "image/svg+xml").documentElement;
    if (svg && svg.nodeName === "svg") card.append(document.importNode(svg, true));
    const legend = el("div", "legend");
    for (const item of trend.legend) {
      const entry = el("span");
      entry.append(el("span", `swatch c-${item.colour.replace("#", "")}`), document.createTextNode(item.label));
      legend.append(entry);
    }
    for (const limit of trend.limits) {
      const entry = el("span", "limit-entry");
      entry.append(el("span", "swatch limit"), document.createTextNode(limit.label));
      legend.append(entry);
    }
    card.append(legend);
    if (trend.sentence) card.append(el("p", "sentence", trend.sentence));
    card.append(el("p", "hint small", trend.how_to_read));
    return card;
  });
  if (cards.length) box.replaceChildren(...cards);
  else box.replaceChildren(el("p", "empty", t("trends.none")));
}

function renderDevices(devices) {
  const list = $("devices");
  if (!devices.length) return empty(list, t("devices.none"));
  list.replaceChildren(
    ...devices.map((device) => {
      const item = el("li", "device");
      if (device.trouble.length) item.classList.add("trouble");
      item.append(el("div", "name", device.name));
      const line = el("div");
      line.append(el("span", `badge ${device.connected ? "on" : "off"}`, device.badge));
      line.append(document.createTextNode(` ${device.state}`));
      item.append(line);
      for (const trouble of device.trouble) {
        const note = el("div", "problem", trouble.text);
        note.dataset.trouble = trouble.code;
        item.append(note);
      }
      if (device.hint) item.append(el("div", "hint", device.hint));
      return item;
    }),
  );
}

function renderConsents(consents) {
  const box = $("consents");
  box.after($("withdraw-confirm")); // back from the row it was shown under, before the rows go
  if (!consents.length) {
    box.replaceChildren(el("p", "empty", t("consents.none")));
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
      toggle.append(track, el("span", "state", consent.state));
      toggle.addEventListener("click", () => askConsent(consent, toggle));
      row.append(title, toggle, el("p", "explain", consent.explanation));
      if (consent.goes_to) row.append(el("p", "to", consent.goes_to));
      if (consent.note) row.append(el("p", "note", consent.note));
      return row;
    }),
  );
}

// A short screen (an 800x480 touch screen) shows fewer, so the section fits without scrolling.
const SHORT_SCREEN = window.matchMedia("(max-height: 560px)");

function historyShown() {
  return SHORT_SCREEN.matches ? 3 : 5;
}

function renderHistory(history) {
  const list = $("history");
  const more = $("history-more");
  if (!history.length) {
    more.hidden = true;
    return empty(list, t("history.none"));
  }
  const shown = state.historyAll ? history : history.slice(0, historyShown());
  more.hidden = history.length <= historyShown();
  more.textContent = state.historyAll ? t("history.show_fewer") : t("history.show_all", { count: history.length });
  list.replaceChildren(
    ...shown.map((entry) => {
      const item = el("li", `item h-${entry.type}`);
      if (entry.legal_basis === "vital_interest") item.classList.add("vital");
      item.append(el("div", "title", entry.title));
      if (entry.detail) item.append(el("div", "detail", entry.detail));
      item.append(el("div", "when", entry.when));
      return item;
    }),
  );
}

function alertItem(alert) {
  const item = el("li", `item alert ${alert.open ? "open" : "resolved"}`);
  if (alert.severity) item.dataset.severity = alert.severity;
  if (alert.vital_interest) item.classList.add("vital");
  const head = el("div", "title");
  if (alert.open && alert.severity_text) head.append(el("span", `severity s-${alert.severity}`, alert.severity_text), " ");
  head.append(alert.title);
  item.append(head);
  if (alert.detail) item.append(el("div", "detail", alert.detail));
  if (alert.instructions) {
    const box = el("div", "instructions");
    box.append(el("strong", null, `${t("alerts.what_to_do")}: `), alert.instructions);
    item.append(box);
  }
  if (alert.resolved_when) item.append(el("div", "detail", alert.resolved_when));
  for (const sent of alert.sent) item.append(el("div", "detail sent", sent.text));
  if (alert.not_sent) item.append(el("div", "detail", alert.not_sent));
  item.append(el("div", "when", alert.when));
  return item;
}

// What the window and missing-readings rules currently notice (gateway/api/noticed.py).
function renderNoticed(noticed) {
  const list = $("noticed");
  if (!noticed.length) return empty(list, t("noticed.none"));
  list.replaceChildren(
    ...noticed.map((note) => {
      const item = el("li", "item alert raised");
      item.append(el("div", "title", note.text));
      if (note.instructions) item.append(el("div", "detail", note.instructions));
      if (note.since) {
        const since = new Date(note.since).toLocaleString(document.documentElement.lang);
        item.append(el("div", "when", t("noticed.since", { when: since })));
      }
      return item;
    }),
  );
}

function renderAlerts(alerts) {
  const open = alerts.filter((alert) => alert.open);
  const earlier = alerts.filter((alert) => !alert.open);
  const list = $("alerts");
  if (open.length) list.replaceChildren(...open.map(alertItem));
  else empty(list, t("alerts.none"));
  show("alerts-earlier", earlier.length > 0);
  $("alerts-earlier-summary").textContent = tp("alerts.earlier", earlier.length);
  $("alerts-resolved").replaceChildren(...earlier.map(alertItem));
}

function render(summary) {
  state.summary = summary;
  show("restricted", summary.restricted);
  $("monitoring-banner").textContent = summary.monitoring.banner;
  show("monitoring-banner", Boolean(summary.monitoring.banner));
  $("storage-notice").textContent = summary.storage_notice;
  show("storage-notice", Boolean(summary.storage_notice));
  renderLatest(summary.latest);
  renderNoticed(summary.noticed || []);
  renderAlerts(summary.alerts);
  renderTrends(summary.trends);
  renderDevices(summary.devices);
  renderConsents(summary.consents);
  renderHistory(summary.history);
  $("updated").textContent = summary.updated;
  document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
}

async function refresh() {
  if (!state.subject) return;
  const subject = state.subject;
  try {
    const summary = await call("GET", subjectPath(`/summary?lang=${encodeURIComponent(LANG)}`));
    if (state.subject === subject) render(summary); // not someone else's, after a sign-out
  } catch (error) {
    if (error instanceof SignedOut) showLogin(t("sign_in_again"));
    else $("updated").textContent = t("could_not_update");
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

// Turning off what keeps the care team informed is asked first, with what it means.
function askConsent(consent, toggle) {
  if (consent.granted && consent.withdraw_warning) {
    state.pendingWithdrawal = { consent, toggle };
    $("withdraw-question").textContent = t("withdraw.question", { purpose: consent.label });
    $("withdraw-warning").textContent = consent.withdraw_warning;
    // Right under the switch that was touched, where the person is looking.
    toggle.closest(".consent").after($("withdraw-confirm"));
    show("withdraw-confirm", true);
    $("withdraw-no").focus();
    return;
  }
  changeConsent(consent, toggle);
}

async function changeConsent(consent, toggle) {
  const grant = !consent.granted;
  const message = $("consent-message");
  toggle.disabled = true;
  message.className = "message";
  message.textContent = t("consents.saving");
  try {
    const result = await call("PUT", subjectPath("/consent"), { [consent.purpose]: grant });
    if (grant) {
      message.textContent = t("consents.allowed", { purpose: consent.label });
    } else {
      const removed = (result.purged && result.purged[consent.purpose]) || 0;
      message.textContent = tp("consents.withdrawn", removed, { purpose: consent.label });
    }
    message.classList.add("ok");
    await refresh();
  } catch (error) {
    if (error instanceof SignedOut) return showLogin(t("sign_in_again"));
    message.classList.add("error");
    message.textContent = t("consents.not_saved", { error: error.message });
    toggle.disabled = false;
  }
}

async function erase() {
  const message = $("erase-message");
  $("erase-yes").disabled = true;
  try {
    const result = await call("DELETE", subjectPath("/data"));
    const counts = result.erased;
    // Nothing shown from before the erasure stays on the page, not even in memory.
    state.summary = null;
    state.lastLatest = {};
    for (const id of ["latest", "trends", "alerts", "alerts-resolved"]) $(id).replaceChildren();
    message.className = "message ok";
    message.textContent = t("erase.done", { readings: counts.readings, queued: counts.queued });
    show("erase-confirm", false);
    await refresh();
  } catch (error) {
    if (error instanceof SignedOut) return showLogin(t("sign_in_again"));
    message.className = "message error";
    message.textContent = t("erase.failed", { error: error.message });
  } finally {
    $("erase-yes").disabled = false;
  }
}

// Start --------------------------------------------------------------------------------------

async function start() {
  $("pin-form").addEventListener("submit", (event) => {
    event.preventDefault();
    submitPin();
  });
  for (const key of document.querySelectorAll(".pinpad [data-digit]")) {
    key.addEventListener("click", () => {
      const pin = $("pin");
      if (pin.value.length < pin.maxLength) pin.value += key.dataset.digit;
      $("login-message").textContent = "";
    });
  }
  $("pin-back").addEventListener("click", () => {
    $("pin").value = $("pin").value.slice(0, -1);
  });
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    signIn({ token: $("token").value, subject: $("subject-id").value });
  });
  $("sign-out").addEventListener("click", async () => {
    try {
      await call("DELETE", "/session");
    } finally {
      showLogin(t("signed_out"));
    }
  });
  $("withdraw-yes").addEventListener("click", () => {
    const pending = state.pendingWithdrawal;
    state.pendingWithdrawal = null;
    show("withdraw-confirm", false);
    if (pending) changeConsent(pending.consent, pending.toggle);
  });
  $("withdraw-no").addEventListener("click", () => {
    const pending = state.pendingWithdrawal;
    state.pendingWithdrawal = null;
    show("withdraw-confirm", false);
    if (pending) pending.toggle.focus();
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
    $("loading").textContent = t("hub_no_answer");
  }
}

start();
