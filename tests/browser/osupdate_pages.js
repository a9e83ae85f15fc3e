// The owner's OS-update controls of lmdm in headless Chromium (Debian's
// package), driven by playwright-core. Run by tests/e2e/test_browser_osupdate.sh,
// which starts the broker with a fixed clock (1 September 2026, 12:00 UTC, zone
// Europe/Berlin), imports iOS 18.7 (a security release of that day), defines
// the rings it (0 days) and broad (7, the default), enrolls one simulated
// iPhone on iOS 18.1 and has one tenant (named with markup) require every
// security release within 14 days with at most one deferral. Then, as the
// device's owner, on the owner page:
//
//   1. the pending update to 18.7, its deadline (Berlin time, zone named) and
//      "<tenant> requires 18.7 by 15 September 2026"; ring broad, one deferral left
//   2. ring it → installs on the release day at 02:00
//   3. a later install time (a deferral) → "(your choice)", no deferral left
//   4. no "Defer by one day" button; a later time is refused (409, why,
//      "Nothing was changed.")
//   5. an earlier time is accepted
//   6. time zone America/New_York → the owner's install time is shown 6 hours
//      earlier (the same instant); the deadline stays 02:00 local (a deadline
//      is a calendar day at the install time of day in the device's zone)
//   7. the tenant's name is text throughout, and no dialog ever opens
//
// After each choice the page is reloaded until the planner has re-planned
// (bounded). Environment: LMDM_CHROMIUM, LMDM_SHOTS, LMDM_OWNER_URL,
// LMDM_PUBLIC_URL, LMDM_TENANT (the tenant's name, with markup in it),
// LMDM_TENANT_HTML (that name as the page's HTML must carry it). Prints one
// "ok:" or "FAIL:" line per check; exits 1 when any check failed.
'use strict';

const assert = require('node:assert/strict');
const path = require('node:path');
const { chromium } = require('playwright-core');
const { env, check, finish, newPage, pageChecks } = require('./lib.js');

const SHOTS = env('LMDM_SHOTS');
const PUBLIC_URL = env('LMDM_PUBLIC_URL');
const TENANT = env('LMDM_TENANT');
const TENANT_HTML = env('LMDM_TENANT_HTML');

