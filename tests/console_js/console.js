// Drives Debian's Chromium through the web console with playwright-core for tests/test_console_browser.py.
// argv: a JSON file of what to do (see the test). Prints what it saw as JSON; the test checks it.
"use strict";
const fs = require("fs");
const crypto = require("crypto");
const path = require("path");
const { chromium, FLAGS } = require("../browser_js/chromium.js");

const plan = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const sha256 = (buffer) => crypto.createHash("sha256").update(buffer).digest("hex");
const out = { steps: [], dialogs: [], screenshots: [] };

async function shot(page, name) {
  const file = path.join(plan.screenshots, name + ".png");
  await page.screenshot({ path: file, fullPage: true });
  out.screenshots.push(file);
}

async function login(page, access, secret) {
  await page.goto(plan.console + "/login");
  await page.fill("input[name=access_key]", access);
  await page.fill("input[name=secret_key]", secret);
  await Promise.all([page.waitForURL((u) => u.pathname !== "/login"), page.click("#login button")]);
}

// A click that loads a new page (a form posted, a redirect followed), waited for to the end.
function clickAndLoad(page, selector) {
  return Promise.all([page.waitForEvent("load", { timeout: 60000 }), page.click(selector)]);
}

// Every value a progress bar takes is reported as it changes (a progress element's value
// property is reflected in its attribute), into progressSeen: no polling to miss one.
const progressSeen = [];
async function watchProgress(context) {
  await context.exposeBinding("__recordProgress", (_, value) => progressSeen.push(value));
  await context.addInitScript(() => {
    document.addEventListener("DOMContentLoaded", () => {
      const box = document.getElementById("progress");
      if (!box) return;
      new MutationObserver((records) => {
        for (const r of records) if (r.target.tagName === "PROGRESS") window.__recordProgress(r.target.value);
      }).observe(box, { subtree: true, attributes: true, attributeFilter: ["value"] });
    });
  });
}

// The page reloads when all the files are up.
async function upload(page, files) {
  await page.setInputFiles("#file", files);
  await Promise.all([page.waitForEvent("load", { timeout: 120000 }), page.click("#upload button[type=submit]")]);
}

