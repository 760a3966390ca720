"use strict";
// drive.js walks headless Chromium through one SMART launch the way a person would: it opens the
// app's launch URL, logs in on Billy's page, picks the patient when Billy shows the picker, approves
// the consent page, and waits for the app (index.html) to write its #result.
//
//   node drive.js '<config JSON>'   (written by smart/browser_test.go)
//
// stdout: one JSON object, {"steps": [...], "pages": {...}, "result": <the app's result>}: pages holds
// what the patient picker and the consent page showed, read from the DOM the way a person sees it
// (text, and which buttons share a form). With "cancelAt": "picker" the driver presses Cancel on
// the picker instead of choosing, and the object has "appError" (what the app reported),
// "redirect" (error and state of the URL Billy sent the browser back to) and "sentState" (the
// state the app sent to /oauth2/authorize) instead of "result".
// stderr: what the browser said (console, page errors, failed and 4xx/5xx requests, navigations),
// then, on failure, the reason, the page's URL and text, and the screenshot's path. Exit status 1 on
// failure. The app page already replaces tokens by their length, and the code parameter is
// redacted from the URLs logged here, so nothing printed can be replayed.
const path = require("node:path");

const cfg = JSON.parse(process.argv[2]);
const { chromium } = require(path.join(cfg.nodeModules, "playwright-core"));

const log = [];
function note(kind, text) {
  log.push(`${new Date().toISOString().slice(11, 23)} ${kind}: ${text}`);
}

function scrub(u) {
  try {
    const x = new URL(u);
    for (const k of ["code", "code_verifier", "ticket"]) {
      if (x.searchParams.has(k)) x.searchParams.set(k, "REDACTED");
    }
    return x.href;
  } catch {
    return String(u);
  }
}

// Flags for Debian's chromium in a container: no sandbox (root), no GPU, and nothing that talks to
// the network on its own.
const args = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
  "--disable-dev-shm-usage",
];

async function main() {
  const ctx = await chromium.launchPersistentContext(cfg.userDataDir, {
    executablePath: cfg.chromium,
    headless: true,
    args,
    timeout: cfg.stepTimeoutMs,
  });
  const page = ctx.pages()[0] || (await ctx.newPage());
  page.setDefaultTimeout(cfg.stepTimeoutMs);
  // A Content Security Policy violation blocks a step without changing the page, so it fails the
  // run at once instead of after a time-out.
  let cspViolation;
  const blocked = new Promise((_, reject) => {
    cspViolation = reject;
  });
  blocked.catch(() => {});
  page.on("console", (m) => {
    if (m.type() === "error" && /Content Security Policy/.test(m.text())) {
      cspViolation(new Error(`Chromium blocked a step by Content Security Policy (${scrub(page.url())}): ${m.text().trim()}` +
        (/form-action/.test(m.text())
          ? "\nChromium applies form-action to the redirects that follow a form post as well: the CSP of Billy's authorize " +
            "pages must allow the origin of the request's redirect_uri, or the final redirect to the app is blocked."
          : "")));
    }
    const l = m.location();
    note(`console.${m.type()}`, `${m.text()}${l && l.url ? ` (${scrub(l.url)}:${l.lineNumber})` : ""}`);
  });
  page.on("pageerror", (e) => note("pageerror", e.stack || e.message));
  page.on("requestfailed", (r) => note("requestfailed", `${r.method()} ${scrub(r.url())}: ${r.failure() && r.failure().errorText}`));
  page.on("response", (r) => {
    if (r.status() >= 400) note("http", `${r.status()} ${r.request().method()} ${scrub(r.url())}`);
  });
  let sentState = null;
  let redirect = null;
  page.on("framenavigated", (f) => {
    if (f !== page.mainFrame()) return;
    note("navigated", scrub(f.url()));
    const u = new URL(f.url());
    if (u.pathname === "/oauth2/authorize" && sentState === null) sentState = u.searchParams.get("state");
    if (u.pathname === "/index.html") redirect = { error: u.searchParams.get("error"), state: u.searchParams.get("state") };
  });

  const steps = [];
  const pages = {};
  try {
    await page.goto(cfg.url);
    for (let i = 0; i < 8; i++) {
      const el = await Promise.race([page.waitForSelector('#result, #error, #username, [id^="patient-"], #approve'), blocked]);
      const id = await el.getAttribute("id");
      if (id === "result") {
        steps.push("result");
        const text = await el.textContent();
        process.stdout.write(JSON.stringify({ steps, pages, result: JSON.parse(text) }) + "\n");
        return;
      }
      if (id === "error") {
        if (cfg.cancelAt && steps.includes("cancel")) {
          process.stdout.write(JSON.stringify({ steps, pages, appError: await el.textContent(), redirect, sentState }) + "\n");
          return;
        }
        throw new Error(`the app reported an error: ${await el.textContent()}`);
      }
      let button;
      if (id === "username") {
        if (steps.includes("login")) {
          throw new Error("Billy showed the login page again: the login failed");
        }
        steps.push("login");
        await page.fill("#username", cfg.username);
        await page.fill("#password", cfg.password);
        button = await page.waitForSelector("#login");
      } else if (id.startsWith("patient-")) {
        steps.push("picker");
        pages.picker = await page.evaluate(readPicker);
        if (cfg.cancelAt === "picker") {
          steps.push("cancel");
          button = await page.waitForSelector("#cancel");
        } else {
          button = await page.$(`[id="patient-${cfg.patient}"]`);
          if (!button) {
            const ids = await page.$$eval('[id^="patient-"]', (els) => els.map((e) => e.id));
            throw new Error(`the patient picker does not offer patient-${cfg.patient}; it offers ${ids.join(", ")}`);
          }
        }
      } else {
        steps.push("consent");
        pages.consent = await page.evaluate(readConsent);
        button = el;
      }
      await button.click();
      // Each step posts a form: wait until its page is gone before looking at the next one. A
      // button already detached by the navigation is gone too.
      await Promise.race([
        button.waitForElementState("hidden").catch((e) => {
          if (!/not attached/.test(e.message)) throw e;
        }),
        blocked,
      ]);
    }
    throw new Error(`no result after the steps ${steps.join(", ")}`);
  } catch (err) {
    process.exitCode = 1;
    let shot = "";
    try {
      await page.screenshot({ path: cfg.screenshot, fullPage: true, timeout: 5000 });
      shot = cfg.screenshot;
    } catch (e) {
      shot = `(none: ${e.message})`;
    }
    let text = "";
    try {
      text = (await page.innerText("body", { timeout: 2000 })).slice(0, 2000);
    } catch (e) {
      text = `(unreadable: ${e.message})`;
    }
    process.stderr.write(
      `FAILED: ${describe(err)}\nsteps: ${steps.join(", ")}\nurl: ${scrub(page.url())}\n` +
        `screenshot: ${shot}\npage text:\n${text}\n`,
    );
  } finally {
    process.stderr.write(`browser log:\n${log.join("\n")}\n`);
    await ctx.close().catch(() => {});
  }
}

