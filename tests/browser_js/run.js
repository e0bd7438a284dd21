// Drives Debian's Chromium with playwright-core for tests/test_browser.py.
// argv: page URL, a fresh user-data-dir, the Chromium executable. Prints the page's result as JSON.
"use strict";
const { withPersistentContext } = require("./chromium.js");

const [url, userDataDir, executablePath] = process.argv.slice(2);

withPersistentContext(userDataDir, executablePath, async (context) => {
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
});
