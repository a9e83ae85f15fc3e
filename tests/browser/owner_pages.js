// The device owner's pages of lmdm in headless Chromium (Debian's package),
// driven by playwright-core. Run by tests/e2e/test_browser.sh, which starts the
// broker, enrolls a simulated device and sets up the tenants, in two phases:
//
//   node owner_pages.js accept   open the owner link, then the invitation of the
//                                tenant LMDM_TENANT_EVIL, and click Accept
//   node owner_pages.js owner    open the owner link; the owner page lists both
//                                tenants, their apps, which rule is in force and
//                                the refused EraseDevice in plain words; remove
//                                LMDM_TENANT_EVIL through the confirmation page;
//                                read /policy without a session
//
// Environment: LMDM_CHROMIUM (browser binary), LMDM_SHOTS (screenshot
// directory), LMDM_OWNER_URL, LMDM_PUBLIC_URL, LMDM_TENANT_EVIL (a name with
// markup in it), LMDM_TENANT_GOOD, and LMDM_INVITE_URL (accept) or
// LMDM_APP_EVIL / LMDM_APP_GOOD / LMDM_PROFILE_GOOD (owner). Prints one "ok:"
// or "FAIL:" line per check; exits 1 when any check failed.
'use strict';

const assert = require('node:assert/strict');
const path = require('node:path');
const { chromium } = require('playwright-core');
const { env, check, finish, newPage, pageChecks } = require('./lib.js');

const SHOTS = env('LMDM_SHOTS');
const PUBLIC_URL = env('LMDM_PUBLIC_URL');
const EVIL = env('LMDM_TENANT_EVIL');
const GOOD = env('LMDM_TENANT_GOOD');

async function text(locator) {
  return (await locator.textContent()) ?? '';
}

async function shot(page, name, fullPage = true) {
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage });
}

// Open the owner link: the cookie is set and the token leaves the address bar.
async function login(page, context) {
  const resp = await page.goto(env('LMDM_OWNER_URL'));
  assert.equal(resp.status(), 200, `owner link answered ${resp.status()}`);
  assert.equal(page.url(), `${PUBLIC_URL}/owner`, 'the owner link leads to /owner');
  const cookie = (await context.cookies()).find((c) => c.name === 'lmdm_owner');
  assert.ok(cookie, 'no lmdm_owner cookie');
  return cookie;
}

async function acceptPhase(browser, dialogs) {
  const { context, page } = await newPage(browser, dialogs);
  const cookie = await login(page, context);
  await check('owner link: redirected to /owner, the token is no longer in the URL', async () => {
    assert.ok(!page.url().includes('token='));
  });
  await check('owner cookie: HttpOnly, Secure, SameSite=Lax', async () => {
    assert.deepEqual([cookie.httpOnly, cookie.secure, cookie.sameSite], [true, true, 'Lax']);
  });
  await check('owner cookie: not readable by a script of the page', async () => {
    assert.ok(!(await page.evaluate(() => document.cookie)).includes('lmdm_owner'));
  });

  const resp = await page.goto(env('LMDM_INVITE_URL'));
  assert.equal(resp.status(), 200, `invitation answered ${resp.status()}`);
  await shot(page, 'consent');
  await check('consent page: the tenant name with markup is shown as text', async () => {
    assert.equal(await text(page.locator('h1')), `${EVIL} asks to manage some of this device`);
  });
  await check("consent page: the tenant's note is shown as text", async () => {
    assert.ok((await text(page.locator('main'))).includes('Welcome <b>aboard</b>'));
    assert.equal(await page.locator('main b').count(), 0);
  });
  await check('consent page: what the tenant can never do', async () => {
    assert.ok((await text(page.locator('ul.never'))).includes('Erase or lock the device'));
  });
  await pageChecks(page, 'consent page');

  await page.getByRole('button', { name: `Accept ${EVIL}` }).click();
  await page.locator('h1', { hasText: 'You accepted' }).waitFor();
  await shot(page, 'accepted');
  await check('confirmation page: names the tenant, as text', async () => {
    assert.equal(await text(page.locator('h1')), `You accepted ${EVIL}`);
  });
  await pageChecks(page, 'confirmation page');
  await context.close();
}