// readPicker runs in the page: what the patient picker shows, and how its forms are cut.
function readPicker() {
  const text = (root, sel) => {
    const e = root && root.querySelector(sel);
    return e ? e.textContent.replace(/\s+/g, " ").trim() : null;
  };
  const buttonsOf = (el) => (el && el.form ? [...el.form.querySelectorAll("button, input[type=submit]")].map((b) => b.id) : null);
  const first = document.querySelector("button, input[type=submit]");
  return {
    user: text(document, "#user"),
    patients: [...document.querySelectorAll('[id^="patient-"]')].map((b) => ({
      id: b.id.slice("patient-".length),
      name: text(b, ".name"),
      birth: text(b, ".birth"),
      sex: text(b, ".sex"),
      mrn: text(b, ".mrn"),
      formButtons: buttonsOf(b),
    })),
    firstButton: first ? first.id : null,
    searchFormButtons: buttonsOf(document.querySelector("#q")),
    cancelFormButtons: buttonsOf(document.querySelector("#cancel")),
  };
}

// readConsent runs in the page: what the consent page says.
function readConsent() {
  const text = (sel) => {
    const e = document.querySelector(sel);
    return e ? e.textContent.replace(/\s+/g, " ").trim() : null;
  };
  const details = document.querySelector("details#raw-scopes");
  return {
    user: text("#user"),
    patientName: text("#patient .name"),
    patientBirth: text("#patient .birth"),
    permissions: [...document.querySelectorAll("#scopes li")].map((e) => e.textContent.trim()),
    rawScopes: details ? [...details.querySelectorAll("code")].map((e) => e.textContent) : null,
    rawScopesFolded: details ? !details.open : null,
    buttons: [...document.querySelectorAll("button")].map((b) => b.id),
  };
}

// describe gives the message of the driver's own errors (a stack would only point here) and the
// stack of anything else.
function describe(err) {
  if (err && err.name === "Error" && err.message) return err.message;
  return (err && err.stack) || String(err);
}

main().catch((err) => {
  process.exitCode = 1;
  process.stderr.write(`FAILED: ${describe(err)}\nbrowser log:\n${log.join("\n")}\n`);
});