async function text(locator) {
  return ((await locator.textContent()) ?? '').trim();
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

// The parts of the OS-update section.
const sel = {
  pending: '.osupdate p.pending',
  why: '.osupdate ul.why li',
  when: '.osupdate ul.why + p', // "Installs on ..." follows the reasons
  when_input: '.osupdate input[name="when"]',
  ring: '.osupdate select[name="ring"]',
  zone: '.osupdate input[name="timezone"]',
};

function deferralsLine(page) {
  return page.locator('.osupdate p', { hasText: /deferral/ });
}

function button(page, name) {
  return page.locator('.osupdate').getByRole('button', { name, exact: true });
}

// Reload the owner page until `selector` reads `expected` (the planner re-plans
// a moment after a choice is stored); at most 50 reloads, 200 ms apart. Returns
// the raw HTML of the last answer.
async function untilShown(page, selector, expected) {
  let seen = '';
  for (let i = 0; i < 50; i++) {
    const loc = page.locator(selector);
    if ((await loc.count()) === 1) {
      seen = await text(loc);
      if (seen === expected) return;
    }
    await page.waitForTimeout(200);
    await page.reload();
  }
  throw new Error(`the page still reads '${seen}', expected '${expected}'`);
}

// Click a submit button: the status of the POST and where the browser ends up.
async function submit(page, btn) {
  const [resp] = await Promise.all([page.waitForNavigation(), btn.click()]);
  const first = resp.request().redirectedFrom();
  const post = first ? await first.response() : resp;
  return { post: post.status(), method: (first ?? resp.request()).method(), final: resp.status(), url: page.url() };
}

async function afterChoice(what, res) {
  await check(`${what}: POST /owner/osupdate answers 303 back to /owner`, async () => {
    assert.deepEqual([res.method, res.post, res.final, res.url], ['POST', 303, 200, `${PUBLIC_URL}/owner`]);
  });
}

// 1. What the owner sees first: ring broad (the default), not started yet.
async function initial(page) {
  const resp = await page.goto(env('LMDM_OWNER_URL'));
  assert.equal(resp.status(), 200, `owner link answered ${resp.status()}`);
  assert.equal(page.url(), `${PUBLIC_URL}/owner`, 'the owner link leads to /owner');
  const html = await resp.text();
  await shot(page, '1-owner-initial');
  await check('1: the pending update, the deadline in Berlin time with its zone, and who set it', async () => {
    assert.equal(
      await text(page.locator(sel.pending)),
      `Update to 18.7 (now 18.1). Deadline: 15 September 2026, 02:00 (Europe/Berlin), set by ${TENANT}.`
    );
  });
  await check('1: why: "<tenant> requires 18.7 by 15 September 2026"', async () => {
    assert.deepEqual(await page.locator(sel.why).allTextContents(), [`${TENANT} requires 18.7 by 15 September 2026`]);
  });
  await check('1: ring broad waits 7 days: when it starts and when it installs', async () => {
    assert.equal(
      await text(page.locator(sel.when)),
      'Your ring starts on 8 September 2026, 00:00; it installs on 8 September 2026, 02:00.'
    );
  });
  await check('1: the install-time input holds the planned time, at most the deadline', async () => {
    const input = page.locator(sel.when_input);
    assert.equal(await input.getAttribute('type'), 'datetime-local');
    assert.equal(await input.inputValue(), '2026-09-08T02:00');
    assert.equal(await input.getAttribute('max'), '2026-09-15T02:00');
  });
  await check('1: one deferral left, and the "Defer by one day" button', async () => {
    assert.deepEqual(await deferralsLine(page).allTextContents(), ['1 deferral left.']);
    assert.equal(await button(page, 'Defer by one day').count(), 1);
  });
  await check('1: the ring <select> offers it and broad, broad chosen', async () => {
    const options = page.locator(`${sel.ring} option`);
    assert.deepEqual(await options.evaluateAll((os) => os.map((o) => o.value)), ['it', 'broad']);
    assert.deepEqual(await options.allTextContents(), [
      'it (0 days after a release)',
      'broad (7 days after a release)',
    ]);
    assert.equal(await page.locator(sel.ring).inputValue(), 'broad');
  });
  await check('1: the time zone field holds Europe/Berlin', async () => {
    assert.equal(await page.locator(sel.zone).inputValue(), 'Europe/Berlin');
  });
  await check("7: the tenant's name with markup is escaped in the page's HTML", async () => {
    assert.ok(html.includes(`${TENANT_HTML} requires 18.7 by 15 September 2026`), 'escaped name not in the HTML');
    assert.equal(await page.locator('.osupdate img, .osupdate script').count(), 0);
  });
  await pageChecks(page, '1: owner page');
}

// 2. Ring it: the plan starts on the release day, installs at 02:00.
async function ringIt(page) {
  await page.locator(sel.ring).selectOption('it');
  await afterChoice('2: ring it', await submit(page, button(page, 'Change ring')));
  await check('2: after the planner ran: installs on the release day at 02:00', async () => {
    await untilShown(page, sel.when,
      'Installs on 1 September 2026, 02:00: that time has passed, so it installs at the next opportunity.');
  });
  await shot(page, '2-owner-ring-it');
  await check('2: ring it is chosen; the deadline is unchanged', async () => {
    assert.equal(await page.locator(sel.ring).inputValue(), 'it');
    assert.equal(
      await text(page.locator(sel.pending)),
      `Update to 18.7 (now 18.1). Deadline: 15 September 2026, 02:00 (Europe/Berlin), set by ${TENANT}.`
    );
  });
  await check('2: the device installs it by itself (the enforcement declaration)', async () => {
    assert.equal(
      await text(page.locator(sel.when).locator('xpath=following-sibling::p[1]')),
      'The device will tell you beforehand and install it by itself at that time if you have not installed it earlier.'
    );
  });
  await check('2: still one deferral left', async () => {
    assert.deepEqual(await deferralsLine(page).allTextContents(), ['1 deferral left.']);
    assert.equal(await button(page, 'Defer by one day').count(), 1);
  });
}

async function schedule(page, when) {
  await page.locator(sel.when_input).fill(when);
  return submit(page, button(page, 'Schedule'));
}

// 3. A later time than planned: the one deferral.
async function deferLater(page) {
  await afterChoice('3: install at 5 September 2026, 21:00', await schedule(page, '2026-09-05T21:00'));
  await check('3: the page shows the new install time, "(your choice)"', async () => {
    await untilShown(page, sel.when, 'Installs on 5 September 2026, 21:00 (your choice).');
  });
  await shot(page, '3-owner-deferred');
  await check('3: no deferral left', async () => {
    assert.deepEqual(await deferralsLine(page).allTextContents(), [
      'No deferral left: it can be moved earlier, not later.',
    ]);
  });
  await check('3: the input holds the chosen time', async () => {
    assert.equal(await page.locator(sel.when_input).inputValue(), '2026-09-05T21:00');
  });
}

// 4. No deferral left: the button is gone and a later time is refused.
async function refusedLater(page) {
  await check('4: the "Defer by one day" button is gone', async () => {
    assert.equal(await button(page, 'Defer by one day').count(), 0);
  });
  const res = await schedule(page, '2026-09-06T21:00');
  await shot(page, '4-refused-later');
  await check('4: a later time is refused: 409, no redirect', async () => {
    assert.deepEqual([res.method, res.post, res.url], ['POST', 409, `${PUBLIC_URL}/owner/osupdate`]);
  });
  await check('4: the refusal says why and that nothing was changed', async () => {
    assert.equal(await text(page.locator('h1')), 'That cannot be done');
    assert.deepEqual((await page.locator('main p').allTextContents()).slice(0, 2), [
      'No deferral is left: the install can only be moved earlier.',
      'Nothing was changed.',
    ]);
  });
  await pageChecks(page, '4: refusal page');
  await page.getByRole('link', { name: 'Back to my device' }).click();
  await page.locator('h1', { hasText: 'My device' }).waitFor();
  await check('4: back on the owner page, the install time is unchanged', async () => {
    assert.equal(await text(page.locator(sel.when)), 'Installs on 5 September 2026, 21:00 (your choice).');
  });
  // The input is not `required`: an emptied field is posted as when=.
  const empty = await schedule(page, '');
  await shot(page, '4-refused-empty');
  await check('4: an empty time is refused, saying what to give', async () => {
    assert.equal(empty.url, `${PUBLIC_URL}/owner/osupdate`);
    assert.ok([400, 409].includes(empty.post), `status ${empty.post}`); // docs/owner.md: 400 for a bad value
    assert.deepEqual((await page.locator('main p').allTextContents()).slice(0, 2), [
      'Give a date and time, such as 2027-03-10 21:00.',
      'Nothing was changed.',
    ]);
  });
  await page.getByRole('link', { name: 'Back to my device' }).click();
  await page.locator('h1', { hasText: 'My device' }).waitFor();
}

// 5. Earlier is always allowed.
async function earlier(page) {
  await afterChoice('5: install at 3 September 2026, 20:00', await schedule(page, '2026-09-03T20:00'));
  await check('5: an earlier time is taken', async () => {
    await untilShown(page, sel.when, 'Installs on 3 September 2026, 20:00 (your choice).');
  });
  await shot(page, '5-owner-earlier');
  await check('5: still no deferral left', async () => {
    assert.deepEqual(await deferralsLine(page).allTextContents(), [
      'No deferral left: it can be moved earlier, not later.',
    ]);
    assert.equal(await button(page, 'Defer by one day').count(), 0);
  });
}

// 6. New York: the chosen instant reads 6 hours earlier (EDT is UTC-4, CEST
// UTC+2); the deadline is the same calendar day at 02:00 New York time.
async function newYork(page) {
  await page.locator(sel.zone).fill('America/New_York');
  await afterChoice('6: time zone America/New_York', await submit(page, button(page, 'Set')));
  await check('6: the deadline is shown in New York time, zone named', async () => {
    await untilShown(
      page,
      sel.pending,
      `Update to 18.7 (now 18.1). Deadline: 15 September 2026, 02:00 (America/New_York), set by ${TENANT}.`
    );
  });
  await shot(page, '6-owner-new-york');
  await check('6: the chosen install time (20:00 Berlin) reads 14:00 in New York', async () => {
    assert.equal(await text(page.locator(sel.when)), 'Installs on 3 September 2026, 14:00 (your choice).');
    assert.equal(await page.locator(sel.when_input).inputValue(), '2026-09-03T14:00');
    assert.equal(await page.locator(sel.when_input).getAttribute('max'), '2026-09-15T02:00');
  });
  await check('6: the zone field, the ring and the deferrals are kept', async () => {
    assert.equal(await page.locator(sel.zone).inputValue(), 'America/New_York');
    assert.equal(await page.locator(sel.ring).inputValue(), 'it');
    assert.deepEqual(await deferralsLine(page).allTextContents(), [
      'No deferral left: it can be moved earlier, not later.',
    ]);
  });
  await check('6: the reason line is unchanged', async () => {
    assert.deepEqual(await page.locator(sel.why).allTextContents(), [`${TENANT} requires 18.7 by 15 September 2026`]);
  });
  await pageChecks(page, '6: owner page');
}

async function main() {
  const browser = await chromium.launch({
    executablePath: env('LMDM_CHROMIUM'),
    // No network beyond the broker on localhost.
    args: ['--no-sandbox', '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost'],
    timeout: 30000,
  });
  const dialogs = [];
  try {
    const { page } = await newPage(browser, dialogs);
    for (const step of [initial, ringIt, deferLater, refusedLater, earlier, newYork]) {
      const t0 = Date.now();
      await step(page);
      console.log(`   (${step.name}: ${Date.now() - t0} ms)`);
    }
  } finally {
    await browser.close();
  }
  await check('7: no dialog ever opened', async () => assert.deepEqual(dialogs, []));
}

main().then(
  () => finish(),
  (e) => {
    console.log(`FAIL: ${e.stack || e}`);
    process.exit(1);
  }
);
