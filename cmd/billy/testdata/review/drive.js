"use strict";
// drive.js walks headless Chromium through a coder's review in Billy Review, the way a person
// would, mostly from the keyboard: EHR launch (Billy's login and consent pages), then highlight →
// code, code → evidence, remove a diagnosis, add one by searching as they type, move it up, edit
// units, the shortcuts list, an approve that meets a conflicting edit (made here, as someone else,
// with an admin token), reload, redo, approve. axe-core checks the page (WCAG 2.1 A and AA) at
// each screen. Screenshots go to cfg.artifacts.
//
//   node drive.js '<config JSON>'   (written by cmd/billy/review_test.go)
//
// stdout: one JSON object with what happened (see review_test.go's reviewRun). stderr: the
// browser's log, and on failure the reason, the page's text and a screenshot's path.
const fs = require("node:fs");
const path = require("node:path");

const cfg = JSON.parse(process.argv[2]);
const { chromium } = require(path.join(cfg.nodeModules, "playwright-core"));
const axeSource = fs.readFileSync(path.join(cfg.nodeModules, "axe-core", "axe.min.js"), "utf8");

const log = [];
const note = (kind, text) => log.push(`${new Date().toISOString().slice(11, 23)} ${kind}: ${text}`);
const scrub = (u) => {
  try {
    const x = new URL(u);
    for (const k of ["code", "state", "launch"]) if (x.searchParams.has(k)) x.searchParams.set(k, "REDACTED");
    return x.href;
  } catch {
    return String(u);
  }
};
const args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"];

