// The web pages in a real browser: Debian's headless Chromium driven by playwright-core, against a
// real `grader serve` on a random port with a fresh data folder (its caches linked from the prepared
// one) and the real engine grading in its sandbox. Waiting is on the page's own state (the live
// progress, the report appearing), never on sleeps. Screenshots (desktop and a 390 px phone) go to
// target/screenshots/.
//
// Environment: GRADER_BIN (default target/debug/grader), GRADER_DATA_DIR (the prepared data folder,
// default /var/lib/runtime-grader), CHROMIUM (default /usr/bin/chromium).

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const bin = process.env.GRADER_BIN || path.join(repo, "target/debug/grader");
const prepared = process.env.GRADER_DATA_DIR || "/var/lib/runtime-grader";
const shots = path.join(repo, "target/screenshots");
// One grading takes ~10 s alone; a shared CI machine may be much slower.
const GRADING_MS = 10 * 60 * 1000;

let work, dataDir, server, base, browser;
const tokens = {};
const archives = {};
const submissions = {};

/// Runs the grader's CLI on the test's data folder and returns its stdout.
function grader(...args) {
  return execFileSync(bin, ["--data-dir", dataDir, ...args], { encoding: "utf8" });
}

/// The crate in `dir` as the .tar.gz a student uploads (02_runtime/ wrapping it).
function pack(name, dir) {
  const staging = fs.mkdtempSync(path.join(work, name + "-"));
  fs.cpSync(path.join(dir, "src"), path.join(staging, "02_runtime/src"), { recursive: true });
  fs.copyFileSync(path.join(dir, "Cargo.toml"), path.join(staging, "02_runtime/Cargo.toml"));
  const file = path.join(work, name + ".tar.gz");
  execFileSync("tar", ["czf", file, "-C", staging, "02_runtime"]);
  return file;
}

/// A copy of the reference solution, changed by `change(dir)`.
function variant(name, change) {
  const dir = path.join(work, name);
  fs.cpSync(path.join(repo, "solutions/reference"), dir, { recursive: true });
  change(dir);
  return pack(name, dir);
}

before(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), "grader-browser-"));
  // The sandbox's user must reach the job folders inside.
  fs.chmodSync(work, 0o755);
  dataDir = path.join(work, "data");
  fs.mkdirSync(dataDir);
  for (const part of ["toolchain", "vendor", "warm-targets"]) {
    fs.symlinkSync(path.join(prepared, part), path.join(dataDir, part));
  }
  fs.mkdirSync(shots, { recursive: true });
  fs.mkdirSync(path.join(work, "html"));

  const roster = path.join(work, "roster.csv");
  fs.writeFileSync(
    roster,
    "id,name,email,role\ns1,Ada Lovelace,ada@example.org,student\n" +
      "s2,Alan Turing,alan@example.org,student\nt1,Grace Hopper,grace@example.org,instructor\n",
  );
  for (const line of grader("roster", "import", roster).trim().split("\n")) {
    const [id, token] = line.split("\t");
    tokens[id] = token;
  }

  archives.reference = pack("reference", path.join(repo, "solutions/reference"));
  archives.buggy = variant("priority_ignored", (dir) =>
    execFileSync("patch", ["-s", "-p1", "-d", dir, "-i", path.join(repo, "solutions/buggy/priority_ignored/bug.patch")]),
  );
  // A type error on a line of its own at the end of lib.rs.
  archives.broken = variant("broken", (dir) => {
    const lib = path.join(dir, "src/lib.rs");
    const text = fs.readFileSync(lib, "utf8").replace(/\n*$/, "\n");
    archives.brokenLine = text.split("\n").length;
    fs.writeFileSync(lib, text + 'pub fn answer() -> u32 { "forty-two" }\n');
  });

  server = spawn(
    bin,
    ["--data-dir", dataDir, "--hidden-tests", path.join(repo, "hidden-tests"), "serve", "--bind", "127.0.0.1:0", "--workers", "1",
     // s2 uploads twice in a row: no minimum interval between uploads.
     "--min-interval-secs", "0"],
    // Its request log would bury the test's own output: problems only, unless RUST_LOG says more.
    { stdio: ["ignore", "inherit", "pipe"], env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? "warn" } },
  );
  base = await new Promise((resolve, reject) => {
    let seen = "";
    server.stderr.on("data", (chunk) => {
      process.stderr.write(chunk);
      seen += chunk;
      // The whole line: a chunk may end in the middle of the port.
      const m = seen.match(/listening on (http:\/\/[0-9.:]+) with/);
      if (m) resolve(m[1]);
    });
    server.on("exit", (code) => reject(new Error(`grader serve exited with ${code}: ${seen}`)));
  });
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    // As root (CI), Chromium's own sandbox cannot start.
    args: process.getuid && process.getuid() === 0 ? ["--no-sandbox"] : [],
  });
});

