"use strict";
// Billy Review: a SMART app in which a coder checks the draft Claim the pipeline made from an
// encounter's transcript, corrects it and approves it. Plain JavaScript, no dependencies.
//
// SMART: public client, authorization code with PKCE S256. The PKCE verifier and state wait in
// sessionStorage for the redirect (nothing else is stored there, and it is removed at once); the
// tokens live in memory only, and the code is wiped from the address bar before it is exchanged.
// Nothing about the patient ever goes into the URL or any storage.
(function () {
  const AUTH_KEY = "billy-review-pkce";
  const ICD = "http://hl7.org/fhir/sid/icd-10-cm";
  const CPT = "http://www.ama-assn.org/go/cpt";
  const HCPCS = "urn:oid:2.16.840.1.113883.6.285";
  const EVIDENCE = "https://iambilly.github.io/billy/fhir/StructureDefinition/evidence";
  const CONFIDENCE = "https://iambilly.github.io/billy/fhir/StructureDefinition/coder-confidence";
  const FEES = "urn:billy:fee-schedule";
  const REVIEW_BELOW = 0.7;
  const POLL_MS = 2000;
  const SYSTEMS = { icd10cm: ICD, hcpcs: HCPCS, cpt: CPT };

  const $ = (sel, root) => (root || document).querySelector(sel);
  const S = {
    cfg: null, token: null, fhirUser: "", user: "", patientId: "", encounterId: "",
    claim: null, version: "", original: null, task: null, tasks: [], text: [], docRef: "",
    keys: new WeakMap(), nextKey: 1, accepted: new Set(), selected: "", displays: new Map(),
    poll: null, busy: false,
  };

  // ---- helpers ----
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? "" : v);
    }
    for (const c of kids.flat()) if (c !== null && c !== undefined) e.append(c);
    return e;
  }
  function b64url(bytes) {
    let s = "";
    for (const b of new Uint8Array(bytes)) s += String.fromCharCode(b);
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function random(n) { return b64url(crypto.getRandomValues(new Uint8Array(n))); }
  function say(text) { $("#message").textContent = text; }
  function fail(err) {
    $("#main").dataset.state = "error";
    say("Error: " + (err && err.message ? err.message : String(err)));
  }
  function keyOf(o) {
    if (!S.keys.has(o)) S.keys.set(o, "k" + S.nextKey++);
    return S.keys.get(o);
  }
  const clone = (o) => JSON.parse(JSON.stringify(o));
  function money(m) {
    if (!m || typeof m.value !== "number") return "";
    return new Intl.NumberFormat("en-US", { style: "currency", currency: m.currency || "USD" }).format(m.value);
  }
  function codingOf(cc) { return (cc && cc.coding && cc.coding[0]) || {}; }
  function dxCoding(d) { return codingOf(d.diagnosisCodeableConcept); }
  function itemCoding(it) { return codingOf(it.productOrService); }
  function isEM(code) { return /^99(2[0-9][0-9]|3[0-9][0-9]|4[0-9][0-9])$/.test(code || ""); }
  function evidenceOf(o) {
    const out = [];
    for (const x of o.extension || []) {
      if (x.url !== EVIDENCE) continue;
      const p = {};
      for (const part of x.extension || []) p[part.url] = part.valueString ?? part.valueInteger ?? (part.valueReference && part.valueReference.reference);
      if (typeof p.start === "number" && typeof p.end === "number") out.push(p);
    }
    return out;
  }
  function confidenceOf(o) {
    const x = (o.extension || []).find((e) => e.url === CONFIDENCE);
    return x ? Number(x.valueDecimal) : null;
  }

  // ---- SMART ----
  async function discover(iss) {
    const r = await fetch(iss.replace(/\/$/, "") + "/.well-known/smart-configuration", { headers: { Accept: "application/json" } });
    if (!r.ok) throw new Error("the server's SMART configuration is unavailable (" + r.status + ")");
    return r.json();
  }
  function redirectURI() { return location.origin + location.pathname; }

  async function authorize(params) {
    const standalone = !params.has("launch");
    const iss = params.get("iss") || S.cfg.fhirBase;
    // Tokens go only to the server that serves the app: an iss from elsewhere is refused.
    if (iss.replace(/\/$/, "") !== S.cfg.fhirBase.replace(/\/$/, "")) throw new Error("this app works only with " + S.cfg.fhirBase);
    const conf = await discover(iss);
    if (!(conf.code_challenge_methods_supported || []).includes("S256")) throw new Error("the server does not offer PKCE S256");
    const verifier = random(48);
    const challenge = b64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
    const state = random(24);
    sessionStorage.setItem(AUTH_KEY, JSON.stringify({ state, verifier, iss, token: conf.token_endpoint }));
    const q = new URLSearchParams({
      response_type: "code", client_id: S.cfg.clientId, redirect_uri: redirectURI(),
      scope: (standalone ? "launch/patient " : "launch ") + S.cfg.scope, state, aud: iss,
      code_challenge: challenge, code_challenge_method: "S256",
    });
    if (!standalone) q.set("launch", params.get("launch"));
    location.assign(conf.authorization_endpoint + "?" + q.toString());
  }

  async function finish(params) {
    const saved = JSON.parse(sessionStorage.getItem(AUTH_KEY) || "null");
    sessionStorage.removeItem(AUTH_KEY);
    history.replaceState(null, "", location.pathname); // the code and state leave the address bar
    if (params.get("error")) throw new Error("authorization: " + params.get("error") + (params.get("error_description") ? " (" + params.get("error_description") + ")" : ""));
    if (!saved || saved.state !== params.get("state")) throw new Error("this sign-in was not started here (state mismatch): launch the app again");
    const r = await fetch(saved.token, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded", Accept: "application/json" },
      body: new URLSearchParams({ grant_type: "authorization_code", code: params.get("code"), redirect_uri: redirectURI(),
        client_id: S.cfg.clientId, code_verifier: saved.verifier }),
    });
    const tr = await r.json().catch(() => ({}));
    if (!r.ok || !tr.access_token) throw new Error("token: " + (tr.error_description || tr.error || r.status));
    S.token = tr.access_token;
    S.patientId = tr.patient || "";
    S.encounterId = tr.encounter || "";
    if (tr.id_token) {
      try {
        const c = JSON.parse(atob(tr.id_token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
        S.fhirUser = c.fhirUser || "";
        S.user = c.sub || "";
      } catch { /* no id token claims: the Provenance names the user as the token does */ }
    }
  }

  // ---- FHIR ----
  async function fhir(path, opts) {
    opts = opts || {};
    const headers = { Authorization: "Bearer " + S.token, Accept: "application/fhir+json" };
    if (opts.body) headers["Content-Type"] = "application/fhir+json";
    if (opts.ifMatch) headers["If-Match"] = opts.ifMatch;
    const r = await fetch(S.cfg.fhirBase.replace(/\/$/, "") + "/" + path, { method: opts.method || "GET", headers,
      body: opts.body ? JSON.stringify(opts.body) : undefined, signal: opts.signal });
    const body = await r.json().catch(() => null);
    if (r.status === 401) {
      clearTimeout(S.poll);
      const e = new Error("your session has ended (tokens live only as long as this page and at most an hour): launch the app again");
      e.status = 401;
      throw e;
    }
    if (!r.ok && !(opts.allow || []).includes(r.status)) {
      const diag = body && body.issue && body.issue[0] && (body.issue[0].diagnostics || body.issue[0].code);
      const e = new Error(path.split("?")[0] + ": " + r.status + (diag ? " " + diag : ""));
      e.status = r.status;
      throw e;
    }
    return { status: r.status, etag: r.headers.get("ETag"), body };
  }
  async function search(q) {
    const r = await fhir(q);
    return ((r.body && r.body.entry) || []).filter((e) => !e.search || e.search.mode !== "include").map((e) => e.resource);
  }

  // ---- loading ----
  async function loadPatient() {
    if (!S.patientId) throw new Error("the launch gave no patient");
    const p = (await fhir("Patient/" + encodeURIComponent(S.patientId))).body;
    const n = (p.name || []).find((x) => x.use === "official") || (p.name || [])[0] || {};
    const name = n.text || [...(n.given || []), n.family].filter(Boolean).join(" ") || "Patient";
    const box = $("#patient");
    box.replaceChildren(el("strong", { text: name }), " ", el("span", { text: [p.birthDate && "born " + p.birthDate, p.gender].filter(Boolean).join(", ") }));
  }

  async function loadEncounter() {
    const tasks = await search("Task?encounter=" + encodeURIComponent("Encounter/" + S.encounterId) + "&_count=50");
    tasks.sort((a, b) => String(a.authoredOn).localeCompare(String(b.authoredOn)));
    S.tasks = tasks;
    renderTasks();
    const coding = tasks.filter((t) => codingOf(t.code).code === "code");
    const done = coding.reverse().find((t) => (t.output || []).some((o) => codingOf(o.type).code === "claim"));
    const working = tasks.some((t) => !["completed", "failed", "cancelled", "rejected", "entered-in-error"].includes(t.status));
    if (done && !S.claim) {
      const ref = done.output.find((o) => codingOf(o.type).code === "claim").valueReference.reference;
      await loadClaim(ref, done);
    }
    if (!S.claim) {
      say(tasks.length ? "The encounter is still being processed: the claim appears here when coding completes." :
        "No recording or transcript of this encounter has reached Billy yet.");
      $("#main").dataset.state = "waiting";
    }
    clearTimeout(S.poll);
    if (working || !S.claim) S.poll = setTimeout(() => loadEncounter().catch(fail), POLL_MS);
  }

  async function chooseClaim() {
    const claims = await search("Claim?patient=" + encodeURIComponent("Patient/" + S.patientId) + "&status=draft&_count=50");
    const list = $("#claims");
    list.replaceChildren();
    for (const c of claims) {
      const dx = (c.diagnosis || []).map((d) => dxCoding(d).code).join(", ");
      list.append(el("li", {}, el("button", { type: "button", onclick: () => openClaim(c.id).catch(fail),
        text: "Draft claim of " + ((c.billablePeriod && c.billablePeriod.start) || c.created || "?") + (dx ? " — " + dx : "") })));
    }
    $("#choose").hidden = false;
    say(claims.length ? "Choose a claim to review." : "This patient has no draft claim.");
    $("#main").dataset.state = "choose";
  }

  async function openClaim(id) {
    performance.mark("billy-review-open");
    $("#choose").hidden = true;
    // The coding run that made a draft Claim has the Claim's id.
    const t = await fhir("Task/" + encodeURIComponent(id), { allow: [403, 404, 410] }).catch(() => null);
    await loadClaim("Claim/" + id, t && t.status === 200 ? t.body : null);
  }

  async function loadClaim(ref, task) {
    const r = await fhir(ref);
    S.claim = r.body;
    S.version = S.claim.meta.versionId;
    S.original = clone(S.claim);
    S.task = task || S.task;
    S.accepted = new Set();
    $("#conflict").hidden = true;
    const docRef = firstSource() || (S.task && S.task.focus && S.task.focus.reference) || "";
    if (docRef && docRef !== S.docRef) {
      S.docRef = docRef;
      S.text = Array.from(await transcriptOf(docRef));
    }
    await Promise.all(S.claim.item ? S.claim.item.map((it) => describe(itemCoding(it))) : []);
    render();
    $("#review").hidden = false;
    $("#main").dataset.state = "ready";
    say(S.claim.status === "draft" ? "Review the codes against the transcript, then approve." : "This claim is " + S.claim.status + ".");
    performance.mark("billy-review-ready");
  }

  function firstSource() {
    for (const o of [...(S.claim.diagnosis || []), ...(S.claim.item || [])]) {
      for (const e of evidenceOf(o)) if (e.source) return e.source;
    }
    return "";
  }

  async function transcriptOf(ref) {
    const doc = (await fhir(ref)).body;
    for (const c of doc.content || []) {
      const a = c.attachment || {};
      if (!String(a.contentType || "").startsWith("text/plain")) continue;
      let data = a.data;
      if (!data && /^Binary\//.test(a.url || "")) data = (await fhir(a.url)).body.data;
      if (data) return new TextDecoder().decode(Uint8Array.from(atob(data), (ch) => ch.charCodeAt(0)));
    }
    return "";
  }

  // describe finds a code's description when the Claim has none: ICD-10-CM and HCPCS from the
  // imported code sets; CPT only when a licensed CPT file was imported.
  async function describe(c) {
    if (!c.code || c.display || S.displays.has(c.system + "|" + c.code)) return;
    S.displays.set(c.system + "|" + c.code, "");
    const r = await fhir("CodeSystem/$lookup?system=" + encodeURIComponent(c.system) + "&code=" + encodeURIComponent(c.code), { allow: [404] }).catch(() => null);
    const p = r && r.status === 200 && (r.body.parameter || []).find((x) => x.name === "display");
    S.displays.set(c.system + "|" + c.code, p ? p.valueString : c.system === CPT ? "CPT (no licensed descriptions imported)" : "");
  }
  function displayOf(c) { return c.display || S.displays.get(c.system + "|" + c.code) || ""; }

  // ---- rendering ----
  function renderTasks() {
    const list = $("#tasks");
    list.replaceChildren();
    for (const t of S.tasks) {
      const what = codingOf(t.code).code === "transcribe" ? "Transcription" : codingOf(t.code).code === "code" ? "Coding" : (t.code && t.code.text) || "Run";
      list.append(el("li", { text: what + ": " + t.status + (t.businessStatus && t.businessStatus.text ? " (" + t.businessStatus.text + ")" : "") +
        (t.statusReason && t.statusReason.text ? " — " + t.statusReason.text : "") }));
    }
    $("#pipeline").hidden = S.tasks.length === 0;
  }

  // entries are the codes in screen order: diagnoses, then lines.
  function entries() {
    const c = S.claim;
    return [...(c.diagnosis || []).map((d) => ({ kind: "dx", o: d, coding: dxCoding(d) })),
      ...(c.item || []).map((it) => ({ kind: "item", o: it, coding: itemCoding(it) }))];
  }
  function entryByKey(k) { return entries().find((e) => keyOf(e.o) === k); }

  function render() {
    const t0 = performance.now();
    renderClaim();
    // How long the last re-render took, for the browser test's measurements.
    document.body.dataset.renderMs = (performance.now() - t0).toFixed(1);
  }

  function renderClaim() {
    const c = S.claim;
    const draft = c.status === "draft";
    $("#claim-state").textContent = "Claim " + c.id.slice(0, 8) + " · version " + S.version + " · " + c.status + (changed() ? " · edited" : "");
    $("#approve-claim").disabled = !draft || S.busy;
    renderTranscript();
    renderEM();
    const dx = $("#dx");
    dx.replaceChildren();
    (c.diagnosis || []).forEach((d, i) => dx.append(dxRow(d, i, draft)));
    const body = $("#lines tbody");
    body.replaceChildren();
    (c.item || []).forEach((it, i) => body.append(lineRow(it, i, draft)));
    $("#total").textContent = c.total ? money(c.total) : (c.item || []).length ? "not priced" : "";
    renderFlags();
    $("#add").hidden = !draft;
  }

  function confBadge(o, code) {
    const v = confidenceOf(o);
    const flag = reviewFlag(code);
    const kids = [];
    if (v !== null) {
      const low = v < REVIEW_BELOW;
      kids.push(el("span", { class: "conf " + (low ? "low" : "high"), text: Math.round(v * 100) + "% sure" + (low ? " · check" : "") }));
    }
    if (flag) kids.push(el("span", { class: "flag", text: " Flagged: " + flag }));
    return kids;
  }

  function rowActions(key, draft, label, extra) {
    if (!draft) return el("span", { class: "row-actions" });
    const acc = S.accepted.has(key);
    return el("span", { class: "row-actions" },
      el("button", { type: "button", class: "small", "aria-pressed": acc ? "true" : "false", "aria-label": (acc ? "Accepted " : "Accept ") + label,
        "data-act": "accept", text: acc ? "✓ Accepted" : "Accept" }),
      extra || [],
      el("button", { type: "button", class: "small", "aria-label": "Evidence of " + label, "data-act": "evidence", text: "Evidence" }),
      el("button", { type: "button", class: "small", "aria-label": "Remove " + label, "data-act": "remove", text: "Remove" }));
  }

  function dxRow(d, i, draft) {
    const c = dxCoding(d);
    const key = keyOf(d);
    const label = "diagnosis " + c.code;
    const n = (S.claim.diagnosis || []).length;
    const li = el("li", { id: "row-" + key, "data-key": key, "data-code": c.code, tabindex: "0", draggable: draft ? "true" : null,
      class: S.selected === key ? "sel" : null, "aria-label": (i + 1) + ". " + c.code + " " + displayOf(c) },
      el("span", { class: "seq", text: String(d.sequence) + "." }),
      el("span", { class: "code", text: c.code }),
      el("span", { class: "desc", text: displayOf(c) }),
      rowActions(key, draft, label, [
        el("button", { type: "button", class: "small", "aria-label": "Move " + label + " up", "data-act": "up", disabled: i === 0, text: "↑" }),
        el("button", { type: "button", class: "small", "aria-label": "Move " + label + " down", "data-act": "down", disabled: i === n - 1, text: "↓" }),
      ]),
      el("span", { class: "meta" }, confBadge(d, c.code)));
    return li;
  }

  function lineRow(it, i, draft) {
    const c = itemCoding(it);
    const key = keyOf(it);
    const label = "line " + (i + 1) + " " + c.code;
    const mods = (it.modifier || []).map((m) => codingOf(m).code).join(" ");
    const input = (cls, value, what, onchange) => draft
      ? el("input", { class: cls, value, "aria-label": what + " of " + label, onchange, "data-field": cls })
      : el("span", { text: value });
    const tr = el("tr", { id: "row-" + key, "data-key": key, "data-code": c.code, tabindex: "0", class: S.selected === key ? "sel" : null,
      "aria-label": "Line " + (i + 1) + ": " + c.code + " " + displayOf(c) },
      el("td", { class: "seq", text: String(it.sequence) }),
      el("td", {}, el("span", { class: "code", text: c.code }), " ", el("span", { class: "desc", text: displayOf(c) }), el("div", { class: "meta" }, confBadge(it, c.code))),
      el("td", {}, input("mods", mods, "Modifiers", (e) => setModifiers(it, e.target.value))),
      el("td", {}, input("units", String((it.quantity && it.quantity.value) || 1), "Units", (e) => setUnits(it, e.target.value))),
      el("td", {}, input("pointers", (it.diagnosisSequence || []).join(" "), "Diagnosis pointers", (e) => setPointers(it, e.target.value))),
      el("td", { class: "num" }, it.net ? money(it.net) : "—", it.quantity && it.quantity.value > 1 && it.unitPrice ? el("div", { class: "hint", text: money(it.unitPrice) + " each" }) : null),
      el("td", {}, rowActions(key, draft, label)));
    return tr;
  }

  function renderTranscript() {
    const box = $("#transcript");
    const text = S.text;
    if (!text.length) {
      box.textContent = "(no transcript)";
      return;
    }
    // Cut the text at every evidence boundary; each piece knows the codes whose evidence covers it.
    const spans = [];
    for (const e of entries()) {
      for (const ev of evidenceOf(e.o)) spans.push({ start: ev.start, end: ev.end, key: keyOf(e.o), code: e.coding.code });
    }
    const cuts = new Set([0, text.length]);
    for (const s of spans) { cuts.add(Math.max(0, Math.min(text.length, s.start))); cuts.add(Math.max(0, Math.min(text.length, s.end))); }
    const points = [...cuts].sort((a, b) => a - b);
    const frag = document.createDocumentFragment();
    for (let i = 0; i + 1 < points.length; i++) {
      const a = points[i], b = points[i + 1];
      const piece = text.slice(a, b).join("");
      const over = spans.filter((s) => s.start <= a && s.end >= b);
      if (!over.length) { frag.append(piece); continue; }
      const codes = [...new Set(over.map((s) => s.code))];
      const keys = [...new Set(over.map((s) => s.key))];
      frag.append(el("mark", { tabindex: "-1", "data-keys": keys.join(" "), title: "Evidence of " + codes.join(", "),
        class: keys.includes(S.selected) ? "on" : null, text: piece }));
    }
    box.replaceChildren(frag);
  }

  function notes() { return ((S.task && S.task.note) || []).map((n) => n.text || ""); }
  function reviewFlag(code) {
    for (const n of notes()) {
      const m = /^review (\S+) \(confidence [0-9.]+\): (.*)$/.exec(n);
      if (m && m[1] === code) return m[2];
    }
    return "";
  }
  function renderEM() {
    const em = notes().find((n) => n.startsWith("E/M "));
    $("#em").replaceChildren(el("strong", { text: "E/M level: " }), em ? em.slice(4) : "not recorded for this claim");
  }
  function renderFlags() {
    const list = $("#flag-list");
    list.replaceChildren();
    for (const n of notes()) {
      if (n.startsWith("dropped ")) list.append(el("li", { text: "Dropped " + n.slice(8) }));
      else if (n.startsWith("review ")) list.append(el("li", { text: "To check: " + n.slice(7) }));
    }
    if (!list.children.length) list.append(el("li", { text: "Nothing was dropped or flagged." }));
  }

  function changed() { return S.original && JSON.stringify(S.original) !== JSON.stringify(S.claim); }

  // ---- editing ----
  // resequence numbers the diagnoses and lines 1..n again, keeps E/M lines first, and points the
  // lines at the diagnoses' new numbers (pointers to removed diagnoses go).
  function resequence() {
    const c = S.claim;
    const map = new Map();
    (c.diagnosis || []).forEach((d, i) => { map.set(d.sequence, i + 1); });
    (c.diagnosis || []).forEach((d, i) => { d.sequence = i + 1; });
    if (c.item) {
      c.item.sort((a, b) => (isEM(itemCoding(b).code) ? 1 : 0) - (isEM(itemCoding(a).code) ? 1 : 0));
      c.item.forEach((it, i) => {
        it.sequence = i + 1;
        if (it.diagnosisSequence) {
          it.diagnosisSequence = it.diagnosisSequence.map((p) => map.get(p)).filter((p) => p !== undefined);
          if (!it.diagnosisSequence.length) delete it.diagnosisSequence;
        }
      });
    }
    for (const k of ["diagnosis", "item"]) if (c[k] && !c[k].length) delete c[k];
    retotal();
  }
  function retotal() {
    const items = S.claim.item || [];
    if (items.length && items.every((it) => it.net && typeof it.net.value === "number")) {
      const sum = items.reduce((s, it) => s + it.net.value, 0);
      S.claim.total = { value: Math.round(sum * 100) / 100, currency: items[0].net.currency || "USD" };
    } else delete S.claim.total;
  }
  function setModifiers(it, v) {
    const mods = v.toUpperCase().split(/[\s,]+/).filter(Boolean);
    if (mods.some((m) => !/^[0-9A-Z]{2}$/.test(m))) { say("A modifier is two letters or digits (25, 59, RT)."); render(); return; }
    if (mods.length) it.modifier = mods.map((m) => ({ coding: [{ system: /^[0-9]/.test(m) ? CPT : HCPCS, code: m }] }));
    else delete it.modifier;
    edited("Modifiers of " + itemCoding(it).code + " set.");
  }
  function setUnits(it, v) {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1 || n > 999) { say("Units are a whole number from 1 to 999."); render(); return; }
    it.quantity = { value: n };
    if (it.unitPrice) it.net = { value: Math.round(it.unitPrice.value * n * 100) / 100, currency: it.unitPrice.currency };
    retotal();
    edited("Units of " + itemCoding(it).code + " set to " + n + ".");
  }
  function setPointers(it, v) {
    const n = (S.claim.diagnosis || []).length;
    const ps = v.split(/[\s,]+/).filter(Boolean).map(Number);
    if (ps.length > 4 || ps.some((p) => !Number.isInteger(p) || p < 1 || p > n)) { say("Pointers are up to four diagnosis numbers from 1 to " + n + "."); render(); return; }
    if (ps.length) it.diagnosisSequence = ps; else delete it.diagnosisSequence;
    edited("Diagnosis pointers of " + itemCoding(it).code + " set.");
  }
  function edited(msg) {
    render();
    say(msg);
  }
  function remove(key) {
    const e = entryByKey(key);
    if (!e) return;
    const list = e.kind === "dx" ? S.claim.diagnosis : S.claim.item;
    const i = list.indexOf(e.o);
    list.splice(i, 1);
    S.accepted.delete(key);
    resequence();
    const next = list[Math.min(i, list.length - 1)];
    S.selected = next ? keyOf(next) : "";
    edited("Removed " + e.coding.code + ".");
    focusRow(S.selected);
  }
  function move(key, by) {
    const d = (S.claim.diagnosis || []);
    const i = d.findIndex((x) => keyOf(x) === key);
    const j = i + by;
    if (i < 0 || j < 0 || j >= d.length) return;
    [d[i], d[j]] = [d[j], d[i]];
    resequence();
    S.selected = key;
    edited("Moved " + dxCoding(d[j]).code + " to position " + (j + 1) + ".");
    focusRow(key);
  }
  function moveTo(key, toKey) {
    const d = S.claim.diagnosis || [];
    const i = d.findIndex((x) => keyOf(x) === key);
    const j = d.findIndex((x) => keyOf(x) === toKey);
    if (i < 0 || j < 0 || i === j) return;
    const [x] = d.splice(i, 1);
    d.splice(j, 0, x);
    resequence();
    S.selected = key;
    edited("Moved " + dxCoding(x).code + " to position " + (j + 1) + ".");
    focusRow(key);
  }
  function accept(key) {
    const e = entryByKey(key);
    if (!e) return;
    if (S.accepted.has(key)) S.accepted.delete(key); else S.accepted.add(key);
    edited((S.accepted.has(key) ? "Accepted " : "No longer accepted: ") + e.coding.code + ".");
    focusRow(key);
  }
  async function add(system, code, display) {
    const c = S.claim;
    if (system === ICD) {
      if ((c.diagnosis || []).some((d) => dxCoding(d).code === code)) { say(code + " is already on the claim."); return; }
      c.diagnosis = c.diagnosis || [];
      const d = { sequence: c.diagnosis.length + 1, diagnosisCodeableConcept: { coding: [{ system, code, display }] } };
      c.diagnosis.push(d);
      S.accepted.add(keyOf(d));
      S.selected = keyOf(d);
    } else {
      const first = (c.item || [])[0] || {};
      const it = { sequence: (c.item || []).length + 1, productOrService: { coding: [display ? { system, code, display } : { system, code }] },
        quantity: { value: 1 } };
      for (const k of ["servicedDate", "locationCodeableConcept", "encounter"]) if (first[k]) it[k] = clone(first[k]);
      if (c.diagnosis && c.diagnosis.length) it.diagnosisSequence = [1];
      const fee = await feeOf(code);
      if (fee) { it.unitPrice = fee; it.net = clone(fee); }
      c.item = c.item || [];
      c.item.push(it);
      S.accepted.add(keyOf(it));
      S.selected = keyOf(it);
      await describe({ system, code, display });
    }
    resequence();
    edited("Added " + code + (display ? " " + display : "") + ".");
  }
  async function feeOf(code) {
    const defs = await search("ChargeItemDefinition?identifier=" + encodeURIComponent(FEES + "|" + code) + "&status=active&_count=1").catch(() => []);
    for (const d of defs) for (const g of d.propertyGroup || []) for (const p of g.priceComponent || []) {
      if (p.type === "base" && p.amount) return { value: p.amount.value, currency: p.amount.currency || "USD" };
    }
    return null;
  }

  // ---- approve ----
  async function approve() {
    if (S.busy || !S.claim || S.claim.status !== "draft") return;
    S.busy = true;
    render();
    const c = clone(S.claim);
    c.status = "active";
    delete c.meta;
    const next = String(Number(S.version) + 1);
    const ref = "Claim/" + c.id;
    const prov = {
      resourceType: "Provenance",
      target: [{ reference: ref + "/_history/" + next }],
      recorded: new Date().toISOString(),
      activity: { coding: [{ system: "http://terminology.hl7.org/CodeSystem/v3-DataOperation", code: "UPDATE" }] },
      reason: [{ text: "Reviewed against the transcript and approved in Billy Review" }],
      agent: [{ type: { coding: [{ system: "http://terminology.hl7.org/CodeSystem/provenance-participant-type", code: "verifier" }] },
        who: S.fhirUser ? { reference: S.fhirUser } : { display: S.user || "the signed-in user" } }],
      entity: [{ role: "revision", what: { reference: ref + "/_history/" + S.version } }],
    };
    if (S.docRef) prov.entity.push({ role: "source", what: { reference: S.docRef } });
    const bundle = { resourceType: "Bundle", type: "transaction", entry: [
      { resource: c, request: { method: "PUT", url: ref, ifMatch: 'W/"' + S.version + '"' } },
      { resource: prov, request: { method: "POST", url: "Provenance" } },
    ] };
    try {
      const r = await fhir("", { method: "POST", body: bundle, allow: [409, 412] });
      if (r.status === 409 || r.status === 412) return await conflict(r.status);
      S.busy = false;
      await loadClaim(ref, S.task);
      const box = $("#conflict");
      box.hidden = true;
      say("Approved: the claim is active as version " + S.version + ".");
      await showHistory();
    } catch (err) {
      S.busy = false;
      render();
      fail(err);
    }
  }
  async function conflict(status) {
    S.busy = false;
    const cur = (await fhir("Claim/" + S.claim.id)).body;
    if (cur.meta.versionId === S.version) {
      // 409 without a new version: a concurrent transaction made the server roll this one back.
      render();
      say("The server was busy and saved nothing (" + status + "): approve again.");
      return;
    }
    const box = $("#conflict");
    box.replaceChildren(
      el("p", {}, el("strong", { text: "Not saved: someone else changed this claim." }),
        " You reviewed version " + S.version + "; the claim is now at version " + cur.meta.versionId +
        " (" + cur.status + ", " + (cur.meta.lastUpdated || "") + "). Your edits are still on screen and nothing was overwritten."),
      el("button", { type: "button", id: "reload", onclick: () => reload().catch(fail), text: "Load the current version (discard my edits)" }));
    box.hidden = false;
    render();
    say("Conflict: the claim changed since you opened it.");
    $("#reload").focus();
  }
  async function reload() {
    await loadClaim("Claim/" + S.claim.id, S.task);
    say("Loaded version " + S.version + ". Review it again, then approve.");
  }
  async function showHistory() {
    const b = (await fhir("Claim/" + S.claim.id + "/_history?_count=20")).body;
    const list = $("#versions");
    list.replaceChildren();
    const vs = ((b && b.entry) || []).map((e) => e.resource).filter(Boolean).sort((x, y) => Number(x.meta.versionId) - Number(y.meta.versionId));
    for (const v of vs) list.append(el("li", { "data-version": v.meta.versionId, "data-status": v.status,
      text: "Version " + v.meta.versionId + ": " + v.status + " — " + (v.meta.lastUpdated || "") + " — " + (v.diagnosis || []).map((d) => dxCoding(d).code).join(", ") }));
    $("#history").hidden = false;
  }

  // ---- search as you type ----
  let searchSeq = 0, active = -1, results = [], inflight = null;
  async function runSearch() {
    const q = $("#add-q").value.trim();
    const sys = $("#add-system").value;
    const seq = ++searchSeq;
    if (q.length < 2) { showResults([]); $("#add-status").textContent = q ? "Type one more character." : ""; return; }
    if (sys === "cpt") {
      showResults(/^[0-9]{4}[0-9A-Z]$/.test(q.toUpperCase()) ? [{ system: CPT, code: q.toUpperCase(), display: "" }] : []);
      $("#add-status").textContent = "CPT codes are added by their five characters (descriptions need a licensed CPT file).";
      return;
    }
    const t0 = performance.now();
    // Each keystroke cancels the search before it, so answers never queue behind stale ones.
    if (inflight) inflight.abort();
    const ctl = inflight = new AbortController();
    let r;
    try {
      r = await fhir("ValueSet/$expand?url=" + encodeURIComponent(SYSTEMS[sys]) + "&filter=" + encodeURIComponent(q) + "&count=12",
        { allow: [400, 404], signal: ctl.signal });
    } catch (err) {
      if (err.name === "AbortError") return;
      throw err;
    }
    if (seq !== searchSeq) return; // a newer keystroke won
    const found = r.status === 200 ? ((r.body.expansion && r.body.expansion.contains) || []) : [];
    showResults(found);
    $("#add-status").textContent = found.length + " codes" + (r.status !== 200 ? " (" + ((r.body && r.body.issue && r.body.issue[0].diagnostics) || r.status) + ")" : "");
    $("#add-q").dataset.ms = String(Math.round(performance.now() - t0));
  }
  function showResults(list) {
    results = list;
    active = list.length ? 0 : -1;
    const ul = $("#add-results");
    ul.replaceChildren(...list.map((c, i) => el("li", { id: "res-" + i, role: "option", "aria-selected": i === active ? "true" : "false",
      "data-code": c.code, onmousedown: (e) => { e.preventDefault(); pick(i); } }, el("span", { class: "code", text: c.code }), " ", c.display || "")));
    $("#add-q").setAttribute("aria-expanded", list.length ? "true" : "false");
    setActive(active);
  }
  function setActive(i) {
    active = i;
    [...$("#add-results").children].forEach((li, j) => li.setAttribute("aria-selected", j === i ? "true" : "false"));
    if (i >= 0) { $("#add-q").setAttribute("aria-activedescendant", "res-" + i); $("#res-" + i).scrollIntoView({ block: "nearest" }); }
    else $("#add-q").removeAttribute("aria-activedescendant");
  }
  async function pick(i) {
    const c = results[i];
    if (!c) return;
    $("#add-q").value = "";
    showResults([]);
    await add(c.system, c.code, c.display);
    $("#add-q").focus();
  }

  // ---- navigation ----
  function rows() { return [...document.querySelectorAll("#dx > li, #lines tbody tr")]; }
  function focusRow(key) {
    const r = key && document.getElementById("row-" + key);
    if (r) { r.focus(); r.scrollIntoView({ block: "nearest" }); }
  }
  function select(key) {
    S.selected = key;
    for (const r of rows()) r.classList.toggle("sel", r.dataset.key === key);
    for (const m of document.querySelectorAll("#transcript mark")) m.classList.toggle("on", m.dataset.keys.split(" ").includes(key));
  }
  function toEvidence(key) {
    select(key);
    const m = [...document.querySelectorAll("#transcript mark")].find((x) => x.dataset.keys.split(" ").includes(key));
    if (!m) { say("This code has no evidence in the transcript."); return; }
    m.scrollIntoView({ block: "center" });
    m.focus();
    const e = entryByKey(key);
    say("Evidence of " + (e ? e.coding.code : "the code") + ": “" + m.textContent + "”");
  }
  function toCode(mark) {
    const key = mark.dataset.keys.split(" ")[0];
    select(key);
    focusRow(key);
    const e = entryByKey(key);
    if (e) say("Code " + e.coding.code + " " + displayOf(e.coding));
  }

  function wire() {
    $("#help-open").addEventListener("click", () => $("#help").showModal());
    $("#help-close").addEventListener("click", () => $("#help").close());
    $("#approve-claim").addEventListener("click", () => approve());
    $("#add").addEventListener("submit", (e) => { e.preventDefault(); if (active >= 0) pick(active); });
    $("#add-q").addEventListener("input", () => runSearch().catch(fail));
    $("#add-system").addEventListener("change", () => runSearch().catch(fail));
    $("#add-q").addEventListener("keydown", (e) => {
      if (e.key === "ArrowDown" && results.length) { e.preventDefault(); setActive((active + 1) % results.length); }
      else if (e.key === "ArrowUp" && results.length) { e.preventDefault(); setActive((active - 1 + results.length) % results.length); }
      else if (e.key === "Escape") { showResults([]); e.target.value = ""; }
    });
    $("#transcript").addEventListener("click", (e) => { const m = e.target.closest("mark"); if (m) toCode(m); });
    const claimPane = $(".claim-pane");
    claimPane.addEventListener("click", (e) => {
      const b = e.target.closest("button[data-act]");
      const row = e.target.closest("[data-key]");
      if (row && !e.target.closest("input")) select(row.dataset.key);
      if (!b || !row) return;
      const k = row.dataset.key;
      ({ accept: () => accept(k), remove: () => remove(k), evidence: () => toEvidence(k), up: () => move(k, -1), down: () => move(k, 1) })[b.dataset.act]();
    });
    claimPane.addEventListener("focusin", (e) => { const row = e.target.closest("[data-key]"); if (row && e.target === row) select(row.dataset.key); });
    // Drag and drop of diagnoses.
    let dragKey = "";
    const dx = $("#dx");
    dx.addEventListener("dragstart", (e) => { const li = e.target.closest("li"); if (!li) return; dragKey = li.dataset.key; li.classList.add("dragging"); e.dataTransfer.effectAllowed = "move"; e.dataTransfer.setData("text/plain", li.dataset.code); });
    dx.addEventListener("dragover", (e) => { const li = e.target.closest("li"); if (!li || !dragKey) return; e.preventDefault(); for (const x of dx.children) x.classList.toggle("drop", x === li); });
    dx.addEventListener("dragend", () => { dragKey = ""; for (const x of dx.children) x.classList.remove("drop", "dragging"); });
    dx.addEventListener("drop", (e) => { const li = e.target.closest("li"); e.preventDefault(); if (li && dragKey) moveTo(dragKey, li.dataset.key); dragKey = ""; });

    document.addEventListener("keydown", (e) => {
      const t = e.target;
      const typing = t.closest && t.closest("input, select, textarea");
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
        e.preventDefault();
        if (typing) t.blur(); // an edit still in its field is applied (change fires on blur) before approving
        approve();
        return;
      }
      if (typing || $("#help").open || !S.claim) return;
      if (e.key === "?") { e.preventDefault(); $("#help").showModal(); return; }
      if (e.key === "/") { e.preventDefault(); $("#add-q").focus(); return; }
      if (t.tagName === "MARK" || t.id === "transcript") {
        const marks = [...document.querySelectorAll("#transcript mark")];
        const i = marks.indexOf(t);
        if (e.key === "n" || e.key === "p") {
          e.preventDefault();
          const m = marks[e.key === "n" ? Math.min(i + 1, marks.length - 1) : Math.max(i - 1, 0)];
          if (m) { m.focus(); m.scrollIntoView({ block: "nearest" }); }
        } else if (e.key === "Enter" && t.tagName === "MARK") { e.preventDefault(); toCode(t); }
        return;
      }
      const row = t.closest && t.closest("[data-key]");
      if (!row || S.claim.status !== "draft" && !["ArrowDown", "ArrowUp", "j", "k", "e"].includes(e.key)) return;
      if (t !== row && t.tagName === "BUTTON" && e.key === "Enter") return; // the button's own action
      const k = row.dataset.key;
      const all = rows();
      const i = all.indexOf(row);
      const isDx = row.tagName === "LI";
      if (e.altKey && (e.key === "ArrowUp" || e.key === "ArrowDown")) { if (isDx) { e.preventDefault(); move(k, e.key === "ArrowUp" ? -1 : 1); } return; }
      switch (e.key) {
        case "ArrowDown": case "j": e.preventDefault(); if (all[i + 1]) { all[i + 1].focus(); select(all[i + 1].dataset.key); } break;
        case "ArrowUp": case "k": e.preventDefault(); if (all[i - 1]) { all[i - 1].focus(); select(all[i - 1].dataset.key); } break;
        case "a": e.preventDefault(); accept(k); break;
        case "Delete": case "x": case "Backspace": e.preventDefault(); remove(k); break;
        case "e": e.preventDefault(); toEvidence(k); break;
      }
    });
  }

  async function main() {
    wire();
    S.cfg = await (await fetch("config.json")).json();
    const home = new URL(S.cfg.fhirBase).origin;
    // The redirect URI registered for the app is on the server's public base URL.
    if (home !== location.origin) throw new Error("open this app at " + home + location.pathname + " (the server's BILLY_BASE_URL)");
    const params = new URLSearchParams(location.search);
    if (params.has("code") || params.has("error")) {
      say("Signing in…");
      await finish(params);
    } else {
      say("Connecting to Billy…");
      await authorize(params);
      return;
    }
    say("Loading…");
    await loadPatient();
    if (S.encounterId) await loadEncounter();
    else await chooseClaim();
  }
  main().catch(fail);
})();
