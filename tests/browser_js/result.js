// Opens a page in Debian's Chromium with playwright-core and prints the window.__result it publishes.
// argv: page URL, a fresh user-data-dir, the Chromium executable. (tests/test_acl_public.py)
"use strict";
const { chromium } = require("playwright-core");

const [url, userDataDir, executablePath] = process.argv.slice(2);
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
    await page.goto(url);
    const handle = await page.waitForFunction(() => window.__result, null, { timeout: 90000 });
    process.stdout.write(JSON.stringify(await handle.jsonValue()));
  } finally {
    await context.close();
  }
})().catch((e) => {
  process.stderr.write(String((e && e.stack) || e) + "\n");
  process.exit(1);
});