after(async () => {
  await browser?.close();
  if (server && server.exitCode === null) {
    const exited = new Promise((resolve) => server.on("exit", resolve));
    server.kill("SIGTERM");
    await exited;
  }
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

/// A browser context logged in as `who` through the log-in form.
async function logIn(who, options = {}) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, ...options });
  const page = await context.newPage();
  await page.goto(base + "/login");
  await page.fill("#token", tokens[who]);
  await Promise.all([page.waitForURL(/\/(dashboard|gradebook)$/), page.click("button[type=submit]")]);
  return { context, page };
}

/// Keeps the server's HTML of the page now shown (fetched again with the page's cookies), for the
/// HTML checker at the end.
async function keepHtml(page, name) {
  const response = await page.context().request.get(page.url(), { failOnStatusCode: false });
  fs.writeFileSync(path.join(work, "html", `${name}.html`), await response.text());
}

/// Desktop and 390 px screenshots of the page as it is (its first 1600 px: long reports go on),
/// whose HTML is also kept for the checker.
async function screenshots(page, name) {
  await keepHtml(page, name);
  // Clicks scroll wide tables sideways; the pictures show them as a reader first sees them.
  await page.evaluate(() => document.querySelectorAll(".scroll").forEach((s) => { s.scrollLeft = 0; }));
  const size = page.viewportSize();
  const shoot = async (file) => {
    const height = Math.min(1600, await page.evaluate(() => document.documentElement.scrollHeight));
    const { width } = page.viewportSize();
    await page.screenshot({ path: path.join(shots, file), fullPage: true, clip: { x: 0, y: 0, width, height } });
  };
  await shoot(`${name}-desktop.png`);
  await page.setViewportSize({ width: 390, height: 844 });
  await shoot(`${name}-phone.png`);
  // Nothing may be wider than the phone's screen but the scrolling tables' own boxes.
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(overflow <= 390, `${name}: the page is ${overflow} px wide on a 390 px phone`);
  await page.setViewportSize(size);
}

/// Uploads `file` through the dashboard's form, chosen with the file input or (`drop`) dropped on
/// the form as a browser drops a dragged file, and returns the submission's id (from the page the
/// form leads to).
async function upload(page, file, { drop = false } = {}) {
  await page.goto(base + "/dashboard");
  if (drop) {
    const transfer = await page.evaluateHandle(
      ({ bytes, name }) => {
        const data = Uint8Array.from(atob(bytes), (c) => c.charCodeAt(0));
        const t = new DataTransfer();
        t.items.add(new File([data], name, { type: "application/gzip" }));
        return t;
      },
      { bytes: fs.readFileSync(file).toString("base64"), name: path.basename(file) },
    );
    await page.dispatchEvent("[data-dropzone]", "drop", { dataTransfer: transfer });
    assert.equal(await page.textContent("[data-dropzone-name]"), "Selected: " + path.basename(file));
  } else {
    await page.setInputFiles("#file", file);
  }
  await Promise.all([page.waitForURL(/\/submissions\/\d+$/), page.click("#upload-form button[type=submit]")]);
  return Number(page.url().match(/(\d+)$/)[1]);
}

