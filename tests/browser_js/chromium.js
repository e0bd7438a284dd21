// Launching Debian's Chromium with playwright-core, shared by the browser tests' drivers.
"use strict";
const { chromium } = require("playwright-core");

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

// Runs `body(context)` in a fresh persistent profile and closes the browser whatever happens;
// a failure prints its stack and exits 1 so the Python test shows it.
function withPersistentContext(userDataDir, executablePath, body) {
  return (async () => {
    const context = await chromium.launchPersistentContext(userDataDir, {
      executablePath,
      headless: true,
      args: FLAGS,
      timeout: 60000,
    });
    try {
      await body(context);
    } finally {
      await context.close();
    }
  })().catch((e) => {
    process.stderr.write(String((e && e.stack) || e) + "\n");
    process.exit(1);
  });
}

module.exports = { chromium, FLAGS, withPersistentContext };
