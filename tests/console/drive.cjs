// Drives the console in a headless Chromium for tests/api/console.rs.
// Arguments: console URL, screenshot directory, the operator's token, the
// viewer's token, the alias, the key the CLI re-points it to, the key the
// form re-points it to. It reports on stdout, one line per step, and waits
// on stdin for the test to say when the CLI has made its change. Every
// wait has a timeout; none is a sleep.
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const readline = require('node:readline');
const { chromium } = require('playwright-core');

const [url, shots, operatorToken, viewerToken, alias, cliTarget, formTarget] = process.argv.slice(2);
const WAIT = { timeout: 60000 };
const input = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const say = (line) => process.stdout.write(line + '\n');

async function shot(page, name) {
  const file = path.join(shots, name);
  await page.screenshot({ path: file, fullPage: true });
  say('SCREENSHOT ' + file);
}

async function repoint(page, target) {
  await page.goto(url + '/alias?name=' + encodeURIComponent(alias));
  await page.fill('#update-target', target);
  await Promise.all([page.waitForLoadState('load'), page.click('#update')]);
}

(async () => {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'aliasd-console-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = context.pages()[0] || await context.newPage();

    // Log in as the operator; the keys and aliases are there.
    await page.goto(url + '/');
    await page.waitForURL('**/login', WAIT);
    await shot(page, '01-login.png');
    await page.fill('#token', operatorToken);
    await Promise.all([page.waitForURL(url + '/', WAIT), page.click('#login')]);
    await page.waitForSelector(`#aliases tr[data-alias="${alias}"]`, WAIT);
    say('PRINCIPAL ' + await page.textContent('#principal'));
    await shot(page, '02-keys-and-aliases.png');

    // The live stream shows the change the CLI makes.
    await page.goto(url + '/stream');
    await page.waitForSelector('#stream-state[data-state="live"]', WAIT);
    say('STREAM-LIVE');
    const { value } = await input.next();
    if (value !== 'CHANGED') throw new Error('expected CHANGED on stdin, got ' + value);
    await page.waitForSelector(`#changes tr[data-alias="${alias}"][data-target="${cliTarget}"]`, WAIT);
    say('SAW-CHANGE');
    await shot(page, '03-live-change.png');

    // Re-point through the form, with the etag the page shows.
    await repoint(page, formTarget);
    await page.waitForSelector('.notice', WAIT);
    say('TARGET ' + (await page.textContent('#alias-target')).trim());
    await shot(page, '04-repointed.png');

    // The viewer may re-point only sandbox aliases: refused, with the
    // application's message.
    await Promise.all([page.waitForURL('**/login', WAIT), page.click('#logout')]);
    await page.fill('#token', viewerToken);
    await Promise.all([page.waitForURL(url + '/', WAIT), page.click('#login')]);
    await repoint(page, cliTarget);
    await page.waitForSelector('.error .reason', WAIT);
    say('REFUSED ' + (await page.textContent('.error')).trim());
    await shot(page, '05-refused.png');
    say('DONE');
  } finally {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
  // stdin would keep node running.
  process.exit(0);
})().catch((error) => {
  say('FAILED ' + (error && error.stack || error));
  process.exit(1);
});