/// Waits until the page shows the report, which the live progress loads in place.
async function report(page) {
  await page.waitForSelector("#score", { timeout: GRADING_MS });
}

test("a wrong token gets a clear page; the session cookie is HttpOnly and SameSite=Strict and logging out ends it", async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(base + "/login");
  assert.equal(await page.title(), "Log in · runtime-grader");
  await page.fill("#token", "rg_" + "0".repeat(64));
  const [response] = await Promise.all([page.waitForResponse(/\/login$/), page.click("button[type=submit]")]);
  assert.equal(response.status(), 401);
  assert.match(await page.textContent("#login-error"), /Wrong or revoked token/);
  await screenshots(page, "login-wrong-token");
  await context.close();

  const { context: ok, page: dashboard } = await logIn("s1");
  const [cookie] = await ok.cookies();
  assert.equal(cookie.name, "rg_session");
  assert.equal(cookie.httpOnly, true);
  assert.equal(cookie.sameSite, "Strict");
  assert.ok(!cookie.value.startsWith("rg_"), "the cookie is not the token");
  assert.match(await dashboard.textContent("#formats"), /\.tar\.gz.*\.zip.*at most 1 MiB/s);
  await Promise.all([dashboard.waitForURL(/\/login$/), dashboard.click("text=Log out")]);
  assert.deepEqual(await ok.cookies(), [], "the cookie outlived the log-out");
  await ok.addCookies([{ ...cookie }]);
  await dashboard.goto(base + "/dashboard");
  assert.equal(new URL(dashboard.url()).pathname, "/login", "the session outlived the log-out");
  await ok.close();
});

test("a student uploads the reference, watches the progress (queued, building, test k of n) without a reload, and reads 100/100", async () => {
  const { context, page } = await logIn("s1");
  // Records every text the progress line shows, from before the page's own script runs.
  await page.addInitScript(() => {
    window.seen = [];
    new MutationObserver(() => {
      const text = document.getElementById("progress-text");
      if (text && window.seen.at(-1) !== text.textContent) window.seen.push(text.textContent);
    }).observe(document, { subtree: true, childList: true, characterData: true });
  });
  await page.goto(base + "/dashboard");
  await screenshots(page, "dashboard-empty");
  // An upload through the API first (the one worker grades it for seconds), so that the form's
  // upload waits in the queue.
  const form = new FormData();
  form.append("file", new Blob([fs.readFileSync(archives.reference)]), "02_runtime.tar.gz");
  const first = await fetch(base + "/api/submissions", { method: "POST", headers: { authorization: `Bearer ${tokens.s1}` }, body: form });
  assert.equal(first.status, 202);
  submissions.first = (await first.json()).id;
  const id = await upload(page, archives.reference);
  submissions.reference = id;
  // Set once on this document: a reload would lose it.
  await page.evaluate(() => { window.notReloaded = true; });
  await report(page);
  const seen = await page.evaluate(() => window.seen);
  assert.ok(await page.evaluate(() => window.notReloaded), "the page was reloaded");
  assert.match(seen[0], /^Queued: position 1 in the queue\.$/, `not queued first: ${JSON.stringify(seen)}`);
  assert.ok(seen.some((t) => /Building/.test(t)), `no building step in ${JSON.stringify(seen)}`);
  assert.ok(seen.some((t) => /test \d+ of \d+/.test(t)), `no test k of n in ${JSON.stringify(seen)}`);
  assert.equal((await page.textContent("#score")).trim(), "100/100");
  const bars = await page.$$eval(".bars li", (items) => items.map((li) => [li.dataset.category, li.className]));
  assert.ok(bars.length >= 4, `categories: ${JSON.stringify(bars)}`);
  for (const [category, state] of bars) assert.equal(state, "full", `${category} is not full`);
  assert.match(await page.title(), /^Submission #\d+: graded 100\/100/);
  await screenshots(page, "submission-100");
  await page.goto(base + "/dashboard");
  assert.equal((await page.textContent("#best")).trim(), "100/100");
  await screenshots(page, "dashboard");
  await context.close();
});

test("a buggy variant (dropped on the form) shows the failing category and its hints, and no hidden test's name or output", async () => {
  const { context, page } = await logIn("s1");
  submissions.buggy = await upload(page, archives.buggy, { drop: true });
  await report(page);
  const priority = await page.$eval(".bars li[data-category=priority]", (li) => li.className);
  assert.equal(priority, "partial");
  const failed = await page.$$eval("table.tests tbody tr.failed", (rows) =>
    rows.map((r) => ({
      name: r.querySelector(".test-name").textContent,
      category: r.children[1].textContent,
      hint: r.querySelector(".hint")?.textContent ?? "",
      output: r.querySelector(".output") !== null,
    })),
  );
  assert.ok(failed.some((t) => t.category === "priority"), JSON.stringify(failed));
  assert.ok(failed.every((t) => t.hint.startsWith("Hint:")), "a failed test without its hint");
  // No name of a hidden test anywhere on the student's page.
  const html = await page.content();
  const rubric = fs.readFileSync(path.join(repo, "hidden-tests/rubric.toml"), "utf8");
  for (const entry of rubric.split(/^\[\[test\]\]$/m).slice(1)) {
    const name = entry.match(/name = "([^"]+)"/)[1];
    if (/visible = false/.test(entry)) assert.ok(!html.includes(name), `hidden test ${name} is named`);
  }
  const hidden = failed.filter((t) => /^hidden test \d+$/.test(t.name));
  assert.ok(hidden.length > 0, "no hidden test failed: the variant no longer checks hiding");
  assert.ok(hidden.every((t) => !t.output), "a hidden test shows its output to a student");
  await screenshots(page, "submission-buggy");
  await context.close();
});