// The <section class="org"> of the tenant named `name` on the owner page.
function org(page, name) {
  return page.locator('section.org').filter({ has: page.locator('h3', { hasText: name }) });
}

async function listed(locator) {
  return (await locator.allTextContents()).map((s) => s.trim());
}

async function ownerPageChecks(page) {
  await check('owner page: lists both tenants, names as text', async () => {
    const names = await listed(page.locator('section.org h3'));
    assert.deepEqual([...names].sort(), [EVIL, GOOD].sort());
  });
  await check("owner page: the name with markup is escaped in the page's HTML", async () => {
    assert.ok((await page.content()).includes('Evil &lt;script&gt;alert(1)&lt;/script&gt; Clinic'));
  });
  const evil = org(page, EVIL);
  const good = org(page, GOOD);
  await check("owner page: each tenant's own app, and only its own", async () => {
    assert.deepEqual(await listed(evil.locator('ul.apps li')), [env('LMDM_APP_EVIL')]);
    assert.deepEqual(await listed(good.locator('ul.apps li')), [env('LMDM_APP_GOOD')]);
  });
  await check("owner page: each tenant's own profiles (accounts, ...), and only its own", async () => {
    assert.deepEqual(await listed(good.locator('ul.profiles li')), [env('LMDM_PROFILE_GOOD')]);
    assert.equal(await evil.locator('ul.profiles li').count(), 0);
  });
  await check("owner page: the tenant's managed domains, in force", async () => {
    const domains = await listed(good.locator('ul.org-rules li', { hasText: 'Managed domains' }));
    assert.deepEqual(domains, ['Managed domains (WebDomains): stmarys.example — in force']);
  });
  await check('owner page: what the broker did with the profile', async () => {
    const done = await listed(good.locator('ul.commands li', { hasText: 'Install settings (a profile)' }));
    assert.equal(done.length, 1);
    assert.match(done[0], /Sent to your device, which did it/);
  });
  await check('owner page: the refused EraseDevice, with its reason in plain words', async () => {
    const refused = await listed(evil.locator('ul.commands li.blocked'));
    assert.equal(refused.length, 1, `refused commands: ${JSON.stringify(refused)}`);
    assert.match(refused[0], /^Erase the device/);
    assert.match(refused[0], /Refused: no organization can erase the device/);
  });
  await check('owner page: the app install, sent to the device and done', async () => {
    const done = await listed(evil.locator('ul.commands li', { hasText: 'Install an app' }));
    assert.equal(done.length, 1);
    assert.match(done[0], /Sent to your device, which did it/);
  });
  await check("owner page: the stricter tenant's passcode rule is the one in force", async () => {
    const rule = await listed(good.locator('ul.org-rules li', { hasText: 'at least 8 characters' }));
    assert.equal(rule.length, 1);
    assert.match(rule[0], /in force/);
  });
  await check("owner page: the other tenant's weaker rule is shown as overridden", async () => {
    const rule = await listed(evil.locator('ul.org-rules li', { hasText: 'at least 6 characters' }));
    assert.equal(rule.length, 1);
    assert.match(rule[0], /a stricter rule applies: a passcode of at least 8 characters/);
  });
  await check('owner page: the rules in force name who requires them', async () => {
    const merged = await text(page.locator('ul.rules'));
    assert.match(merged, /at least 8 characters — required by St\. Mary's Hospital/);
  });
  await pageChecks(page, 'owner page');
}

async function removeEvil(page) {
  await org(page, EVIL).getByRole('link', { name: 'Remove' }).click();
  await page.locator('h1', { hasText: 'Remove' }).waitFor();
  await shot(page, 'remove-confirm');
  await check('removal: a confirmation page naming the tenant', async () => {
    assert.equal(await text(page.locator('h1')), `Remove ${EVIL}?`);
  });
  await pageChecks(page, 'confirmation of removal');
  await page.getByRole('button', { name: `Remove ${EVIL}` }).click();
  await page.locator('h1', { hasText: 'Removed' }).waitFor();
  await shot(page, 'removed');
  await check('removal: done, and says so', async () => {
    assert.ok((await text(page.locator('main'))).includes(`${EVIL} no longer manages this device.`));
  });
  await page.getByRole('link', { name: 'Back to my device' }).click();
  await page.locator('h1', { hasText: 'My device' }).waitFor();
  await shot(page, 'owner-after-removal');
  await check('after removal: the tenant is gone from the list, the other stays', async () => {
    assert.deepEqual(await listed(page.locator('section.org h3')), [GOOD]);
  });
  await check('after removal: listed as removed by the owner', async () => {
    const ended = await listed(page.locator('ul.ended li'));
    assert.equal(ended.length, 1);
    assert.ok(ended[0].startsWith(`${EVIL} removed by you`), ended[0]);
  });
}

async function policyChecks(browser, dialogs) {
  const { context, page } = await newPage(browser, dialogs); // no cookie: the page is public
  const resp = await page.goto(`${PUBLIC_URL}/policy`);
  await check('/policy: public, no session needed', async () => assert.equal(resp.status(), 200));
  await shot(page, 'policy', false);
  await check('/policy: EraseDevice is refused, reason code and rationale', async () => {
    const cells = await listed(page.locator('#commands-EraseDevice td'));
    assert.equal(cells[0], 'EraseDevice');
    assert.equal(cells[1], 'block');
    assert.equal(cells[2], 'wipe');
    assert.match(cells[3], /no organization can erase the device/);
  });
  await check('/policy: every decision has its group, commands and payloads', async () => {
    for (const kind of ['allow', 'scope', 'merge', 'block'])
      for (const what of ['commands', 'payloads']) assert.equal(await page.locator(`#${what}-${kind}`).count(), 1);
  });
  await check('/policy: the links lead to the groups', async () => {
    await page.getByRole('link', { name: /^commands: block/ }).click();
    assert.ok(page.url().endsWith('#commands-block'));
  });
  await pageChecks(page, '/policy');
  await page.goto(`${PUBLIC_URL}/policy?decision=block`);
  await check('/policy?decision=block: refused rows only', async () => {
    const decisions = await listed(page.locator('tbody tr td:nth-child(2)'));
    assert.ok(decisions.length > 10, `${decisions.length} rows`);
    assert.deepEqual([...new Set(decisions)], ['block']);
  });
  await context.close();
}

async function ownerPhase(browser, dialogs) {
  const { context, page } = await newPage(browser, dialogs);
  await login(page, context);
  await shot(page, 'owner');
  await ownerPageChecks(page);
  await removeEvil(page);
  await context.close();
  await policyChecks(browser, dialogs);
}

async function main() {
  const phase = process.argv[2];
  const phases = { accept: acceptPhase, owner: ownerPhase };
  if (!phases[phase]) throw new Error(`usage: owner_pages.js accept|owner (got ${phase})`);
  const browser = await chromium.launch({
    executablePath: env('LMDM_CHROMIUM'),
    // No network beyond the broker on localhost.
    args: ['--no-sandbox', '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost'],
    timeout: 30000,
  });
  const dialogs = [];
  try {
    await phases[phase](browser, dialogs);
  } finally {
    await browser.close();
  }
  await check('no dialog ever opened', async () => assert.deepEqual(dialogs, []));
}

main().then(
  () => finish(),
  (e) => {
    console.log(`FAIL: ${e.stack || e}`);
    process.exit(1);
  }
);
