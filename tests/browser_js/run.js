// Drives Debian's Chromium with playwright-core for tests/test_browser.py.
// argv: page URL, a fresh user-data-dir, the Chromium executable. Prints the page's result as JSON.
"use strict";
const { chromium } = require("playwright-core");

const [url, userDataDir, executablePath] = process.argv.slice(2);
// What a closed network needs: no sandbox (root in CI), no GPU, nothing fetched in the background.
const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-proxy-server",
];

(async () => {
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    args: FLAGS,
    timeout: 60000,
  });
  try {
    const page = context.pages()[0] || (await context.newPage());
    const consoleLines = [];
    page.on("console", (m) => consoleLines.push(m.text()));
    await page.goto(url);
    // The page runs its fetch scenario and publishes window.__result.
    const handle = await page.waitForFunction(() => window.__result, null, { timeout: 90000 });
    const result = await handle.jsonValue();
    // Then a plain HTML form posts to Vaultaire, which redirects back to this origin.
    await Promise.all([
      page.waitForURL((u) => u.pathname === "/done", { timeout: 30000 }),
      page.evaluate(() => window.submitForm()),
    ]);
    result.formRedirect = page.url();
    result.console = consoleLines;
    process.stdout.write(JSON.stringify(result));
  } finally {
    await context.close();
  }
})().catch((e) => {
  process.stderr.write(String((e && e.stack) || e) + "\n");
  process.exit(1);
});