test("a crate that does not compile shows the diagnostic beside the offending line (form sent without JavaScript)", async () => {
  const noJs = await logIn("s2", { javaScriptEnabled: false });
  const id = await upload(noJs.page, archives.broken);
  submissions.broken = id;
  assert.equal(await noJs.page.getAttribute("#refresh", "href"), `/submissions/${id}`);
  await noJs.context.close();

  const { context, page } = await logIn("s2");
  await page.goto(`${base}/submissions/${id}`);
  await report(page);
  assert.equal((await page.textContent("#status")).trim(), "did not compile");
  const locations = await page.$$eval(".diagnostic .location", (els) => els.map((e) => e.textContent));
  assert.ok(
    locations.some((l) => l.startsWith(`src/lib.rs:${archives.brokenLine}:`)),
    `no diagnostic at src/lib.rs:${archives.brokenLine}: ${locations}`,
  );
  const marked = await page.$$eval("table.excerpt tr.mark", (rows) => rows.map((r) => [r.querySelector("th").textContent, r.querySelector("td").textContent]));
  assert.ok(
    marked.some(([n, code]) => Number(n) === archives.brokenLine && code.includes('"forty-two"')),
    `the offending line is not shown: ${JSON.stringify(marked)}`,
  );
  await screenshots(page, "submission-build-failed");

  // Another student's submission does not exist for s2.
  const response = await page.goto(`${base}/submissions/${submissions.reference}`);
  assert.equal(response.status(), 404);
  assert.ok(!(await page.content()).includes("100/100"));
  await keepHtml(page, "not-found");
  await context.close();
});