async function main() {
  const ctx = await chromium.launchPersistentContext(cfg.userDataDir, {
    executablePath: cfg.chromium, headless: true, args, timeout: cfg.stepTimeoutMs,
    viewport: { width: cfg.width || 1280, height: 860 },
  });
  const page = ctx.pages()[0] || (await ctx.newPage());
  page.setDefaultTimeout(cfg.stepTimeoutMs);
  page.on("console", (m) => note(`console.${m.type()}`, m.text()));
  page.on("pageerror", (e) => note("pageerror", e.stack || e.message));
  page.on("requestfailed", (r) => note("requestfailed", `${r.method()} ${scrub(r.url())}: ${r.failure() && r.failure().errorText}`));
  page.on("response", (r) => { if (r.status() >= 400) note("http", `${r.status()} ${r.request().method()} ${scrub(r.url())}`); });
  page.on("framenavigated", (f) => { if (f === page.mainFrame()) note("navigated", scrub(f.url())); });

  const out = { steps: [], axe: [], searchMs: [], renderMs: [], shots: [] };
  const step = (s) => { out.steps.push(s); note("step", s); };
  let n = 0;
  const shot = async (name) => {
    const file = path.join(cfg.artifacts, `${String(++n).padStart(2, "0")}-${name}.png`);
    await page.screenshot({ path: file, fullPage: false });
    out.shots.push(file);
  };
  const axe = async (name) => {
    await page.evaluate(axeSource);
    const r = await page.evaluate(() => window.axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] } }));
    out.axe.push({ name, passes: r.passes.length, violations: r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help,
      nodes: v.nodes.map((x) => x.target.join(" ")).slice(0, 5) })) });
  };
  const ready = () => page.waitForSelector('main#main[data-state="ready"], main#main[data-state="error"]');
  const mustBeReady = async () => {
    await ready();
    const state = await page.getAttribute("#main", "data-state");
    if (state !== "ready") throw new Error("the app: " + (await page.textContent("#message")));
  };
  const active = () => page.evaluate(() => {
    const a = document.activeElement;
    return { tag: a.tagName, code: a.dataset.code || "", keys: a.dataset.keys || "", title: a.title || "", id: a.id };
  });
  const dxCodes = () => page.$$eval("#dx > li", (ls) => ls.map((l) => l.dataset.code));
  const lastRender = async () => out.renderMs.push(Number(await page.getAttribute("body", "data-render-ms")));
  const focusDx = async (code) => { await page.focus(`#dx > li[data-code="${code}"]`); };
  const addBySearch = async (text, code) => {
    await page.keyboard.press("/");
    if ((await active()).id !== "add-q") throw new Error("/ did not focus the code search");
    await page.keyboard.type(text, { delay: 25 });
    await page.waitForSelector(`#add-results li[data-code="${code}"]`);
    out.searchMs.push(Number(await page.getAttribute("#add-q", "data-ms")));
    const codes = await page.$$eval("#add-results li", (ls) => ls.map((l) => l.dataset.code));
    for (let i = 0; i < codes.indexOf(code); i++) await page.keyboard.press("ArrowDown");
    await page.keyboard.press("Enter");
    await page.waitForSelector(`#dx > li[data-code="${code}"]`);
    await lastRender();
    return codes;
  };
  const otherEdit = async (change) => {
    const url = `${cfg.fhirBase}/Claim/${cfg.claimId}`;
    const h = { Authorization: "Bearer " + cfg.adminToken, Accept: "application/fhir+json" };
    const cur = await (await fetch(url, { headers: h })).json();
    const v = cur.meta.versionId;
    change(cur);
    delete cur.meta;
    const r = await fetch(url, { method: "PUT", headers: { ...h, "Content-Type": "application/fhir+json", "If-Match": `W/"${v}"` }, body: JSON.stringify(cur) });
    if (r.status !== 200) throw new Error("the other edit: " + r.status + " " + (await r.text()));
  };

  // live: the claim is not there yet (the run waits for a Coverage); the app shows the pipeline's
  // status, and the claim appears without a reload once a Coverage arrives.
  const live = async (t0) => {
    await page.waitForSelector('main#main[data-state="waiting"]');
    step("waiting");
    out.waitingTasks = (await page.textContent("#tasks")).replace(/\s+/g, " ").trim();
    out.waitingMessage = await page.textContent("#message");
    await shot("waiting");
    await axe("waiting");
    const navs = log.filter((l) => l.includes(" navigated: ")).length;
    const r = await fetch(`${cfg.fhirBase}/Coverage`, { method: "POST", headers: { Authorization: "Bearer " + cfg.adminToken,
      "Content-Type": "application/fhir+json" }, body: JSON.stringify(cfg.coverage) });
    if (r.status !== 201) throw new Error("coverage: " + r.status + " " + (await r.text()));
    await page.waitForSelector('main#main[data-state="ready"]', { timeout: 90000 });
    step("claim appeared");
    out.reloaded = log.filter((l) => l.includes(" navigated: ")).length !== navs;
    out.initialDx = await dxCodes();
    out.transcriptChars = await page.evaluate(() => Array.from(document.querySelector("#transcript").textContent).length);
    out.marks = await page.$$eval("#transcript mark", (m) => m.length);
    out.renderMs.push(Number(await page.getAttribute("body", "data-render-ms")));
    // Keyboard work on the long transcript: next, accept, move down, next.
    await page.focus("#dx > li");
    for (const k of ["a", "Alt+ArrowDown", "j", "a", "e"]) {
      await page.keyboard.press(k);
      out.renderMs.push(Number(await page.getAttribute("body", "data-render-ms")));
    }
    // Drag the fourth diagnosis onto the first.
    out.beforeDrag = await dxCodes();
    await page.locator("#dx > li").nth(3).dragTo(page.locator("#dx > li").nth(0));
    out.afterDrag = await dxCodes();
    step("drag");
    await shot("live-ready");
    await axe("live-ready");
    out.launchMs = Date.now() - t0;
    process.stdout.write(JSON.stringify(out) + "\n");
  };
  // standalone: the patient picker, then the patient's draft claims to choose from.
  const standalone = async (t0) => {
    await page.waitForSelector('main#main[data-state="choose"]');
    step("choose");
    out.choices = await page.$$eval("#claims button", (bs) => bs.map((b) => b.textContent));
    await shot("choose");
    await axe("choose");
    await page.click("#claims button");
    await mustBeReady();
    step("loaded");
    out.launchMs = Date.now() - t0;
    out.firstPaintMs = await page.evaluate(() => {
      const a = performance.getEntriesByName("billy-review-open")[0], b = performance.getEntriesByName("billy-review-ready")[0];
      return a && b ? b.startTime - a.startTime : -1;
    });
    out.initialDx = await dxCodes();
    out.transcriptChars = await page.evaluate(() => Array.from(document.querySelector("#transcript").textContent).length);
    out.privacy = await page.evaluate(() => ({ url: location.href, localStorage: localStorage.length, sessionStorage: sessionStorage.length }));
    await shot("standalone");
    process.stdout.write(JSON.stringify(out) + "\n");
  };

  try {
    const t0 = Date.now();
    await page.goto(cfg.url);
    for (let i = 0; i < 6; i++) {
      const e = await page.waitForSelector('#username, #approve, [id^="patient-"], main#main[data-state="ready"], main#main[data-state="error"], ' +
        'main#main[data-state="waiting"], main#main[data-state="choose"]');
      const id = await e.getAttribute("id");
      if (id === "main") break;
      if (id.startsWith("patient-")) {
        step("picker");
        const b = await page.$(`[id="patient-${cfg.patient}"]`);
        await b.click();
        await b.waitForElementState("hidden").catch(() => {});
      } else if (id === "username") {
        step("login");
        await page.fill("#username", cfg.username);
        await page.fill("#password", cfg.password);
        const b = await page.waitForSelector("#login");
        await b.click();
        await b.waitForElementState("hidden").catch(() => {});
      } else {
        step("consent");
        await e.click();
        await e.waitForElementState("hidden").catch(() => {});
      }
    }
    if (cfg.mode === "live") return await live(t0);
    if (cfg.mode === "standalone") return await standalone(t0);
    await mustBeReady();
    out.launchMs = Date.now() - t0;
    step("loaded");
    out.firstPaintMs = await page.evaluate(() => { const m = performance.getEntriesByName("billy-review-ready")[0]; return m ? m.startTime : -1; });
    out.privacy = await page.evaluate(() => ({ url: location.href, localStorage: localStorage.length, sessionStorage: sessionStorage.length }));
    out.initialDx = await dxCodes();
    out.initialLines = await page.$$eval("#lines tbody tr", (ls) => ls.map((l) => l.dataset.code));
    out.em = await page.textContent("#em");
    await shot("loaded");
    await axe("loaded");

    // Highlight → code.
    const mark = page.locator(`#transcript mark[title*="${cfg.highlightCode}"]`).first();
    await mark.click();
    out.highlightTo = (await active()).code;
    step("highlight → code");
    // Code → evidence, from the keyboard.
    await focusDx(cfg.evidenceCode);
    await page.keyboard.press("e");
    const a = await active();
    out.evidenceFocus = { tag: a.tag, title: a.title };
    out.evidenceText = await page.evaluate(() => document.activeElement.textContent);
    step("code → evidence");
    await shot("evidence");
    // In the transcript: n moves to the next highlight, Enter goes to its code.
    await page.keyboard.press("n");
    await page.keyboard.press("Enter");
    out.nextHighlightTo = (await active()).code;

    // Remove a diagnosis from the keyboard.
    await focusDx(cfg.removeCode);
    await page.keyboard.press("Delete");
    await page.waitForSelector(`#dx > li[data-code="${cfg.removeCode}"]`, { state: "detached" });
    await lastRender();
    step("remove");
    // Accept the first diagnosis.
    await focusDx(out.initialDx[0]);
    await page.keyboard.press("a");
    out.accepted = await page.getAttribute(`#dx > li[data-code="${out.initialDx[0]}"] button[data-act="accept"]`, "aria-pressed");
    // Add a code by searching as you type.
    out.searchResults = await addBySearch(cfg.searchText, cfg.addCode);
    step("add via search");
    // Reorder: the new code up one.
    await focusDx(cfg.addCode);
    await page.keyboard.press("Alt+ArrowUp");
    await lastRender();
    out.reordered = await dxCodes();
    step("reorder");
    // Units of the last line.
    const units = page.locator("#lines tbody tr:last-child input.units");
    await units.fill("2");
    await units.press("Tab");
    out.lastLineUnits = await units.inputValue();
    out.total = await page.textContent("#total");
    await shot("edited");
    await axe("edited");
    // The shortcuts.
    await focusDx(cfg.addCode);
    await page.keyboard.press("?");
    await page.waitForSelector("dialog#help[open]");
    await shot("shortcuts");
    await axe("shortcuts");
    await page.keyboard.press("Escape");
    await page.waitForSelector("dialog#help:not([open])", { state: "attached" });
    step("shortcuts");

    // Someone else edits the Claim; approving must not overwrite it.
    await otherEdit((c) => { c.priority = { coding: [{ system: "http://terminology.hl7.org/CodeSystem/processpriority", code: "stat" }] }; });
    await focusDx(cfg.addCode);
    await page.keyboard.press("Control+Enter");
    await page.waitForSelector("#conflict:not([hidden])");
    out.conflict = (await page.textContent("#conflict")).replace(/\s+/g, " ").trim();
    out.dxDuringConflict = await dxCodes();
    step("conflict");
    await shot("conflict");
    await axe("conflict");
    await page.click("#reload");
    await page.waitForFunction(() => document.querySelector("#claim-state").textContent.includes("version 2"));
    await mustBeReady();
    out.dxAfterReload = await dxCodes();
    step("reload");

    // Redo the review on the current version, and approve.
    await focusDx(cfg.removeCode);
    await page.keyboard.press("x");
    await page.waitForSelector(`#dx > li[data-code="${cfg.removeCode}"]`, { state: "detached" });
    await addBySearch(cfg.searchText, cfg.addCode);
    await focusDx(cfg.addCode);
    await page.keyboard.press("Alt+ArrowUp");
    out.approvedDx = await dxCodes();
    // Units typed and approved straight from the field.
    await page.locator("#lines tbody tr:last-child input.units").fill("3");
    await page.locator("#lines tbody tr:last-child input.units").press("Control+Enter");
    await page.waitForSelector("#versions li:nth-child(3)");
    out.versions = await page.$$eval("#versions li", (ls) => ls.map((l) => ({ version: l.dataset.version, status: l.dataset.status })));
    out.message = await page.textContent("#message");
    out.claimState = await page.textContent("#claim-state");
    step("approve");
    await page.locator("#history").scrollIntoViewIfNeeded();
    await shot("approved");
    await axe("approved");
    out.privacyAfter = await page.evaluate(() => ({ url: location.href, localStorage: localStorage.length, sessionStorage: sessionStorage.length }));

    // A narrow EMR pane: the same screen at 800 px.
    await page.setViewportSize({ width: 800, height: 860 });
    out.narrowOverflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    await page.evaluate(() => window.scrollTo(0, 0));
    await shot("narrow");
    await axe("narrow");
    process.stdout.write(JSON.stringify(out) + "\n");
  } catch (err) {
    process.exitCode = 1;
    let file = path.join(cfg.artifacts, "failure.png");
    try { await page.screenshot({ path: file, fullPage: true, timeout: 5000 }); } catch (e) { file = `(none: ${e.message})`; }
    let text = "";
    try { text = (await page.innerText("body", { timeout: 2000 })).slice(0, 3000); } catch (e) { text = `(unreadable: ${e.message})`; }
    process.stderr.write(`FAILED: ${err.stack || err}\nsteps: ${out.steps.join(", ")}\nurl: ${scrub(page.url())}\nscreenshot: ${file}\npage text:\n${text}\n`);
  } finally {
    process.stderr.write(`browser log:\n${log.join("\n")}\n`);
    await ctx.close().catch(() => {});
  }
}

main();
