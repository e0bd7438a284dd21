// Opens a page in Debian's Chromium with playwright-core and prints the window.__result it publishes.
// argv: page URL, a fresh user-data-dir, the Chromium executable. (tests/test_acl_public.py)
"use strict";
const { withPersistentContext } = require("./chromium.js");

const [url, userDataDir, executablePath] = process.argv.slice(2);

withPersistentContext(userDataDir, executablePath, async (context) => {
  const page = context.pages()[0] || (await context.newPage());
  await page.goto(url);
  const handle = await page.waitForFunction(() => window.__result, null, { timeout: 90000 });
  process.stdout.write(JSON.stringify(await handle.jsonValue()));
});