test("an instructor sees both students, sorts, filters and opens a drill-down with the code", async () => {
  const { context, page } = await logIn("t1");
  assert.equal(await page.title(), "Gradebook · runtime-grader");
  const names = () => page.$$eval("#gradebook tbody tr:not([hidden]) th a", (as) => as.map((a) => a.textContent));
  assert.deepEqual(await names(), ["Ada Lovelace", "Alan Turing"]);
  await page.click("#gradebook thead th:has-text('Score') button");
  assert.deepEqual(await names(), ["Alan Turing", "Ada Lovelace"], "ascending by score");
  await page.click("#gradebook thead th:has-text('Score') button");
  assert.deepEqual(await names(), ["Ada Lovelace", "Alan Turing"], "descending by score");
  assert.match(await page.textContent("#policy"), /best submission counts/);
  await page.fill("#q", "turing");
  assert.deepEqual(await names(), ["Alan Turing"]);
  await page.fill("#q", "");
  await screenshots(page, "gradebook");

  // The CSV has the page's rows: each student with the counted score shown.
  const shown = await page.$$eval("#gradebook tbody tr", (trs) =>
    trs.map((tr) => [tr.dataset.id, tr.querySelector("td").textContent.trim()]),
  );
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#csv")]);
  const csv = fs.readFileSync(await download.path(), "utf8").trim().split("\n").map((l) => l.split(","));
  const [header, ...rows] = csv;
  const column = (name) => header.indexOf(name);
  assert.equal(rows.length, shown.length, `CSV rows: ${JSON.stringify(rows)}`);
  for (const [id, score] of shown) {
    const row = rows.find((r) => r[column("id")] === id);
    assert.ok(row, `no CSV row for ${id}`);
    assert.equal(`${row[column("final_score")]}/${row[column("max_score")]}`, score, `${id}'s score`);
  }

  await Promise.all([page.waitForURL(/\/submissions\/\d+$/), page.click("#gradebook tr:has-text('Ada Lovelace') td a >> text=100/100")]);
  // Of two equal best scores, the gradebook counts the older one.
  assert.equal(page.url(), `${base}/submissions/${submissions.first}`);
  const files = await page.$$eval("#files summary code", (els) => els.map((e) => e.textContent));
  assert.ok(files.includes("src/lib.rs") && files.includes("src/executor.rs"), JSON.stringify(files));
  const first = await page.$eval("#files table.code tr", (tr) => tr.querySelector("th").textContent);
  assert.equal(first, "1");
  // The full report names hidden tests.
  const testNames = await page.$$eval(".test-name", (els) => els.map((e) => e.textContent));
  assert.ok(!testNames.some((n) => /^hidden test/.test(n)), "the instructor sees hidden names");
  await screenshots(page, "instructor-drill-down");

  // A regrade of this submission, followed on its page (which refreshes itself) until it is done.
  await Promise.all([page.waitForURL(/\/regrades\/\d+$/), page.click("#regrade-submission")]);
  assert.match(await page.textContent("#regrade-progress"), /of 1 graded/);
  await page.locator("#regrade-progress", { hasText: "Finished: 1 of 1 graded." }).waitFor({ timeout: 300_000 });
  await screenshots(page, "regrade-finished");

  await page.goto(`${base}/students/s2`);
  assert.match(await page.title(), /Alan Turing/);
  await keepHtml(page, "student-s2");
  await page.goto(`${base}/submissions/${submissions.broken}`);
  assert.ok((await page.$$("#files table.code")).length > 0);
  await context.close();
});

test("every page kept above is valid HTML (the Nu HTML checker)", () => {
  const files = fs.readdirSync(path.join(work, "html")).map((f) => path.join(work, "html", f));
  assert.ok(files.length >= 8, `only ${files.length} pages kept`);
  const jar = path.join(path.dirname(fileURLToPath(import.meta.url)), "node_modules/vnu-jar/build/dist/vnu.jar");
  try {
    execFileSync("java", ["-jar", jar, "--errors-only", "--format", "text", ...files], { encoding: "utf8", stdio: "pipe" });
  } catch (e) {
    assert.fail(`the HTML checker found errors:\n${e.stderr}${e.stdout}`);
  }
});
