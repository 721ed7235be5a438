// casebridge admin page: Settings → Integrations → Creatio.
//
// A client of the documented HTTP API (/v1/…) and nothing else: it signs in
// with an org admin API key (kept in sessionStorage, so it goes when the tab
// closes), sends it as a bearer token, and shows each answer's message and
// hint as they come. Everything is built with DOM calls, never innerHTML,
// so text from Creatio or the chat platform is always shown as text.
"use strict";

(function () {
  const KEY_STORAGE = "casebridge.apiKey";
  const REFRESH_MS = 5000;

  const state = {
    key: null,
    /** Set once the key was accepted: a later 401 (key revoked) signs out. */
    signedIn: false,
    /** The connection as GET /v1/creatio/connection shows it; null when there is none. */
    connection: null,
    /** The Chatwoot connector as GET /v1/connectors/chatwoot shows it; null when there is none. */
    chatwoot: null,
    /** The lookups are read once per connection (they come from Creatio). */
    lookupsLoadedFor: null,
    aiFields: [],
    aiAvailable: true,
    openConversation: null,
    openDelivery: null,
    timer: null,
    lastSignature: {},
    /** casebridge did not answer the last request (down or unreachable). */
    offline: false,
    /** While offline: the timer that asks again. */
    retryTimer: null,
  };

  const $ = (id) => document.getElementById(id);

  // ---------------------------------------------------------------- helpers

  /** Builds an element: el("p", {class: "x"}, "text", child, …). */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "dataset") Object.assign(node.dataset, value);
      else if (name === "text") node.textContent = value;
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  /** An answer that was not 2xx, with the API's message and hint. */
  class ApiError extends Error {
    constructor(status, body) {
      const error = (body && body.error) || {};
      super(error.message || "casebridge answered " + status);
      this.status = status;
      this.code = error.code || null;
      this.hint = error.hint || null;
      this.body = body || {};
    }
  }

  /** Calls the API with the signed-in key; JSON in, JSON (or null) out. */
  async function api(method, path, body) {
    const headers = { Authorization: "Bearer " + state.key, Accept: "application/json" };
    const init = { method, headers, cache: "no-store" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (e) {
      setOffline(true);
      throw new ApiError(0, {
        error: {
          message: "casebridge did not answer (" + e.message + ")",
          hint: "Check that the service is running and reachable, then try again.",
        },
      });
    }
    setOffline(false);
    const text = await response.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch (e) {
        data = { error: { message: text.slice(0, 300) } };
      }
    }
    if (!response.ok) {
      const error = new ApiError(response.status, data);
      if (response.status === 401 && state.signedIn) {
        signOut(error);
      }
      throw error;
    }
    return data;
  }

  /** Shows a message and what to do in a result box (a live region). */
  function showResult(box, kind, message, hint, extra) {
    box.replaceChildren();
    if (!message) {
      delete box.dataset.kind;
      return;
    }
    box.dataset.kind = kind;
    box.append(el("p", { class: "message" }, message));
    if (hint) box.append(el("p", { class: "hint" }, hint));
    if (extra) box.append(extra);
  }

  function showError(box, error, prefix) {
    const message = (prefix ? prefix + ": " : "") + error.message;
    let extra = null;
    const fields = error.body && error.body.fields;
    if (Array.isArray(fields) && fields.length > 1) {
      extra = el(
        "ul",
        {},
        fields.map((f) => el("li", {}, (f.field ? f.field + ": " : "") + f.message + (f.hint ? " — " + f.hint : "")))
      );
    }
    showResult(box, "error", message, error.hint, extra);
  }

  function announce(text) {
    const box = $("announcer");
    box.textContent = "";
    // A new node each time, so a repeated message is announced again.
    window.setTimeout(() => box.append(el("span", {}, text)), 50);
  }

  /** Disables a button while its action runs. */
  async function busy(button, action) {
    const label = button.textContent;
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    try {
      return await action();
    } finally {
      button.disabled = false;
      button.removeAttribute("aria-busy");
      button.textContent = label;
    }
  }

  function when(iso) {
    if (!iso) return "—";
    const at = new Date(iso);
    const seconds = Math.round((Date.now() - at.getTime()) / 1000);
    let text;
    if (seconds < 5) text = "just now";
    else if (seconds < 60) text = seconds + " s ago";
    else if (seconds < 3600) text = Math.floor(seconds / 60) + " min ago";
    else text = at.toLocaleString();
    return el("time", { datetime: iso, title: at.toLocaleString() }, text);
  }

  function badge(status, label) {
    return el("span", { class: "badge", dataset: { status } }, label || humanize(status));
  }

  function humanize(word) {
    const text = String(word || "").replace(/_/g, " ");
    return text.charAt(0).toUpperCase() + text.slice(1);
  }

  async function copyText(text, button) {
    try {
      await navigator.clipboard.writeText(text);
    } catch (e) {
      // Older browsers, or a page opened over plain http from another host.
      const area = el("textarea", { class: "visually-hidden", readonly: true });
      area.value = text;
      document.body.append(area);
      area.select();
      document.execCommand("copy");
      area.remove();
    }
    if (button) {
      const label = button.textContent;
      button.textContent = "Copied";
      window.setTimeout(() => (button.textContent = label), 1500);
    }
    announce("Copied to the clipboard.");
  }

  // ---------------------------------------------------------------- sign in

  async function signIn(key) {
    state.key = key;
    try {
      state.connection = await api("GET", "/v1/creatio/connection");
    } catch (e) {
      if (e.status !== 404) {
        state.key = null;
        throw e;
      }
      state.connection = null;
    }
    sessionStorage.setItem(KEY_STORAGE, key);
    state.signedIn = true;
    $("org-label").textContent = "Signed in with " + key.slice(0, 8) + "…";
    $("sign-in-view").hidden = true;
    $("session").hidden = false;
    $("app-view").hidden = false;
    $("api-key").value = "";
    renderConnection();
    showTab(currentTab(), false);
  }

  /** Back to the sign-in form; `error` says why when the key was refused. */
  function signOut(error) {
    sessionStorage.removeItem(KEY_STORAGE);
    state.key = null;
    state.signedIn = false;
    state.connection = null;
    state.lookupsLoadedFor = null;
    state.lastSignature = {};
    stopPolling();
    for (const id of ["client-secret", "delivery-secret-value", "webhook-url", "new-key-value"]) $(id).value = "";
    $("delivery-secret").hidden = true;
    $("new-key").hidden = true;
    setOffline(false);
    $("app-view").hidden = true;
    $("session").hidden = true;
    $("sign-in-view").hidden = false;
    const box = $("sign-in-result");
    if (error) showError(box, error, "Signed out");
    else showResult(box, "ok", "Signed out. The key was removed from this browser tab.");
    $("api-key").focus();
  }

  $("sign-in-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = $("api-key").value.trim();
    const box = $("sign-in-result");
    if (!key) {
      showResult(box, "error", "Enter your admin API key.", "An org's first admin key is returned when the org is created (POST /v1/orgs).");
      $("api-key").focus();
      return;
    }
    await busy($("sign-in-button"), async () => {
      try {
        showResult(box);
        await signIn(key);
      } catch (e) {
        showError(box, e);
        $("api-key").focus();
      }
    });
  });

  $("sign-out").addEventListener("click", () => signOut(null));

  // ---------------------------------------------------------------- tabs

  const TABS = ["connection", "webhook", "ai-fields", "activity", "keys"];

  function currentTab() {
    const name = window.location.hash.replace("#", "");
    return TABS.includes(name) ? name : "connection";
  }

  function showTab(name, moveFocus) {
    for (const tab of TABS) {
      $("panel-" + tab).hidden = tab !== name;
      const link = document.querySelector('.tab[data-tab="' + tab + '"]');
      if (tab === name) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    stopPolling();
    if (name === "webhook") loadWebhookPanel();
    if (name === "ai-fields") loadAiFields();
    if (name === "keys") loadKeys();
    if (name === "activity") {
      refreshActivity();
      startPolling();
    }
    if (moveFocus) document.querySelector("#panel-" + name + " h2").focus();
  }

  window.addEventListener("hashchange", () => {
    if (state.key) showTab(currentTab(), true);
  });

  // ---------------------------------------------------------------- connection

  const STATUS_LABELS = {
    active: "Active",
    needs_attention: "Needs attention",
    disconnected: "Disconnected",
    none: "Not connected",
  };

  function isConnected() {
    const c = state.connection;
    return !!c && (c.status === "active" || c.status === "needs_attention");
  }

  /** casebridge stopped (or started again) answering this page: the status
   * says so instead of the last one it knew, and it is asked again every
   * few seconds until it answers. */
  function setOffline(offline) {
    if (state.offline === offline) return;
    state.offline = offline;
    if (offline && !state.retryTimer) {
      state.retryTimer = window.setInterval(async () => {
        if (!state.key) return;
        try {
          state.connection = await api("GET", "/v1/creatio/connection");
        } catch (e) {
          if (e.status === 404) state.connection = null;
        }
        if (!state.offline) renderStatus();
      }, REFRESH_MS);
    }
    if (!offline && state.retryTimer) {
      window.clearInterval(state.retryTimer);
      state.retryTimer = null;
    }
    if (state.signedIn) renderStatus();
  }

  /** A sentence as the server wrote it, without its own full stop, to be
   * followed by more. */
  function clause(text) {
    return String(text || "").trim().replace(/[.\s]+$/, "");
  }

  function renderStatus() {
    const c = state.connection;
    const status = c ? c.status : "none";
    const b = $("status-badge");
    if (state.offline) {
      b.dataset.status = "down";
      b.textContent = "Not answering";
      $("status-detail").textContent = "casebridge is not answering this page: the service is stopped or cannot be reached. " +
        "What is shown below may be out of date; the page asks again every 5 seconds.";
      $("creatio-concurrency").hidden = true;
      return;
    }
    b.dataset.status = status === "none" ? "disconnected" : status;
    b.textContent = STATUS_LABELS[status] || humanize(status);
    let detail = "";
    if (!c) detail = "Fill in the connection and press Test & Save.";
    else if (c.status === "needs_attention") detail = clause(c.status_detail || "A check failed") + ". Sync is paused until Test & Save or Re-test passes.";
    else if (c.status === "disconnected") detail = "Credentials deleted. Test & Save with the client secret to connect again.";
    else if (c.last_check_at) detail = "Last checked " + new Date(c.last_check_at).toLocaleString() + ".";
    $("status-detail").textContent = detail;
    renderConcurrency();
  }

  /** How many requests casebridge sends this org's Creatio at once: the
   * adaptive limit and what is in flight (absent from an API-only process). */
  function renderConcurrency() {
    const c = state.connection;
    const lane = c && c.status === "active" ? c.creatio_concurrency : null;
    const line = $("creatio-concurrency");
    line.hidden = !lane;
    if (!lane) return;
    line.dataset.limit = lane.limit;
    line.textContent = "Requests to Creatio: " + lane.in_flight + " in flight, limit " + lane.limit +
      " (adapts between " + lane.floor + " and " + lane.ceiling + " to how fast Creatio answers).";
  }

  /** Only the lane's figures: the form may be half edited. */
  async function refreshConcurrency() {
    if (!isConnected()) return;
    try {
      const c = await api("GET", "/v1/creatio/connection");
      if (state.connection) state.connection.creatio_concurrency = c.creatio_concurrency;
    } catch (e) {
      if (state.connection) state.connection.creatio_concurrency = null;
    }
    renderConcurrency();
  }

  function renderConnection() {
    const c = state.connection;
    renderStatus();
    $("instance-url").value = (c && c.instance_url) || "";
    $("identity-service-url").value = (c && c.identity_service_url) || "";
    $("client-id").value = (c && c.client_id) || "";
    $("client-secret").value = "";
    $("handoff-only").checked = !!(c && c.create_case_only_on_handoff);
    $("create-contacts").checked = c ? c.create_missing_contacts !== false : true;
    const appendTo = c ? c.case_append_channels || [] : ["email"];
    for (const box of appendChannelBoxes()) box.checked = appendTo.includes(box.value);
    const saved = c && c.status !== "disconnected" && c.client_secret;
    $("client-secret").placeholder = saved ? "Saved: " + c.client_secret : "";
    $("client-secret-help").textContent = saved
      ? "Write-only: the saved secret is never shown. Leave empty to keep it; to rotate, type the new one and Test & Save (it is tested before it replaces the saved one)."
      : "Write-only: never shown again after saving.";
    const connected = isConnected();
    $("retest").hidden = !connected;
    $("disconnect").hidden = !connected;
    $("rotate-secret").hidden = !connected;
    $("lookups").disabled = !connected;
    if (!connected) {
      $("lookups-help").textContent = "Connect first: owners, groups and statuses are read by name from your Creatio once it is connected.";
      for (const id of ["owner-select", "group-select", "resolved-status-select"]) {
        $(id).replaceChildren(el("option", { value: "" }, "Connect first"));
      }
      for (const id of ["owner-guid", "group-guid", "resolved-status-guid"]) $(id).textContent = "";
      state.lookupsLoadedFor = null;
    } else {
      $("lookups-help").textContent = "Picked by name from your Creatio; the GUID is shown under each choice.";
      if (state.lookupsLoadedFor !== c.instance_url) loadLookups();
      else selectSavedLookups();
    }
    if (c && c.status === "needs_attention") {
      // The last report passed before whatever went wrong since: beside the
      // warning it would say all is well. Only a failed one still tells.
      if (c.last_check && !c.last_check.ok) renderReport(c.last_check);
      else {
        renderReport(null);
        $("report-empty").textContent = "The last full check" + (c.last_check_at ? " (" + new Date(c.last_check_at).toLocaleString() + ")" : "") +
          " passed, but since then: " + clause(c.status_detail || "a check failed") + ". Press Re-test to run every check now.";
      }
    } else {
      $("report-empty").textContent = REPORT_EMPTY;
      if (c && c.last_check && !$("check-report").childElementCount) renderReport(c.last_check);
    }
  }

  const REPORT_EMPTY = $("report-empty").textContent;
  const CONVERSATIONS_EMPTY = $("conversations-empty").textContent;

  function appendChannelBoxes() {
    return [...document.querySelectorAll('input[name="append-channel"]')];
  }

  function appendChannels() {
    return appendChannelBoxes().filter((b) => b.checked).map((b) => b.value);
  }

  function renderReport(report) {
    $("report-empty").hidden = !!report;
    renderChecks($("check-report"), report);
  }

  /** A Test & Save report as a list: each check, its mark and what to do. */
  function renderChecks(list, report) {
    list.replaceChildren();
    if (!report) return;
    const marks = { pass: "Pass", warn: "Warn", fail: "Fail", skip: "Skip" };
    for (const check of report.checks) {
      list.append(
        el(
          "li",
          { dataset: { status: check.status, check: check.name } },
          el("span", { class: "mark" }, marks[check.status] || check.status),
          el("span", { class: "name" }, check.name),
          el("span", { class: "message" }, check.message),
          check.hint ? el("span", { class: "hint" }, check.hint) : null
        )
      );
    }
  }

  /** The lookup selects' current choices, as the API names them. */
  const LOOKUP_FIELDS = [
    ["default_owner_id", "owner-select", "owner-guid"],
    ["default_group_id", "group-select", "group-guid"],
    ["resolved_status_id", "resolved-status-select", "resolved-status-guid"],
  ];

  function fillSelect(select, items, describe) {
    const chosen = select.value;
    select.replaceChildren(el("option", { value: "" }, "— None —"));
    for (const item of items) select.append(el("option", { value: item.id }, describe(item)));
    if (chosen) setSelectValue(select, chosen);
  }

  /** Selects `id`, adding it when the list does not have it (a saved GUID
   * that is no longer in Creatio, or a contact outside the search). */
  function setSelectValue(select, id) {
    if (id && ![...select.options].some((o) => o.value === id)) {
      select.append(el("option", { value: id }, "Saved value (not in this list)"));
    }
    select.value = id || "";
    showGuid(select);
  }

  function showGuid(select) {
    const field = LOOKUP_FIELDS.find((f) => f[1] === select.id);
    const target = $(field[2]);
    target.textContent = select.value ? "GUID " + select.value : "Not set";
  }

  function selectSavedLookups() {
    const c = state.connection || {};
    for (const [name, selectId] of LOOKUP_FIELDS) setSelectValue($(selectId), c[name] || "");
  }

  async function loadLookups() {
    const box = $("lookups-result");
    showResult(box, "info", "Reading owners, groups and statuses from Creatio…");
    const instance = state.connection.instance_url;
    try {
      const [contacts, groups, statuses] = await Promise.all([
        api("GET", "/v1/creatio/lookups/contacts"),
        api("GET", "/v1/creatio/lookups/groups"),
        api("GET", "/v1/creatio/lookups/case-statuses"),
      ]);
      fillSelect($("owner-select"), contacts.items, (c) => c.name + (c.email ? " <" + c.email + ">" : ""));
      fillSelect($("group-select"), groups.items, (g) => g.name);
      fillSelect($("resolved-status-select"), statuses.items, (s) => s.name + (s.is_resolved ? " (resolved)" : s.is_final ? " (final)" : ""));
      state.lookupsLoadedFor = instance;
      selectSavedLookups();
      showResult(box);
    } catch (e) {
      showError(box, e, "The lists could not be read from Creatio");
    }
  }

  for (const [, selectId] of LOOKUP_FIELDS) {
    $(selectId).addEventListener("change", (event) => showGuid(event.target));
  }

  async function searchOwners() {
    const box = $("lookups-result");
    const term = $("owner-search").value.trim();
    try {
      const found = await api("GET", "/v1/creatio/lookups/contacts?search=" + encodeURIComponent(term));
      const select = $("owner-select");
      const chosen = select.value;
      fillSelect(select, found.items, (c) => c.name + (c.email ? " <" + c.email + ">" : ""));
      setSelectValue(select, chosen);
      showResult(box, "info", found.items.length + " contact(s) found" + (term ? " for \u201c" + term + "\u201d" : "") + ". Choose one in Default case owner.");
      select.focus();
    } catch (e) {
      showError(box, e, "Contact search failed");
    }
  }

  $("owner-search-button").addEventListener("click", () => busy($("owner-search-button"), searchOwners));
  $("owner-search").addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      busy($("owner-search-button"), searchOwners);
    }
  });

  /** The full Test & Save body (a first connection, or after disconnect). */
  function connectionBody() {
    const body = {
      instance_url: $("instance-url").value.trim(),
      client_id: $("client-id").value.trim(),
      client_secret: $("client-secret").value,
      create_case_only_on_handoff: $("handoff-only").checked,
      create_missing_contacts: $("create-contacts").checked,
      case_append_channels: appendChannels(),
    };
    const identity = $("identity-service-url").value.trim();
    if (identity) body.identity_service_url = identity;
    if (isConnected()) {
      for (const [name, selectId] of LOOKUP_FIELDS) if ($(selectId).value) body[name] = $(selectId).value;
    }
    return body;
  }

  /** Only what changed, for PATCH: absent keeps a value, null clears it. */
  function connectionChanges() {
    const c = state.connection;
    const changes = {};
    const text = (id) => $(id).value.trim();
    if (text("instance-url") !== (c.instance_url || "")) changes.instance_url = text("instance-url");
    if (text("client-id") !== (c.client_id || "")) changes.client_id = text("client-id");
    if ($("client-secret").value) changes.client_secret = $("client-secret").value;
    if (text("identity-service-url") !== (c.identity_service_url || "")) {
      changes.identity_service_url = text("identity-service-url") || null;
    }
    if ($("handoff-only").checked !== !!c.create_case_only_on_handoff) {
      changes.create_case_only_on_handoff = $("handoff-only").checked;
    }
    if ($("create-contacts").checked !== (c.create_missing_contacts !== false)) {
      changes.create_missing_contacts = $("create-contacts").checked;
    }
    const channels = appendChannels();
    if ([...channels].sort().join() !== [...(c.case_append_channels || [])].sort().join()) {
      changes.case_append_channels = channels;
    }
    if (state.lookupsLoadedFor) {
      for (const [name, selectId] of LOOKUP_FIELDS) {
        const value = $(selectId).value;
        if (value !== (c[name] || "")) changes[name] = value || null;
      }
    }
    return changes;
  }

  const FIELD_INPUTS = {
    instance_url: "instance-url",
    identity_service_url: "identity-service-url",
    client_id: "client-id",
    client_secret: "client-secret",
    default_owner_id: "owner-select",
    default_group_id: "group-select",
    resolved_status_id: "resolved-status-select",
    case_append_channels: "append-channels",
    create_missing_contacts: "create-contacts",
  };

  /** What each field is called on the page, for its errors. */
  const FIELD_LABELS = {
    instance_url: "Instance URL",
    identity_service_url: "Identity Service URL",
    client_id: "Client ID",
    client_secret: "Client Secret",
    default_owner_id: "Default case owner",
    default_group_id: "Default case group",
    resolved_status_id: "Resolved status",
    case_append_channels: "Channels",
    create_missing_contacts: "Create missing contacts",
    base_url: "Chatwoot URL",
    account_id: "Account ID",
    api_token: "API access token",
    webhook_secret: "Webhook secret",
    inbox_ids: "Inbox IDs",
    summary_attribute: "Summary attribute",
  };

  /** A field's error beside it, in words: "Instance URL is required. The
   * address you open Creatio at…" instead of the API's field names. */
  function fieldErrorText(f) {
    let message = String(f.message || "");
    for (const [name, label] of Object.entries(FIELD_LABELS)) message = message.split(name).join(label);
    message = message.charAt(0).toUpperCase() + message.slice(1);
    return clause(message) + "." + (f.hint ? " " + f.hint : "");
  }

  /** Marks the fields an error names, each with its message beside it
   * (a `.field-error` after the input, tied to it by aria-describedby);
   * clears the marks of the others. Returns how many it marked. */
  function markFields(inputs, error) {
    const fields = (error && error.body && error.body.fields) || [];
    let marked = 0;
    for (const [name, id] of Object.entries(inputs)) {
      const input = $(id);
      const box = $(id + "-error");
      const problems = fields.filter((f) => f.field === name || f.field.startsWith(name + "["));
      if (problems.length) {
        input.setAttribute("aria-invalid", "true");
        marked += 1;
      } else input.removeAttribute("aria-invalid");
      if (!box) continue;
      box.textContent = problems.map(fieldErrorText).join(" ");
      box.hidden = !problems.length;
      const described = (input.getAttribute("aria-describedby") || "").split(" ").filter((d) => d && d !== box.id);
      if (problems.length) described.unshift(box.id);
      input.setAttribute("aria-describedby", described.join(" "));
    }
    return marked;
  }

  function markInvalid(error) {
    return markFields(FIELD_INPUTS, error);
  }

  /** A save that failed: the fields it names marked, the first focused,
   * the check report shown (`showReport`), and one line in `box`. */
  function notSaved(box, form, inputs, error, showReport) {
    const marked = markFields(inputs, error);
    // A failed check's message already says nothing was saved.
    const report = error.body && error.body.report;
    if (report) showReport(report);
    if (marked) {
      showResult(box, "error", "Not saved: " + (marked === 1 ? "one field needs" : marked + " fields need") + " a change; each says what beside it.");
      const first = form.querySelector('[aria-invalid="true"]');
      if (first) first.focus();
    } else showError(box, error, report ? null : "Not saved");
  }

  function reportSummary(report) {
    const passed = report.checks.filter((c) => c.status === "pass").length;
    return passed + " of " + report.checks.length + " checks passed";
  }

  async function saveConnection() {
    const box = $("connection-result");
    const firstSave = !isConnected();
    let answer;
    try {
      if (firstSave) {
        showResult(box, "info", "Testing the connection to Creatio…");
        answer = await api("POST", "/v1/creatio/connection", connectionBody());
      } else {
        const changes = connectionChanges();
        if (!Object.keys(changes).length) {
          showResult(box, "info", "Nothing changed.", "Change a field, or use Re-test to run every check on the saved settings.");
          return;
        }
        showResult(box, "info", "Testing the change…");
        answer = await api("PATCH", "/v1/creatio/connection", changes);
      }
    } catch (e) {
      notSaved(box, $("connection-form"), FIELD_INPUTS, e, renderReport);
      return;
    }
    markInvalid(null);
    showResult($("lookups-result"));
    state.connection = answer.connection;
    if (answer.report) renderReport(answer.report);
    renderConnection();
    const webhook = answer.connection.webhook_url;
    const extra = webhook
      ? el("p", {}, "Webhook URL for Creatio's business processes: ", el("code", { id: "saved-webhook-url" }, webhook), " — see ", el("a", { href: "#webhook" }, "Webhook & delivery"), ".")
      : null;
    const summary = answer.report ? " " + reportSummary(answer.report) + "." : "";
    const pick = firstSave && !answer.connection.default_owner_id
      ? "Now pick the case defaults below (owner, group, resolved status: optional) and press Test & Save to keep them."
      : null;
    showResult(box, "ok", (firstSave ? "Connected: the connection is active." : "Saved.") + summary, pick, extra);
    if (pick) $("owner-search").focus();
  }

  $("connection-form").addEventListener("submit", (event) => {
    event.preventDefault();
    busy($("save-connection"), saveConnection);
  });

  $("retest").addEventListener("click", () =>
    busy($("retest"), async () => {
      const box = $("connection-result");
      showResult(box, "info", "Running every check on the saved settings…");
      try {
        const answer = await api("POST", "/v1/creatio/connection/test");
        renderReport(answer.report);
        state.connection = await api("GET", "/v1/creatio/connection");
        renderConnection();
        if (answer.report.ok) showResult(box, "ok", "Every required check passed; the connection is active. " + reportSummary(answer.report) + ".");
        else {
          const failed = answer.report.checks.find((c) => c.status === "fail");
          showResult(box, "error", "Check \u201c" + failed.name + "\u201d failed: " + failed.message, failed.hint);
        }
      } catch (e) {
        showError(box, e, "Re-test failed");
      }
    })
  );

  $("rotate-secret").addEventListener("click", () => {
    const input = $("client-secret");
    input.value = "";
    input.focus();
    showResult(
      $("connection-result"),
      "info",
      "Paste the new Client Secret from Creatio, then press Test & Save.",
      "The new secret is tested before it replaces the saved one; until then the saved one stays in use."
    );
  });

  $("disconnect").addEventListener("click", () => $("disconnect-dialog").showModal());

  $("disconnect-dialog").addEventListener("close", async () => {
    if ($("disconnect-dialog").returnValue !== "confirm") {
      $("disconnect").focus();
      return;
    }
    const box = $("connection-result");
    try {
      state.connection = await api("DELETE", "/v1/creatio/connection");
      renderConnection();
      renderReport(null);
      showResult(box, "ok", "Disconnected. Credentials were deleted and the webhook URL no longer works; Creatio was not touched.", "To connect again, enter the client secret and press Test & Save.");
    } catch (e) {
      showError(box, e, "Disconnect failed");
    }
    $("save-connection").focus();
  });

  // ---------------------------------------------------------------- webhook & delivery

  async function loadWebhookPanel() {
    const unavailable = $("webhook-unavailable");
    const url = state.connection && state.connection.webhook_url;
    $("webhook-card").hidden = !url;
    $("templates-card").hidden = !url;
    $("webhook-url").value = url || "";
    if (!url) {
      showResult(unavailable, "info", "There is no webhook URL yet.", "Connect Creatio first (Connection, Test & Save): the webhook URL and the process templates are created then.");
      $("templates").replaceChildren();
      $("template-notes").replaceChildren();
    } else {
      showResult(unavailable);
      loadTemplates();
    }
    loadDelivery();
    loadChatwoot();
  }

  // ---------------------------------------------------------------- chat platform: Chatwoot

  const CHATWOOT_INPUTS = {
    base_url: "chatwoot-base-url",
    account_id: "chatwoot-account-id",
    api_token: "chatwoot-token",
    webhook_secret: "chatwoot-secret",
    inbox_ids: "chatwoot-inboxes",
    handoff: "chatwoot-handoff",
    summary_attribute: "chatwoot-summary-attribute",
  };

  /** Shows the Chatwoot form or the delivery URL, as the choice says. */
  function showPlatform() {
    const chatwoot = $("platform-chatwoot").checked;
    $("chatwoot-form").hidden = !chatwoot;
    $("delivery-card").hidden = chatwoot;
    $("chatwoot-webhook").hidden = !(chatwoot && state.chatwoot);
    $("chatwoot-report").hidden = !chatwoot || !$("chatwoot-report").children.length;
  }

  for (const radio of document.querySelectorAll('input[name="platform"]')) {
    radio.addEventListener("change", showPlatform);
  }

  function renderChatwoot(c) {
    state.chatwoot = c;
    $("remove-chatwoot").hidden = !c;
    // While Chatwoot is connected the org cannot also have a delivery URL.
    $("platform-webhooks").disabled = !!c;
    $("platform-help").textContent = c
      ? "An org has one chat platform: disconnect Chatwoot to use a delivery URL instead."
      : "An org has one chat platform.";
    if (c) {
      $("platform-chatwoot").checked = true;
      $("chatwoot-base-url").value = c.base_url;
      $("chatwoot-account-id").value = c.account_id;
      $("chatwoot-token").value = "";
      $("chatwoot-token").placeholder = "saved: " + c.api_token;
      $("chatwoot-secret").value = "";
      $("chatwoot-secret").placeholder = c.webhook_secret_set ? "saved (leave empty to keep)" : "";
      $("chatwoot-inboxes").value = (c.inbox_ids || []).join(", ");
      $("chatwoot-handoff").value = c.handoff;
      $("chatwoot-agent-messages").checked = !!c.agent_messages;
      $("chatwoot-summary-attribute").value = c.summary_attribute || "";
      $("chatwoot-webhook-url").value = c.webhook_url;
      $("chatwoot-events").textContent =
        "Tick these events: " + c.events_to_tick.map(humanize).join(", ") + ".";
      renderChecks($("chatwoot-report"), c.last_check);
    } else {
      $("chatwoot-token").placeholder = "";
      $("chatwoot-secret").placeholder = "";
    }
    showPlatform();
  }

  function showChatwootReport(report) {
    renderChecks($("chatwoot-report"), report);
    $("chatwoot-report").hidden = false;
  }

  async function loadChatwoot() {
    try {
      renderChatwoot(await api("GET", "/v1/connectors/chatwoot"));
    } catch (e) {
      if (e.status === 404) renderChatwoot(null);
      else showError($("chatwoot-result"), e, "The Chatwoot settings could not be read");
    }
  }

  function chatwootBody() {
    const body = {
      base_url: $("chatwoot-base-url").value.trim(),
      account_id: Number($("chatwoot-account-id").value || 0),
      inbox_ids: $("chatwoot-inboxes")
        .value.split(/[\s,]+/)
        .filter(Boolean)
        .map(Number),
      handoff: $("chatwoot-handoff").value,
      agent_messages: $("chatwoot-agent-messages").checked,
      summary_attribute: $("chatwoot-summary-attribute").value.trim(),
    };
    const token = $("chatwoot-token").value.trim();
    if (token) body.api_token = token;
    const secret = $("chatwoot-secret").value.trim();
    if (secret) body.webhook_secret = secret;
    return body;
  }

  $("chatwoot-form").addEventListener("submit", (event) => {
    event.preventDefault();
    busy($("save-chatwoot"), async () => {
      const box = $("chatwoot-result");
      const body = chatwootBody();
      if (body.inbox_ids.some((id) => !Number.isInteger(id) || id <= 0)) {
        notSaved(
          box,
          $("chatwoot-form"),
          CHATWOOT_INPUTS,
          {
            body: {
              fields: [
                {
                  field: "inbox_ids",
                  message: "inbox IDs are numbers",
                  hint: "List them as Chatwoot's URL shows them (/settings/inboxes/<id>), separated by commas, e.g. 3, 7.",
                },
              ],
            },
          },
          null
        );
        return;
      }
      showResult(box, "info", "Testing the token and account with Chatwoot…");
      let answer;
      try {
        answer = await api("PUT", "/v1/connectors/chatwoot", body);
      } catch (e) {
        notSaved(box, $("chatwoot-form"), CHATWOOT_INPUTS, e, showChatwootReport);
        return;
      }
      markFields(CHATWOOT_INPUTS, null);
      renderChatwoot(answer.connector);
      showChatwootReport(answer.report);
      showResult(
        box,
        "ok",
        "Saved: " + reportSummary(answer.report) + ". Agents' replies and closures now go to Chatwoot.",
        "Paste the webhook URL below into Chatwoot and tick the events it lists."
      );
      loadDelivery();
    });
  });

  $("remove-chatwoot").addEventListener("click", async () => {
    if (!window.confirm("Disconnect Chatwoot? Its webhook URL stops working, and agents' replies wait, queued, until a chat platform is set again.")) return;
    const box = $("chatwoot-result");
    try {
      await api("DELETE", "/v1/connectors/chatwoot");
      renderChecks($("chatwoot-report"), null);
      renderChatwoot(null);
      showResult(box, "ok", "Chatwoot disconnected. Its webhook URL no longer works.");
      loadDelivery();
    } catch (e) {
      showError(box, e, "Not disconnected");
    }
  });

  async function loadTemplates() {
    try {
      const t = await api("GET", "/v1/creatio/process-templates");
      $("template-notes").replaceChildren(...t.notes.map((n) => el("li", {}, n)));
      $("templates").replaceChildren(...t.processes.map(renderProcess));
    } catch (e) {
      const box = el("div", { class: "result" });
      showError(box, e, "The process templates could not be read");
      $("templates").replaceChildren(box);
    }
  }

  function renderProcess(p) {
    const call = p.call_web_service;
    const body = JSON.stringify(call.body, null, 2);
    const bodyId = "template-body-" + p.key;
    return el(
      "article",
      { class: "template", id: "template-" + p.key, "aria-labelledby": "template-title-" + p.key },
      el("h4", { id: "template-title-" + p.key }, p.name),
      el(
        "dl",
        { class: "facts" },
        el("dt", {}, "Start signal"),
        el("dd", {}, p.signal.object + " — " + p.signal.event),
        el("dt", {}, "Filter"),
        el("dd", {}, p.signal.filter.join("; ")),
        el("dt", {}, "Call web service"),
        el("dd", {}, call.method + " ", el("code", {}, call.url)),
        el("dt", {}, "Content type"),
        el("dd", {}, call.content_type),
        el("dt", {}, "Timeout, retries"),
        el("dd", {}, call.response_timeout_ms + " ms, " + call.retries_on_failure + " retries on failure")
      ),
      el(
        "div",
        { class: "pre-head" },
        el("strong", { id: bodyId + "-label" }, "Request body"),
        el("button", { type: "button", class: "button small", "aria-label": "Copy the request body of " + p.name, onclick: (e) => copyText(body, e.target) }, "Copy")
      ),
      el("pre", { id: bodyId, "aria-labelledby": bodyId + "-label", tabindex: "0" }, body),
      el(
        "table",
        {},
        el("caption", { class: "visually-hidden" }, "Body parameters of " + p.name),
        el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Parameter"), el("th", { scope: "col" }, "Value"), el("th", { scope: "col" }, "Maps to"), el("th", { scope: "col" }, "Required"))),
        el(
          "tbody",
          {},
          call.body_parameters.map((b) => el("tr", {}, el("td", {}, el("code", {}, b.name)), el("td", {}, el("code", {}, b.value)), el("td", {}, b.source), el("td", {}, b.required ? "yes" : "no")))
        )
      )
    );
  }

  for (const button of document.querySelectorAll("[data-copy-from]")) {
    button.addEventListener("click", () => copyText($(button.dataset.copyFrom).value, button));
  }

  $("rotate-token").addEventListener("click", () =>
    busy($("rotate-token"), async () => {
      const box = $("webhook-result");
      const grace = Number($("grace-period").value);
      try {
        const answer = await api("POST", "/v1/creatio/webhook-token/rotate", { grace_period_secs: grace });
        state.connection = await api("GET", "/v1/creatio/connection");
        $("webhook-url").value = answer.webhook_url;
        loadTemplates();
        const until = answer.previous_url_valid_until;
        showResult(
          box,
          "ok",
          "New webhook URL created.",
          "Update the URL in both Creatio business processes" + (until ? "; the old URL works until " + new Date(until).toLocaleString() + "." : "; the old URL has stopped working.")
        );
      } catch (e) {
        showError(box, e, "The token was not rotated");
      }
    })
  );

  async function loadDelivery() {
    const help = $("delivery-state");
    try {
      const d = await api("GET", "/v1/delivery");
      $("delivery-url").value = d.url;
      const counts = Object.entries(d.deliveries || {})
        .map(([k, n]) => n + " " + k)
        .join(", ");
      help.textContent =
        (d.state === "enabled" ? "Enabled." : "Disabled: " + (d.disabled_reason || d.state) + ". Saving the URL enables it again.") +
        (counts ? " Deliveries: " + counts + "." : "");
      $("rotate-delivery-secret").hidden = false;
      $("remove-delivery").hidden = false;
    } catch (e) {
      if (e.status !== 404) {
        showError($("delivery-result"), e);
        return;
      }
      $("delivery-url").value = "";
      help.textContent = "Not set: agents' replies and closures wait until a delivery URL is saved.";
      $("rotate-delivery-secret").hidden = true;
      $("remove-delivery").hidden = true;
    }
  }

  function showSecretOnce(secret) {
    $("delivery-secret-value").value = secret;
    $("delivery-secret").hidden = false;
  }

  $("delivery-form").addEventListener("submit", (event) => {
    event.preventDefault();
    busy($("save-delivery"), async () => {
      const box = $("delivery-result");
      try {
        const d = await api("PUT", "/v1/delivery", { url: $("delivery-url").value.trim() });
        showSecretOnce(d.secret);
        showResult(box, "ok", "Saved. Deliveries go to " + d.url + ".", "Configure your receiver to verify signatures with the signing secret above.");
        loadDelivery();
      } catch (e) {
        showError(box, e, "Not saved");
      }
    });
  });

  $("rotate-delivery-secret").addEventListener("click", () =>
    busy($("rotate-delivery-secret"), async () => {
      const box = $("delivery-result");
      try {
        const answer = await api("POST", "/v1/delivery/secret/rotate");
        showSecretOnce(answer.secret);
        showResult(box, "ok", "New signing secret created.", answer.hint);
      } catch (e) {
        showError(box, e, "The secret was not rotated");
      }
    })
  );

  $("remove-delivery").addEventListener("click", async () => {
    if (!window.confirm("Remove the delivery URL? Agents' replies and closures wait, queued, until a URL is saved again.")) return;
    const box = $("delivery-result");
    try {
      await api("DELETE", "/v1/delivery");
      $("delivery-secret").hidden = true;
      showResult(box, "ok", "Removed. Deliveries wait until a URL is saved again.");
      loadDelivery();
    } catch (e) {
      showError(box, e, "Not removed");
    }
  });

  // ---------------------------------------------------------------- AI fields

  let aiRowCount = 0;

  function aiRow(field) {
    const n = ++aiRowCount;
    const id = (name) => "ai-" + n + "-" + name;
    const options = (field.options || []).map((o) => (typeof o === "string" ? o : o.name));
    const resolved = [];
    if (field.lookup) resolved.push("Lookup " + field.lookup + (field.options && field.options.length ? ": " + options.join(", ") : ""));
    if (field.max_length) resolved.push("Text, at most " + field.max_length + " characters");
    const row = el(
      "fieldset",
      { class: "ai-field", dataset: { row: String(n) } },
      el("legend", {}, field.title || field.field_name || "New field"),
      resolved.length ? el("p", { class: "resolved" }, resolved.join(" · ")) : null,
      el(
        "div",
        { class: "grid-3" },
        el("div", { class: "field" }, el("label", { for: id("name") }, "Creatio column"), el("input", { id: id("name"), type: "text", "data-key": "field_name", spellcheck: "false", autocomplete: "off", list: "case-columns", placeholder: "PriorityId", "aria-describedby": id("name-help"), onchange: (e) => columnPicked(row, e.target.value) }), el("p", { class: "help", id: id("name-help") }, "Pick from your Creatio's Case columns as you type.")),
        el("div", { class: "field" }, el("label", { for: id("title") }, "Display title"), el("input", { id: id("title"), type: "text", "data-key": "title", placeholder: "Priority" })),
        el(
          "div",
          { class: "field" },
          el("label", { for: id("type") }, "Type"),
          el("select", { id: id("type"), "data-key": "type" }, el("option", { value: "dropdown" }, "Dropdown"), el("option", { value: "text" }, "Text"))
        )
      ),
      el(
        "div",
        { class: "field" },
        el("label", { for: id("description") }, "AI description"),
        el("textarea", { id: id("description"), rows: "2", "data-key": "description", placeholder: "How the AI should choose, e.g. High when the customer cannot work." })
      ),
      el(
        "div",
        { class: "field" },
        el("label", { for: id("options") }, "Options ", el("span", { class: "optional" }, "dropdown only, comma separated")),
        el("input", { id: id("options"), type: "text", "data-key": "options", "aria-describedby": id("options-help") }),
        el("p", { class: "help", id: id("options-help") }, "Leave empty to take them from the description, one line per option (\"High if …\").")
      ),
      el(
        "div",
        { class: "field" },
        el("label", { for: id("max-length") }, "Max length ", el("span", { class: "optional" }, "text only, characters")),
        el("input", { id: id("max-length"), type: "number", min: "1", max: "100000", "data-key": "max_length", "aria-describedby": id("max-length-help") }),
        el("p", { class: "help", id: id("max-length-help") }, "The Creatio column's size: 50, 250 or 500. Creatio does not tell it, so it is 50 unless you set it; a longer value is cut.")
      ),
      el("div", { class: "actions" }, el("button", { type: "button", class: "button danger small", onclick: () => removeAiRow(row) }, "Remove " + (field.title || "field")))
    );
    row.querySelector('[data-key="field_name"]').value = field.field_name || "";
    row.querySelector('[data-key="title"]').value = field.title || "";
    row.querySelector('[data-key="type"]').value = field.type === "text" ? "text" : "dropdown";
    const description = row.querySelector('[data-key="description"]');
    description.value = field.description || "";
    // Tall enough for a dropdown's one line per option.
    description.rows = Math.min(8, Math.max(2, description.value.split("\n").length));
    row.querySelector('[data-key="options"]').value = options.join(", ");
    row.querySelector('[data-key="max_length"]').value = field.type === "text" && field.max_length ? String(field.max_length) : "";
    return row;
  }

  function removeAiRow(row) {
    const next = row.nextElementSibling || row.previousElementSibling;
    row.remove();
    announce("Field removed. Save fields to keep the change.");
    (next ? next.querySelector("input") : $("ai-add")).focus();
  }

  function renderAiFields(fields) {
    $("ai-field-list").replaceChildren(...fields.map(aiRow));
    if (!fields.length) $("ai-field-list").append(el("p", { class: "muted", id: "ai-none" }, "No AI fields yet. Add one to have the AI fill a case field at hand-off."));
  }

  /** The editor's fields as the API takes them. */
  function readAiFields() {
    return [...$("ai-field-list").querySelectorAll(".ai-field")].map((row) => {
      const value = (key) => row.querySelector('[data-key="' + key + '"]').value.trim();
      const field = { field_name: value("field_name"), title: value("title"), type: value("type"), description: value("description") };
      const options = value("options")
        .split(",")
        .map((o) => o.trim())
        .filter(Boolean);
      if (field.type === "dropdown" && options.length) field.options = options;
      const maxLength = value("max_length");
      if (field.type === "text" && maxLength) field.max_length = Number(maxLength);
      return field;
    });
  }

  /** The connected Creatio's Case columns (from $metadata), offered in
   * every "Creatio column" input through a datalist. */
  let caseColumns = [];

  async function loadColumns() {
    const list = $("case-columns");
    if (!isConnected()) {
      caseColumns = [];
      list.replaceChildren();
      return;
    }
    try {
      caseColumns = (await api("GET", "/v1/creatio/ai-fields/columns")).columns;
      list.replaceChildren(
        ...caseColumns.map((c) => el("option", { value: c.field_name }, c.type === "dropdown" ? "Dropdown: lookup " + c.lookup : "Text" + (c.max_length ? ", " + c.max_length + " characters" : "")))
      );
    } catch (e) {
      caseColumns = [];
      list.replaceChildren();
    }
  }

  /** A column picked: its type follows, so a lookup is a dropdown. */
  function columnPicked(row, name) {
    const c = caseColumns.find((col) => col.field_name === name.trim());
    if (!c) return;
    row.querySelector('[data-key="type"]').value = c.type;
    if (c.max_length && !row.querySelector('[data-key="max_length"]').value) row.querySelector('[data-key="max_length"]').value = c.max_length;
  }

  async function loadAiFields() {
    loadColumns();
    const box = $("ai-unavailable");
    try {
      const answer = await api("GET", "/v1/creatio/ai-fields");
      state.aiAvailable = true;
      showResult(box);
      $("ai-provider").textContent = "Provider: " + answer.provider;
      renderAiFields(answer.fields || []);
      // The fields are checked against the connected Creatio's Case
      // columns: without a connection they can be previewed, not saved.
      const connected = isConnected();
      for (const id of ["ai-add", "ai-save"]) $(id).disabled = !connected;
      if (!connected) {
        showResult(box, "info", "Connect Creatio first to change the AI fields.", "They are checked against your Creatio's Case columns when saved. The preview below works without a connection.");
      }
    } catch (e) {
      state.aiAvailable = false;
      $("ai-provider").textContent = "";
      showError(box, e, "AI fields could not be read");
      renderAiFields([]);
    }
  }

  $("ai-add").addEventListener("click", () => {
    const none = $("ai-none");
    if (none) none.remove();
    const row = aiRow({ type: "dropdown" });
    $("ai-field-list").append(row);
    row.querySelector("input").focus();
  });

  $("ai-save").addEventListener("click", () =>
    busy($("ai-save"), async () => {
      const box = $("ai-result");
      try {
        const answer = await api("PUT", "/v1/creatio/ai-fields", { fields: readAiFields() });
        renderAiFields(answer.fields || []);
        $("ai-provider").textContent = "Provider: " + answer.provider;
        showResult($("ai-unavailable"));
        showResult(box, "ok", "Saved " + (answer.fields || []).length + " AI field(s). They are filled at the next hand-off.");
      } catch (e) {
        showError(box, e, "Not saved");
      }
    })
  );

  $("ai-preview-form").addEventListener("submit", (event) => {
    event.preventDefault();
    busy($("ai-preview"), async () => {
      const box = $("ai-preview-result");
      const transcript = $("ai-transcript").value;
      const body = { transcript };
      const fields = readAiFields();
      if (fields.length) body.fields = fields;
      try {
        const answer = await api("POST", "/v1/creatio/ai-fields/preview", body);
        showResult(box, "ok", "Preview by the " + answer.provider + " provider (nothing was written to Creatio).", null, renderPreview(answer));
      } catch (e) {
        showError(box, e, "No preview");
      }
    });
  });

  function renderPreview(answer) {
    const facts = el("dl", { class: "facts" });
    if (answer.language) facts.append(el("dt", {}, "Language"), el("dd", {}, answer.language.name + " (" + answer.language.code + ", " + answer.language.source + ")"));
    if (answer.sentiment) facts.append(el("dt", {}, "Sentiment"), el("dd", {}, answer.sentiment.label + " (score " + answer.sentiment.score + ", " + answer.sentiment.source + ")"));
    const values = answer.values || [];
    const table = el(
      "table",
      { class: "values", id: "ai-preview-values" },
      el("caption", { class: "visually-hidden" }, "Values the AI would fill"),
      el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Field"), el("th", { scope: "col" }, "Value"), el("th", { scope: "col" }, "GUID"), el("th", { scope: "col" }, "Why"))),
      el(
        "tbody",
        {},
        values.map((v) =>
          el(
            "tr",
            { dataset: { field: v.field_name } },
            el("td", {}, v.title || v.field_name, el("span", { class: "sub" }, v.field_name)),
            el("td", {}, v.value === null ? el("em", {}, "left empty") : v.value),
            el("td", {}, v.id ? el("code", {}, v.id) : "—"),
            el("td", {}, v.reason || "")
          )
        )
      )
    );
    const warning = answer.warning ? el("div", { class: "result", id: "ai-preview-warning", "data-kind": "warn" }, el("p", { class: "message" }, answer.warning)) : null;
    return el("div", {}, warning, facts, values.length ? el("div", { class: "table-wrap" }, table) : el("p", { class: "muted" }, "No fields to fill."));
  }

  // ---------------------------------------------------------------- activity

  function startPolling() {
    stopPolling();
    state.timer = window.setInterval(() => {
      if ($("auto-refresh").checked && !document.hidden && state.key) refreshActivity();
    }, REFRESH_MS);
  }

  function stopPolling() {
    if (state.timer) window.clearInterval(state.timer);
    state.timer = null;
  }

  async function refreshActivity() {
    await Promise.all([loadConversations(), loadDeliveries(), refreshConcurrency(), state.openConversation ? openConversation(state.openConversation, false) : null, state.openDelivery ? openDelivery(state.openDelivery, false) : null]);
    $("refreshed-at").textContent = "Updated " + new Date().toLocaleTimeString() + ".";
  }

  /** Replaces a table body only when its data changed, keeping the focused
   * control focused (auto-refresh must not pull focus from under a keyboard user). */
  function replaceRows(tbody, key, data, rows) {
    // Unchanged data is drawn again every half minute, for the "… ago" times.
    const signature = JSON.stringify(data) + Math.floor(Date.now() / 30000);
    if (state.lastSignature[key] === signature) return;
    state.lastSignature[key] = signature;
    const focused = document.activeElement && tbody.contains(document.activeElement) ? document.activeElement.dataset.focusKey : null;
    tbody.replaceChildren(...rows);
    if (focused) {
      const again = tbody.querySelector('[data-focus-key="' + CSS.escape(focused) + '"]');
      if (again) again.focus();
    }
  }

  /** The list's query: the state filter and the search, as asked. */
  function conversationsQuery() {
    const filter = $("conversation-state").value;
    const q = $("conversation-search").value.trim();
    return "/v1/conversations?limit=50" + (filter ? "&state=" + encodeURIComponent(filter) : "") + (q ? "&q=" + encodeURIComponent(q) : "");
  }

  /** Pages shown after the first ("Show more"): kept while the query is
   * the same; the first page is read again on each refresh. */
  const morePages = { query: null, rows: [], cursor: null };

  async function loadConversations() {
    const box = $("conversations-result");
    const query = conversationsQuery();
    if (morePages.query !== query) Object.assign(morePages, { query, rows: [], cursor: null });
    try {
      const answer = await api("GET", query);
      showResult(box);
      const list = answer.conversations.concat(morePages.rows.filter((r) => !answer.conversations.some((c) => c.id === r.id)));
      const cursor = morePages.rows.length ? morePages.cursor : answer.next_cursor;
      $("conversations-more").hidden = !cursor;
      $("conversations-more").dataset.cursor = cursor || "";
      const searching = $("conversation-search").value.trim();
      $("conversations-empty").textContent = searching
        ? "No conversation matches \u201c" + searching + "\u201d. Search by a conversation id or its beginning, a case number, or an e-mail address."
        : CONVERSATIONS_EMPTY;
      $("conversations-empty").hidden = list.length > 0;
      replaceRows($("conversations").tBodies[0], "conversations", list, list.map(conversationRow));
    } catch (e) {
      // Not "No conversations yet" under an error: nothing is known.
      $("conversations-empty").hidden = true;
      showError(box, e, "Conversations could not be read");
    }
  }

  function conversationRow(c) {
    const pending = c.jobs.open ? c.jobs.open + " queued" : null;
    const dead = c.jobs.dead ? c.jobs.dead + " failed" : null;
    return el(
      "tr",
      { dataset: { conversation: c.id } },
      el(
        "td",
        {},
        el("button", { type: "button", class: "link", dataset: { focusKey: "conversation:" + c.id }, onclick: () => openConversation(c.id, true) }, c.id),
        c.contact_name ? el("span", { class: "sub" }, c.contact_name) : null
      ),
      el("td", {}, c.channel),
      el(
        "td",
        { class: "case-number" },
        c.case_number || (c.case_id ? "created" : el("span", { class: "sub" }, c.mode === "handoff_only" && c.state === "open" ? "at hand-off" : "not yet"))
      ),
      el("td", {}, badge(c.state)),
      el("td", { class: "sync" }, badge(c.sync), pending || dead ? el("span", { class: "sub" }, [pending, dead].filter(Boolean).join(", ")) : null),
      el("td", {}, c.messages.written + " of " + c.messages.received),
      el("td", {}, when(c.updated_at), c.last_event ? el("span", { class: "sub" }, c.last_event) : null)
    );
  }

  async function openConversation(id, moveFocus) {
    const detail = $("conversation-detail");
    try {
      const c = await api("GET", "/v1/conversations/" + encodeURIComponent(id));
      state.openConversation = id;
      const signature = JSON.stringify(c);
      if (state.lastSignature.conversation !== signature) {
        state.lastSignature.conversation = signature;
        $("conversation-detail-title").textContent = "Conversation " + c.id;
        const facts = [
          ["Case number", c.case.number || "—"],
          ["Case id", c.case.created ? c.case.id : "not created yet"],
          ["State", humanize(c.state)],
          ["Mode", c.mode === "handoff_only" ? "Case created at hand-off" : "Case created with the first message"],
          ["Messages", c.messages.written + " of " + c.messages.received + " in Creatio"],
          ["Jobs", Object.entries(c.jobs).map(([k, n]) => n + " " + k).join(", ") || "none"],
        ];
        $("conversation-facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
        const jobs = c.open_jobs || [];
        $("conversation-jobs-box").hidden = jobs.length === 0;
        $("conversation-jobs").replaceChildren(...jobs.map((j) => jobItem(c.id, j)));
        $("conversation-timeline").replaceChildren(
          ...c.timeline.map((t) => el("li", {}, when(t.at), el("span", { class: "kind" }, t.kind), t.summary, t.kind !== "webhook" && t.attempts > 1 ? " (attempt " + t.attempts + ")" : ""))
        );
      }
      detail.hidden = false;
      if (moveFocus) detail.focus();
    } catch (e) {
      showError($("conversations-result"), e, "The conversation could not be read");
    }
  }

  /** A job not done: queued, running, or dead (with Retry, unless a later
   * success already did its work). */
  function jobItem(conversationId, j) {
    const label = j.moot ? "Done by a later job" : j.state === "dead" ? "Failed" : j.state === "running" ? "Running" : "Queued";
    const retry = j.state === "dead" && !j.moot
      ? el("button", { type: "button", class: "button small", dataset: { job: j.id }, "aria-label": "Retry " + j.kind + " job " + j.seq, onclick: (e) => retryJob(conversationId, j.id, e.target) }, "Retry")
      : null;
    return el(
      "li",
      { dataset: { job: j.id, state: j.state, moot: String(!!j.moot) } },
      badge(j.moot ? "done" : j.state === "dead" ? "failed" : j.state, label),
      " " + humanize(j.kind) + " #" + j.seq + (j.attempts ? " · " + j.attempts + (j.attempts === 1 ? " attempt" : " attempts") : ""),
      j.last_error ? el("span", { class: "error-text" }, j.last_error) : null,
      retry
    );
  }

  async function retryJob(conversationId, id, button) {
    const box = $("conversation-jobs-result");
    await busy(button, async () => {
      try {
        const answer = await api("POST", "/v1/jobs/" + encodeURIComponent(id) + "/retry");
        showResult(box, answer.warning ? "warn" : "ok", "Queued again; it runs now, in its place in the conversation.", answer.warning);
      } catch (e) {
        showError(box, e, "Not retried");
      }
    });
    for (const delay of [300, 1000, 2500]) window.setTimeout(() => state.key && refreshActivity(), delay);
  }

  /** The recovery time as RFC 3339, or null with the field flagged. */
  function recoverSince() {
    const input = $("recover-since");
    const at = input.value ? new Date(input.value) : null;
    if (!at || isNaN(at.getTime())) {
      showResult($("recover-result"), "error", "Pick the time since when failures are recovered.", "Usually just before the problem began.");
      input.setAttribute("aria-invalid", "true");
      input.focus();
      return null;
    }
    input.removeAttribute("aria-invalid");
    return at.toISOString();
  }

  $("retry-dead-jobs").addEventListener("click", (e) => {
    const since = recoverSince();
    if (!since) return;
    busy(e.target, async () => {
      try {
        const a = await api("POST", "/v1/jobs/retry", { state: "dead", since });
        const moot = a.moot_left ? " " + a.moot_left + " left alone: a later success did their work." : "";
        showResult($("recover-result"), a.warning ? "warn" : "ok", a.retried + " dead " + (a.retried === 1 ? "job" : "jobs") + " of " + a.conversations + " " + (a.conversations === 1 ? "conversation" : "conversations") + " queued again." + moot, a.warning);
      } catch (err) {
        showError($("recover-result"), err, "Not retried");
      }
      refreshActivity();
    });
  });

  $("recover-deliveries").addEventListener("click", (e) => {
    const since = recoverSince();
    if (!since) return;
    busy(e.target, async () => {
      try {
        const a = await api("POST", "/v1/deliveries/recover", { since });
        showResult($("recover-result"), a.warning ? "warn" : "ok", a.recovered + " dead " + (a.recovered === 1 ? "delivery" : "deliveries") + " queued again.", a.warning);
      } catch (err) {
        showError($("recover-result"), err, "Not recovered");
      }
      refreshActivity();
    });
  });

  $("conversation-close").addEventListener("click", () => {
    const id = state.openConversation;
    state.openConversation = null;
    state.lastSignature.conversation = null;
    $("conversation-detail").hidden = true;
    const back = id && document.querySelector('[data-focus-key="conversation:' + CSS.escape(id) + '"]');
    if (back) back.focus();
  });

  async function loadDeliveries() {
    const box = $("deliveries-result");
    const filter = $("delivery-filter").value;
    try {
      const answer = await api("GET", "/v1/deliveries?limit=50" + (filter ? "&status=" + encodeURIComponent(filter) : ""));
      // A read error goes once the list is read again; a replay's or a
      // retry's outcome stays.
      if (box.dataset.kind === "error") showResult(box);
      const list = answer.deliveries;
      $("deliveries-empty").hidden = list.length > 0;
      $("deliveries-empty").textContent = filter === "dead" ? "No dead letters." : "No deliveries yet.";
      replaceRows($("deliveries").tBodies[0], "deliveries", list, list.map(deliveryRow));
    } catch (e) {
      $("deliveries-empty").hidden = true;
      showError(box, e, "Deliveries could not be read");
    }
  }

  function deliveryRow(d) {
    const answerText = d.last_status ? "HTTP " + d.last_status : d.last_error ? "no answer" : "—";
    const canReplay = d.state === "dead" || d.state === "delivered";
    return el(
      "tr",
      { dataset: { delivery: d.id, state: d.state } },
      el("td", {}, d.type, el("span", { class: "sub" }, d.id)),
      el("td", {}, d.conversation_id || "—"),
      el("td", { class: "state" }, badge(d.state, d.state === "dead" ? "Dead letter" : null)),
      el("td", {}, String(d.attempts)),
      el("td", {}, answerText, d.last_error ? el("span", { class: "error-text" }, d.last_error) : null),
      el("td", {}, when(d.updated_at)),
      el(
        "td",
        { class: "row-actions" },
        el("button", { type: "button", class: "button small", dataset: { focusKey: "details:" + d.id }, "aria-label": "Attempts of delivery " + d.id, onclick: () => openDelivery(d.id, true) }, "Attempts"),
        canReplay
          ? el("button", { type: "button", class: "button small replay", dataset: { focusKey: "replay:" + d.id }, "aria-label": "Replay delivery " + d.id, onclick: (e) => replay(d.id, e.target) }, "Replay")
          : null,
        d.state === "pending"
          ? el("button", { type: "button", class: "button small retry-now", dataset: { focusKey: "retry:" + d.id }, "aria-label": "Send delivery " + d.id + " now", onclick: (e) => retryDelivery(d.id, e.target) }, "Retry now")
          : null
      )
    );
  }

  async function retryDelivery(id, button) {
    const box = $("deliveries-result");
    await busy(button, async () => {
      try {
        const a = await api("POST", "/v1/deliveries/" + encodeURIComponent(id) + "/retry");
        const earlier = a.earlier ? " " + a.earlier + " earlier " + (a.earlier === 1 ? "delivery" : "deliveries") + " of its conversation go first." : "";
        showResult(box, a.warning ? "warn" : "ok", "Sending " + id + " now." + earlier, a.warning);
      } catch (e) {
        showError(box, e, "Not retried");
      }
    });
    for (const delay of [300, 1000, 2500]) window.setTimeout(() => state.key && refreshActivity(), delay);
  }

  async function replay(id, button) {
    const box = $("deliveries-result");
    await busy(button, async () => {
      try {
        const answer = await api("POST", "/v1/deliveries/" + encodeURIComponent(id) + "/replay");
        showResult(box, answer.warning ? "warn" : "ok", "Replay queued for " + id + " (same webhook-id; the receiver can de-duplicate it).", answer.warning);
      } catch (e) {
        showError(box, e, "Not replayed");
      }
    });
    // The sender picks it up at once; show the outcome without waiting for the next poll.
    for (const delay of [300, 1000, 2500]) window.setTimeout(() => state.key && refreshActivity(), delay);
  }

  async function openDelivery(id, moveFocus) {
    const detail = $("delivery-detail");
    try {
      const d = await api("GET", "/v1/deliveries/" + encodeURIComponent(id));
      state.openDelivery = id;
      const signature = JSON.stringify(d);
      if (state.lastSignature.delivery !== signature) {
        state.lastSignature.delivery = signature;
        $("delivery-detail-title").textContent = "Delivery " + d.id;
        const facts = [
          ["Type", d.type],
          ["Conversation", d.conversation_id || "—"],
          ["Status", humanize(d.state)],
          ["Attempts", String(d.attempts)],
          ["Next attempt", d.next_attempt_at ? new Date(d.next_attempt_at).toLocaleString() : "—"],
          ["Delivered", d.delivered_at ? new Date(d.delivered_at).toLocaleString() : "—"],
        ];
        $("delivery-facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
        $("delivery-attempts").replaceChildren(
          ...d.attempt_log.map((a) =>
            el("li", {}, when(a.at), el("span", { class: "kind" }, a.status ? "HTTP " + a.status : "no answer"), a.latency_ms + " ms", a.error ? " — " + a.error : "", a.response ? el("span", { class: "sub" }, a.response) : null)
          )
        );
        if (!d.attempt_log.length) $("delivery-attempts").append(el("li", {}, "No attempt yet."));
      }
      detail.hidden = false;
      if (moveFocus) detail.focus();
    } catch (e) {
      showError($("deliveries-result"), e, "The delivery could not be read");
    }
  }

  $("delivery-close").addEventListener("click", () => {
    const id = state.openDelivery;
    state.openDelivery = null;
    state.lastSignature.delivery = null;
    $("delivery-detail").hidden = true;
    const back = id && document.querySelector('[data-focus-key="details:' + CSS.escape(id) + '"]');
    if (back) back.focus();
  });

  $("refresh").addEventListener("click", () => busy($("refresh"), refreshActivity));
  $("conversation-state").addEventListener("change", loadConversations);
  $("conversation-search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    busy($("conversation-search-button"), loadConversations);
  });
  $("conversations-more").addEventListener("click", () =>
    busy($("conversations-more"), async () => {
      const query = conversationsQuery();
      try {
        const answer = await api("GET", query + "&cursor=" + encodeURIComponent($("conversations-more").dataset.cursor));
        if (morePages.query !== query) Object.assign(morePages, { query, rows: [], cursor: null });
        morePages.rows = morePages.rows.concat(answer.conversations);
        morePages.cursor = answer.next_cursor;
        await loadConversations();
      } catch (e) {
        showError($("conversations-result"), e, "More conversations could not be read");
      }
    })
  );
  $("delivery-filter").addEventListener("change", loadDeliveries);
  $("auto-refresh").addEventListener("change", () => announce($("auto-refresh").checked ? "Refreshing every 5 seconds." : "Automatic refresh off."));

  // ---------------------------------------------------------------- API keys

  const ROLE_LABELS = { admin: "Admin", ingest: "Ingest" };

  async function loadKeys() {
    const box = $("keys-result");
    try {
      const answer = await api("GET", "/v1/api-keys");
      if (box.dataset.kind === "error") showResult(box);
      const keys = answer.api_keys.slice().sort((a, b) => (a.created_at < b.created_at ? 1 : -1));
      const signedInWith = state.key.slice(0, keys.length ? keys[0].prefix.length : 0);
      $("keys").tBodies[0].replaceChildren(...keys.map((k) => keyRow(k, k.prefix === signedInWith)));
    } catch (e) {
      showError(box, e, "The keys could not be read");
    }
  }

  function keyRow(k, mine) {
    const name = k.name || "(no name)";
    return el(
      "tr",
      { dataset: { key: k.id } },
      el("td", {}, name, mine ? el("span", { class: "sub" }, "this page is signed in with it") : null),
      el("td", {}, el("span", { class: "pill" }, ROLE_LABELS[k.role] || k.role)),
      el("td", {}, el("code", {}, k.prefix + "…")),
      el("td", { title: k.created_at }, when(k.created_at)),
      el(
        "td",
        { class: "row-actions" },
        el("button", { type: "button", class: "button small danger", "aria-label": "Revoke key " + name + " (" + k.prefix + "…)", onclick: () => askRevoke(k, mine) }, "Revoke…")
      )
    );
  }

  let revoking = null;

  function askRevoke(k, mine) {
    revoking = k;
    $("revoke-text").textContent = "Requests with " + (k.name ? "“" + k.name + "”" : "this key") + " (" + k.prefix + "…, " + (ROLE_LABELS[k.role] || k.role).toLowerCase() + ") are refused from now on; this cannot be undone." +
      (mine ? " This page is signed in with it: you will be signed out." : "");
    $("revoke-dialog").showModal();
  }

  $("revoke-dialog").addEventListener("close", async () => {
    const k = revoking;
    revoking = null;
    if (!k || $("revoke-dialog").returnValue !== "confirm") return;
    const box = $("key-result");
    try {
      await api("DELETE", "/v1/api-keys/" + encodeURIComponent(k.id));
      // The list first: when the message shows, the key is gone from it.
      await loadKeys();
      showResult(box, "ok", "Revoked " + (k.name ? "“" + k.name + "”" : k.prefix + "…") + ": requests with it are refused now.");
    } catch (e) {
      if (state.signedIn) showError(box, e, "Not revoked");
    }
  });

  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    busy($("create-key"), async () => {
      const box = $("key-result");
      const body = { role: $("key-role").value };
      const name = $("key-name").value.trim();
      if (name) body.name = name;
      $("new-key").hidden = true;
      $("new-key-value").value = "";
      try {
        const k = await api("POST", "/v1/api-keys", body);
        markFields({ name: "key-name" }, null);
        $("new-key-value").value = k.key;
        $("new-key").hidden = false;
        $("key-name").value = "";
        showResult(box, "ok", "Created " + (ROLE_LABELS[k.role] || k.role).toLowerCase() + " key " + (k.name ? "“" + k.name + "”" : k.prefix + "…") + ".", k.note);
        $("new-key-value").focus();
        $("new-key-value").select();
        await loadKeys();
      } catch (e) {
        if (markFields({ name: "key-name" }, e)) showResult(box, "error", "Not created: the name needs a change.");
        else showError(box, e, "Not created");
      }
    });
  });

  // ---------------------------------------------------------------- start

  const saved = sessionStorage.getItem(KEY_STORAGE);
  if (saved) {
    signIn(saved).catch((e) => {
      sessionStorage.removeItem(KEY_STORAGE);
      showError($("sign-in-result"), e, "Please sign in again");
    });
  } else {
    $("api-key").focus();
  }
})();
