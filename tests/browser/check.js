// Shared by the browser tests (tests/browser/*_pages.js): the environment,
// checks that do not stop the test when they fail, and text helpers.
'use strict';

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

module.exports = { env, check, finish };
