// Times one console page in Debian's Chromium for bench/console_browse.py: signs in, then loads
// plan.path plan.repeat times and prints each load's navigation timing (ms) as JSON.
"use strict";
const fs = require("fs");
const path = require("path");
const { chromium, FLAGS } = require(path.join(__dirname, "..", "tests", "browser_js", "chromium.js"));

const plan = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));

(async () => {
  const browser = await chromium.launch({ executablePath: plan.chromium, headless: true, args: FLAGS });
  try {
    const page = await (await browser.newContext()).newPage();
    await page.goto(plan.console + "/login");
    await page.fill("input[name=access_key]", plan.access);
    await page.fill("input[name=secret_key]", plan.secret);
    await Promise.all([page.waitForURL((u) => u.pathname !== "/login"), page.click("#login button")]);
    await page.goto(plan.console + plan.path, { waitUntil: "load" }); // once untimed
    const out = [];
    for (let i = 0; i < plan.repeat; i++) {
      await page.goto(plan.console + plan.path, { waitUntil: "load" });
      out.push(
        await page.evaluate(() => {
          const n = performance.getEntriesByType("navigation")[0];
          return {
            responseEnd: n.responseEnd,
            domContentLoadedEventEnd: n.domContentLoadedEventEnd,
            loadEventEnd: n.loadEventEnd,
          };
        }),
      );
    }
    process.stdout.write(JSON.stringify(out));
  } finally {
    await browser.close();
  }
})().catch((e) => {
  process.stderr.write(String((e && e.stack) || e) + "\n");
  process.exit(1);
});
