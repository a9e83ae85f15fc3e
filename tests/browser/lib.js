// Shared by the browser tests (tests/browser/*_pages.js): the environment,
// checks that do not stop the test when they fail, a phone-sized page, and
// what every page must hold.
'use strict';

const assert = require('node:assert/strict');

let failures = 0;

function env(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set (run through its tests/e2e/test_browser*.sh)`);
  return v;
}

// A check that does not stop the test when it fails: one "ok:" or "FAIL:" line.
async function check(what, fn) {
  try {
    await fn();
    console.log(`ok: ${what}`);
  } catch (e) {
    failures++;
    console.log(`FAIL: ${what}: ${e.message.split('\n')[0]}`);
  }
}

// Exit 1 when any check failed.
function finish() {
  process.exit(failures ? 1 : 0);
}

// A phone-sized page that records every dialog (there must never be one: the
// pages carry no script, and a tenant's name must not become one).
async function newPage(browser, dialogs) {
  const context = await browser.newContext({
    ignoreHTTPSErrors: true, // the broker's dev certificate
    viewport: { width: 390, height: 844 },
    isMobile: true,
    hasTouch: true,
  });
  const page = await context.newPage();
  page.setDefaultTimeout(10000);
  page.on('dialog', (d) => {
    dialogs.push(`${d.type()}: ${d.message()}`);
    d.dismiss().catch(() => {});
  });
  return { context, page };
}

// What every page must hold: no script at all, and nothing wider than a phone.
async function pageChecks(page, name) {
  await check(`${name}: no script element`, async () => {
    assert.equal(await page.locator('script').count(), 0);
  });
  await check(`${name}: fits a phone's width (no horizontal scrolling)`, async () => {
    const [scroll, width] = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
    assert.ok(scroll <= width, `page is ${scroll}px wide in a ${width}px window`);
  });
}

module.exports = { env, check, finish, newPage, pageChecks };