(async () => {
  const browser = await chromium.launch({ executablePath: plan.chromium, headless: true, args: FLAGS, timeout: 60000 });
  try {
    const context = await browser.newContext({
      acceptDownloads: true,
      viewport: { width: 1100, height: 800 },
      permissions: ["clipboard-read", "clipboard-write"],
    });
    await watchProgress(context);
    const page = await context.newPage();
    page.on("dialog", async (d) => {
      out.dialogs.push(d.message());
      await d.dismiss();
    });
    page.on("pageerror", (e) => out.steps.push("pageerror: " + e.message));

    await page.goto(plan.console + "/");
    out.unauthenticated = new URL(page.url()).pathname;
    await shot(page, "01-login");
    await login(page, plan.access, plan.secret);
    out.afterLogin = new URL(page.url()).pathname;
    const cookies = await context.cookies();
    out.cookies = cookies.map((c) => ({ name: c.name, httpOnly: c.httpOnly, sameSite: c.sameSite }));

    // Create a bucket (versioning off), then upload by the upload control.
    await page.fill("#create-bucket input[name=bucket]", plan.bucket);
    await Promise.all([page.waitForURL(/\/b\//), page.click("#create-bucket button")]);
    out.created = new URL(page.url()).pathname;
    // The 20 MiB go up at 10 MiB/s (Chromium's own throttling), so the bar has time to move.
    const cdp = await context.newCDPSession(page);
    await cdp.send("Network.enable");
    const throttle = { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: 10 * 2 ** 20 };
    await cdp.send("Network.emulateNetworkConditions", throttle);
    await upload(page, [plan.bigFile]);
    out.uploadProgress = progressSeen.slice();
    out.listedAfterUpload = await page.$$eval("#objects a.object", (as) => as.map((a) => a.textContent));
    // Another large file, cancelled while its second part goes up: the upload is aborted.
    await page.setInputFiles("#file", [plan.cancelFile]);
    await page.click("#upload button[type=submit]");
    await page.waitForFunction(() => {
      const bar = document.querySelector("#progress progress");
      return bar && bar.value > 0.45;
    }, null, { timeout: 60000 });
    await page.click("#cancel");
    await page.waitForSelector("#progress[data-state=cancelled]", { timeout: 60000 });
    out.cancelledRow = await page.textContent("#progress");
    // And another, left behind by going to another page: the page's beacon aborts it.
    await page.setInputFiles("#file", [{ name: "left.bin", mimeType: "application/octet-stream", buffer: Buffer.alloc(20 * 2 ** 20) }]);
    await page.click("#upload button[type=submit]");
    await page.waitForFunction(() => {
      const bar = document.querySelector("#progress progress");
      return bar && bar.value > 0.45;
    }, null, { timeout: 60000 });
    await page.goto(plan.console + "/b/" + plan.bucket);
    await cdp.send("Network.emulateNetworkConditions", { ...throttle, uploadThroughput: -1 });
    for (const item of plan.seed) {
      const put = await context.request.put(item.url, { data: item.body });
      out.steps.push("seed " + put.status());
    }
    await shot(page, "02-bucket");

    // The objects the test put with boto3 (a prefix, a hostile name) show after a reload.
    await page.goto(plan.console + "/b/" + plan.bucket);
    out.rootListing = await page.$$eval("#objects a", (as) => as.map((a) => a.textContent));
    out.hostileShown = await page.$$eval("#objects a.object", (as, name) => as.some((a) => a.textContent === name), plan.hostile);
    out.imagesInListing = await page.$$eval("#objects img", (imgs) => imgs.length);
    await Promise.all([page.waitForURL(/prefix=/), page.click("#objects a.folder")]);
    out.prefixUrl = page.url();
    out.prefixListing = await page.$$eval("#objects a.object", (as) => as.map((a) => a.textContent));
    await shot(page, "03-prefix");

    // Download the uploaded file and compare.
    await page.goto(plan.console + "/b/" + plan.bucket + "/object?key=" + encodeURIComponent(path.basename(plan.bigFile)));
    await shot(page, "04-object");
    const [download] = await Promise.all([page.waitForEvent("download"), page.click("#download")]);
    const saved = path.join(plan.screenshots, "..", "downloaded.bin");
    await download.saveAs(saved);
    out.downloadSha256 = sha256(fs.readFileSync(saved));
    out.downloadName = download.suggestedFilename();

    // Share link, fetched from a fresh context with no cookies.
    await page.fill("#share input[name=hours]", "2");
    await clickAndLoad(page, "#share button");
    await page.waitForSelector("#share-link");
    out.shareLink = await page.inputValue("#share-link");
    await page.click("#copy");
    await page.waitForFunction(() => document.getElementById("copy").textContent !== "Copy");
    out.copyLabel = await page.textContent("#copy");
    out.clipboard = await page.evaluate(() => navigator.clipboard.readText());
    await shot(page, "05-share");
    const stranger = await browser.newContext();
    const fetched = await stranger.request.get(out.shareLink);
    out.shareStatus = fetched.status();
    out.shareSha256 = sha256(await fetched.body());
    await stranger.close();

    // Versioning on, overwrite a file, restore the first version.
    await page.goto(plan.console + "/b/" + plan.bucket);
    await clickAndLoad(page, "#versioning");
    out.versioning = await page.textContent("#versioning-state");
    await upload(page, [{ name: "v.txt", mimeType: "text/plain", buffer: Buffer.from("first version") }]);
    await upload(page, [{ name: "v.txt", mimeType: "text/plain", buffer: Buffer.from("second version") }]);
    await page.goto(plan.console + "/b/" + plan.bucket + "/object?key=v.txt");
    out.versionRows = await page.$$eval("#versions tbody tr", (rows) => rows.length);
    await shot(page, "06-versions");
    await clickAndLoad(page, "#versions button.restore");
    out.versionRowsAfterRestore = await page.$$eval("#versions tbody tr", (rows) => rows.length);
    out.afterRestore = (await page.textContent("main")).slice(0, 500);

    // The settings page: a policy S3 refuses comes back with S3's reason, the text kept.
    await page.goto(plan.console + "/b/" + plan.bucket + "/settings");
    await page.fill("#policy textarea", plan.badPolicy);
    await clickAndLoad(page, "#policy button[value=save]");
    out.policyError = await page.textContent("#policy .notice");
    out.policyKept = await page.inputValue("#policy textarea");
    await shot(page, "10-settings");

    // The hostile name's own page: text, never markup.
    await page.goto(plan.console + "/b/" + plan.bucket + "/object?key=" + encodeURIComponent(plan.hostile));
    out.hostileKeyText = await page.textContent("#key");

    // Without JavaScript the upload form posts straight to S3 (POST Object, signed for this
    // user), which sends the browser back to the listing.
    const plain = await browser.newContext({ javaScriptEnabled: false });
    const ppage = await plain.newPage();
    await login(ppage, plan.access, plan.secret);
    await ppage.goto(plan.console + "/b/" + plan.bucket + "?prefix=docs%2F");
    await ppage.setInputFiles("#file", [{ name: "plain form.txt", mimeType: "text/plain", buffer: Buffer.from("no script") }]);
    await Promise.all([ppage.waitForURL((u) => u.port === new URL(plan.console).port && u.pathname.startsWith("/b/")), ppage.click("#upload button[type=submit]")]);
    out.plainUploadBack = ppage.url();
    out.plainListing = await ppage.$$eval("#objects a.object", (as) => as.map((a) => a.textContent));
    await plain.close();

    // A form posted without the CSRF token is refused, signed in or not.
    const forged = await page.request.post(plan.console + "/buckets", { form: { bucket: plan.forgedBucket } });
    out.forgedStatus = forged.status();

    // Usage and bill.
    await page.goto(plan.console + "/usage");
    out.bill = await page.textContent("#bill");
    out.charts = await page.$$eval("svg[role=img]", (svgs) => svgs.map((s) => s.id));
    const csv = await page.request.get(plan.console + "/usage.csv");
    out.csvHead = (await csv.text()).split("\n")[0];
    await shot(page, "07-usage");

    // Log out: the old session cookie no longer opens anything.
    const before = await context.cookies();
    await Promise.all([page.waitForURL(/\/login/), page.click("#logout button")]);
    await context.addCookies(before.filter((c) => c.name === "vaultaire_console"));
    await page.goto(plan.console + "/b/" + plan.bucket);
    out.afterLogout = new URL(page.url()).pathname;

    // A restricted user sees only what its policy allows.
    const restricted = await browser.newContext();
    const rpage = await restricted.newPage();
    await login(rpage, plan.restrictedAccess, plan.restrictedSecret);
    out.restrictedHome = await rpage.textContent("main");
    await shot(rpage, "08-restricted-home");
    await rpage.goto(plan.console + "/b/" + plan.bucket);
    out.restrictedListing = await rpage.$$eval("#objects a", (as) => as.map((a) => a.textContent));
    await rpage.goto(plan.console + "/b/" + plan.otherBucket);
    out.restrictedOther = await rpage.textContent("main");
    await rpage.goto(plan.console + "/");
    await rpage.fill("#create-bucket input[name=bucket]", "restricted-made");
    await clickAndLoad(rpage, "#create-bucket button");
    out.restrictedCreate = await rpage.textContent("main");
    await shot(rpage, "09-restricted-refused");
    await rpage.goto(plan.console + "/usage");
    out.restrictedUsage = await rpage.textContent("main");
    await restricted.close();

    // The operator's pages.
    const ops = await browser.newContext({ viewport: { width: 1100, height: 800 } });
    const opage = await ops.newPage();
    await login(opage, plan.operatorAccess, plan.operatorSecret);
    out.operatorHome = new URL(opage.url()).pathname;
    out.operatorTenants = await opage.$$eval("#tenants a.tenant", (as) => as.map((a) => a.textContent));
    await shot(opage, "11-operator-tenants");
    await Promise.all([opage.waitForURL(/\/ops\/t\//), opage.click("#tenants a.tenant")]);
    out.operatorBill = await opage.textContent("#tenant-bill");
    out.operatorCharts = await opage.$$eval("svg[role=img]", (svgs) => svgs.map((s) => s.id));
    out.operatorUsers = await opage.textContent("#users");
    await shot(opage, "12-operator-tenant");
    await opage.goto(plan.console + "/ops/workers");
    out.operatorWorkers = await opage.$$eval("#workers tbody tr", (trs) =>
      trs.map((tr) => Array.from(tr.cells).map((td) => td.textContent)),
    );
    await shot(opage, "13-operator-workers");
    await opage.goto(plan.console + "/ops/metrics");
    out.operatorMetricCharts = await opage.$$eval("svg[role=img]", (svgs) =>
      svgs.filter((s) => s.querySelector("polyline")).map((s) => s.id),
    );
    await shot(opage, "14-operator-metrics");
    await ops.close();
    await context.close();
  } finally {
    await browser.close();
  }
  process.stdout.write(JSON.stringify(out));
})().catch((e) => {
  process.stderr.write(String((e && e.stack) || e) + "\n");
  process.stdout.write(JSON.stringify(out));
  process.exit(1);
});
