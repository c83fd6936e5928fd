// Passkey slots end to end (issue 17): real `bkv` processes serve their
// one-time page; Debian's chromium, headless, with a DevTools virtual
// authenticator (ctap2, internal, resident keys, user verification, prf)
// performs the WebAuthn ceremonies on it, driven by puppeteer-core.
//
//   node passkey_test.mjs SCENARIO BKV_BINARY
//
// One authenticator plays the synced passkey: it is kept while bkv runs on
// a "new device" (a fresh state directory, nothing but the store).
// Every wait is bounded; the whole scenario is killed after 60 s.
import {spawn} from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import puppeteer from 'puppeteer-core';

const [scenario, bkv] = process.argv.slice(2);
const deadline = setTimeout(() => {
  console.error(`FAIL: ${scenario} did not finish within 60 s`);
  process.exit(1);
}, 60_000);

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bkv-passkey-'));
const store = `file://${tmp}/store`;
let browser;

function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
  console.log(`ok: ${what}`);
}

// Runs bkv; when it prints its page URL, `onUrl(url)` drives the browser.
function run(args, {onUrl, device = 'a', stdin} = {}) {
  return new Promise((resolve) => {
    const env = {...process.env, BKV_STATE_DIR: `${tmp}/state-${device}`,
                 HOME: tmp, XDG_CONFIG_HOME: `${tmp}/config`};
    const p = spawn(bkv, args, {cwd: tmp, env, stdio: ['pipe', 'pipe', 'pipe']});
    let out = '', err = '', urlSeen = false;
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => {
      err += d;
      const m = err.match(/(http:\/\/(?:[a-z0-9-]+\.)*localhost:\d+\/[0-9a-f]{32}\/)/);
      if (m && !urlSeen) {
        urlSeen = true;
        if (onUrl) onUrl(m[1]).catch((e) => { err += `\n[driver] ${e}`; });
      }
    });
    if (stdin) p.stdin.write(stdin);
    p.stdin.end();
    const kill = setTimeout(() => p.kill('SIGKILL'), 40_000);
    p.on('close', (code) => {
      clearTimeout(kill);
      resolve({code, out, err});
    });
  });
}

async function newPage(options) {
  const page = await browser.newPage();
  const cdp = await page.createCDPSession();
  await cdp.send('WebAuthn.enable');
  const {authenticatorId} = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {protocol: 'ctap2', transport: 'internal', hasResidentKey: true,
              hasUserVerification: true, isUserVerified: true, hasPrf: true,
              automaticPresenceSimulation: true, ...options}});
  return {page, cdp, authenticatorId};
}

const visit = (page) => async (url) => { await page.goto(url); };

// Every object of the store, name -> sha256, to prove a failure wrote nothing.
function snapshotStore() {
  const dir = `${tmp}/store`;
  const out = {};
  for (const f of fs.readdirSync(dir).sort()) {
    const st = fs.statSync(path.join(dir, f));
    if (st.isFile()) {
      out[f] = crypto.createHash('sha256')
                   .update(fs.readFileSync(path.join(dir, f))).digest('hex');
    }
  }
  return JSON.stringify(out);
}

// A slot's wrap in a keyring (docs/backup-format.md, "Keyring"): after the
// slot id, u8 type, str params, str wrap.
function slotWrap(ring, idHex) {
  const at = ring.indexOf(Buffer.from(idHex, 'hex')) + 16 + 1;
  const params = ring.readUInt32BE(at);
  const wrapAt = at + 4 + params;
  return ring.subarray(wrapAt + 4, wrapAt + 4 + ring.readUInt32BE(wrapAt));
}

function storeContains(bytes) {
  const dir = `${tmp}/store`;
  return fs.readdirSync(dir).some((f) => {
    const p = path.join(dir, f);
    return fs.statSync(p).isFile() && fs.readFileSync(p).includes(bytes);
  });
}

function sameTree(a, b) {
  const r = spawn('diff', ['-r', a, b], {stdio: 'ignore'});
  return new Promise((res) => r.on('close', (c) => res(c === 0)));
}

async function legacySet() {
  fs.mkdirSync(`${tmp}/data/sub`, {recursive: true});
  fs.writeFileSync(`${tmp}/data/chat.db`, crypto.randomBytes(300_000));
  fs.writeFileSync(`${tmp}/data/sub/note.txt`, 'hello passkey\n');
  check((await run(['key', 'new', '--out', 'k1'])).code === 0, 'key new');
  const b = await run(['backup', 'data', '--to', store, '--key-file', 'k1']);
  check(b.code === 0, `legacy backup (${b.err.trim()})`);
}

async function enrol(page, extra = []) {
  return run(['slot', 'add', 'passkey', '--from', store, '--key-file', 'k1',
              '--passkey-timeout', '20', ...extra], {onUrl: visit(page)});
}

// A forged result from another origin or without the secret path is refused
// while the CLI keeps waiting for its page.
function post(url, headers, body) {
  return new Promise((resolve) => {
    const u = new URL(url);
    const req = http.request({host: '127.0.0.1', port: u.port, path: u.pathname,
                              method: 'POST', headers}, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('error', () => resolve(0));
    req.end(body);
  });
}

const scenarios = {
  // Review #11: the default rp id is bkv's own `bkv.localhost`, a secure
  // context for Chromium, so a page on plain localhost (any dev server)
  // cannot ask the authenticator for a slot's PRF; a slot enrolled under
  // `localhost` (the old default) still opens without --rp-id.
  async default_rp_id() {
    await legacySet();
    const {page} = await newPage({});
    let host = '';
    const r = await run(['slot', 'add', 'passkey', '--from', store,
                         '--key-file', 'k1', '--passkey-timeout', '20'], {
      onUrl: async (url) => { host = new URL(url).hostname; await page.goto(url); }});
    check(r.code === 0, `slot add passkey (${r.err.trim()})`);
    check(host === 'bkv.localhost', `the page is served as bkv.localhost (${host})`);
    const list = await run(['slot', 'list', '--from', store]);
    check(/passkey, rp bkv\.localhost,/.test(list.out), `the slot's rp id (${list.out.trim()})`);
    const res = await run(['restore', '--from', store, '--to', 'restored', '--passkey'],
                          {onUrl: visit(page), device: 'b'});
    check(res.code === 0, `restore with the passkey (${res.err.trim()})`);
    // Another page on plain localhost asks for bkv's rp id: refused.
    const server = http.createServer((q, w) => w.end('<!doctype html><p>dev server'));
    await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
    await page.goto(`http://localhost:${server.address().port}/`);
    const refused = await page.evaluate(async () => {
      try {
        await navigator.credentials.get({publicKey: {
          challenge: new Uint8Array(32), rpId: 'bkv.localhost', timeout: 5000,
          extensions: {prf: {eval: {first: new Uint8Array(32)}}}}});
        return 'allowed';
      } catch (e) { return e.name; }
    });
    server.close();
    check(refused === 'SecurityError', `a localhost page may not use rp bkv.localhost (${refused})`);
    // A set whose passkey was enrolled under `localhost` opens as before.
    const old = `file://${tmp}/old`;
    check((await run(['backup', 'data', '--to', old, '--key-file', 'k1'])).code === 0,
          'second legacy set');
    const e = await run(['slot', 'add', 'passkey', '--from', old, '--key-file', 'k1',
                         '--rp-id', 'localhost', '--passkey-timeout', '20'],
                        {onUrl: visit(page)});
    check(e.code === 0, `enrol under rp localhost (${e.err.trim()})`);
    const o = await run(['restore', '--from', old, '--to', 'restored-old', '--passkey'],
                        {onUrl: async (url) => { host = new URL(url).hostname; await page.goto(url); },
                         device: 'c'});
    check(o.code === 0 && host === 'localhost',
          `a localhost slot opens without --rp-id (${o.code}, ${host}: ${o.err.trim()})`);
  },
  // Enrol, back up with the passkey, restore on a new device; then the set
  // opens by neither passkey nor anything once its slot is removed.
  async enrol_backup_restore_new_device() {
    await legacySet();
    const {page} = await newPage({});
    const forged = [];
    const r = await run(['slot', 'add', 'passkey', '--from', store,
                         '--key-file', 'k1', '--passkey-timeout', '20'], {
      onUrl: async (url) => {
        const host = new URL(url).host;
        const res = url + 'result';
        const body = 'ok\n00\n' + '00'.repeat(32);
        forged.push(await post(res, {Host: host, Origin: 'http://evil.example'}, body));
        forged.push(await post(res, {Host: 'evil.example', Origin: `http://${host}`}, body));
        forged.push(await post(url.replace(/[0-9a-f]{32}/, '0'.repeat(32)) + 'result',
                               {Host: host, Origin: `http://${host}`}, body));
        forged.push(await post(res, {Host: host, Origin: `http://${host}`}, body));
        await page.goto(url);
      }});
    check(r.code === 0, `slot add passkey (${r.err.trim()})`);
    check(forged.join() === '403,403,404,403',
          'forged results refused: wrong origin, wrong host, wrong secret, ' +
          `no cookie (${forged})`);
    const list = await run(['slot', 'list', '--from', store, '--json']);
    const slots = JSON.parse(list.out).slots;
    check(slots.length === 2 && slots.some((s) => s.type === 'passkey') &&
          slots.some((s) => s.type === 'recovery-key'),
          'keyring: the migrated 64-digit key and the passkey');
    fs.writeFileSync(`${tmp}/data/sub/new.txt`, 'after enrolment\n');
    const b = await run(['backup', 'data', '--to', store, '--passkey'],
                        {onUrl: visit(page)});
    check(b.code === 0, `backup with the passkey (${b.err.trim()})`);
    // New device: a fresh state directory, nothing but the store and the
    // synced passkey (the same authenticator).
    const res = await run(['restore', '--from', store, '--to', 'restored',
                           '--passkey'], {onUrl: visit(page), device: 'b'});
    check(res.code === 0, `restore on a new device (${res.err.trim()})`);
    check(await sameTree(`${tmp}/data`, `${tmp}/restored`),
          'restored tree identical to the source');
    // Tampered keyring (its MAC): refused after the ceremony, exit 4.
    const ring = `${tmp}/store/keyring`;
    const good = fs.readFileSync(ring);
    const bad = Buffer.from(good);
    bad[bad.length - 1] ^= 1;
    fs.writeFileSync(ring, bad);
    const before = snapshotStore();
    const t = await run(['restore', '--from', store, '--to', 'r2', '--passkey'],
                        {onUrl: visit(page), device: 'b'});
    check(t.code === 4 && /keyring fails authentication/.test(t.err),
          `tampered keyring: exit 4 (${t.code}: ${t.err.trim()})`);
    check(snapshotStore() === before, 'tampered keyring: the store is unchanged');
    // Another salt: the slot's salt changed, so the page evaluates it and
    // the output does not open the wrap (bound to the real salt): exit 11.
    const pkId = slots.find((s) => s.type === 'passkey').id;
    const salted = Buffer.from(good);
    const wrapAt = good.indexOf(slotWrap(good, pkId));
    salted[wrapAt - 4 - 1] ^= 1;  // the salt's last byte, just before str wrap
    fs.writeFileSync(ring, salted);
    const beforeSalt = snapshotStore();
    const s11 = await run(['restore', '--from', store, '--to', 'r2', '--passkey'],
                          {onUrl: visit(page), device: 'b'});
    check(s11.code === 11 && /another salt/.test(s11.err),
          `output for another salt: exit 11 (${s11.code}: ${s11.err.trim()})`);
    check(snapshotStore() === beforeSalt && !fs.existsSync(`${tmp}/r2`),
          'another salt: the store is unchanged, nothing restored');
    fs.writeFileSync(ring, good);
    const wrap = slotWrap(good, slots.find((s) => s.type === 'passkey').id);
    check(wrap.length === 60 && storeContains(wrap), 'the passkey wrap is in the keyring');
    const pk = slots.find((s) => s.type === 'passkey').id.slice(0, 8);
    const rm = await run(['slot', 'remove', pk, '--from', store, '--key-file', 'k1']);
    check(rm.code === 0, 'slot remove passkey');
    check(!storeContains(wrap),
          'the removed wrap is in no object of the store');
    const gone = await run(['restore', '--from', store, '--to', 'r3', '--passkey',
                            '--passkey-timeout', '5'], {onUrl: visit(page), device: 'c'});
    check(gone.code === 10, `after removal the passkey opens nothing: exit 10 (${gone.code})`);
  },

  // Another passkey (a second authenticator, enrolled in another set).
  async other_passkey() {
    await legacySet();
    const a = await newPage({});
    check((await enrol(a.page)).code === 0, 'enrol passkey A');
    await a.page.close();
    const b = await newPage({});
    const store2 = `file://${tmp}/store2`;
    check((await run(['backup', 'data', '--to', store2, '--key-file', 'k1'])).code === 0,
          'second set');
    check((await run(['slot', 'add', 'passkey', '--from', store2, '--key-file', 'k1'],
                     {onUrl: visit(b.page)})).code === 0, 'enrol passkey B in the second set');
    const before = snapshotStore();
    const r = await run(['restore', '--from', store, '--to', 'r', '--passkey'],
                        {onUrl: visit(b.page), device: 'b'});
    check(r.code === 10 && /has no slot in this set/.test(r.err),
          `another passkey: exit 10 (${r.code}: ${r.err.trim()})`);
    check(snapshotStore() === before, 'another passkey: the store is unchanged');
  },

  // An authenticator without prf cannot enrol; nothing is written.
  async no_prf() {
    await legacySet();
    const {page} = await newPage({hasPrf: false});
    const before = snapshotStore();
    const r = await enrol(page);
    check(r.code === 12 && /prf/.test(r.err), `no prf: exit 12 (${r.code}: ${r.err.trim()})`);
    check(snapshotStore() === before && !fs.existsSync(`${tmp}/store/keyring`),
          'no prf: the store is unchanged, no keyring');
  },

  // Nobody answers the prompt: the CLI gives up after --passkey-timeout.
  async page_timeout() {
    await legacySet();
    const {page} = await newPage({automaticPresenceSimulation: false});
    const before = snapshotStore();
    const t0 = Date.now();
    const r = await run(['slot', 'add', 'passkey', '--from', store, '--key-file',
                         'k1', '--passkey-timeout', '3'], {onUrl: visit(page)});
    check(r.code === 13 && /within 3 s/.test(r.err),
          `page timed out: exit 13 (${r.code}: ${r.err.trim()})`);
    check(Date.now() - t0 < 30_000, 'bounded');
    check(snapshotStore() === before, 'timed out: the store is unchanged');
  },
};

// Another local program GETs the one-time URL first (it read it from
// stderr or a browser's argv): the browser's load is the second, so the
// ceremony aborts, exit 14, and nothing is written (review #8).
function get(url) {
  return new Promise((resolve) => {
    const u = new URL(url);
    http.get({host: '127.0.0.1', port: u.port, path: u.pathname,
              headers: {Host: u.host}}, (res) => {
      res.resume();
      res.on('end', () => resolve(res));
    }).on('error', () => resolve(null));
  });
}

scenarios.page_loaded_twice = async () => {
  await legacySet();
  const {page} = await newPage({});
  const before = snapshotStore();
  let first = null;
  let second = null;
  let wrongCookie = 0;
  let loaded;
  const browserLoad = new Promise((res) => { loaded = res; });
  const r = await run(['slot', 'add', 'passkey', '--from', store, '--key-file',
                       'k1', '--passkey-timeout', '20'], {
    onUrl: async (url) => {
      try {
        first = await get(url);
        const u = new URL(url);
        wrongCookie = await post(url + 'result', {
          Host: u.host, Origin: `http://${u.host}`,
          Cookie: 'bkv-page=' + '0'.repeat(32)}, 'ok\n00\n' + '00'.repeat(32));
        second = await page.goto(url);
      } finally {
        loaded();
      }
    }});
  await browserLoad;  // bkv may exit before goto resolves (60 s bound)
  check(first && first.statusCode === 200, 'the first load gets the page');
  const cookie = String(first.headers['set-cookie']);
  check(/^bkv-page=[0-9a-f]{32}; Path=\/[0-9a-f]{32}\/; HttpOnly; SameSite=Strict$/
            .test(cookie), `its HttpOnly, SameSite=Strict cookie (${cookie})`);
  check(wrongCookie === 403, `a result with another cookie is refused (${wrongCookie})`);
  check(second && second.status() === 410, 'the browser\'s load is refused (410)');
  check(r.code === 14 && /loaded a second time/.test(r.err),
        `second load aborts the enrolment: exit 14 (${r.code}: ${r.err.trim()})`);
  check(snapshotStore() === before && !fs.existsSync(`${tmp}/store/keyring`),
        'second load: the store is unchanged, no keyring');
};

// The user closes the page while the authenticator waits for presence.
scenarios.page_closed = async () => {
  await legacySet();
  const {page} = await newPage({automaticPresenceSimulation: false});
  const before = snapshotStore();
  const r = await run(['slot', 'add', 'passkey', '--from', store, '--key-file',
                       'k1', '--passkey-timeout', '30'], {
    onUrl: async (url) => {
      await page.goto(url);
      await new Promise((res) => setTimeout(res, 500));
      await page.close({runBeforeUnload: true});
    }});
  check(r.code === 14 && /closed/.test(r.err),
        `page closed: exit 14 (${r.code}: ${r.err.trim()})`);
  check(snapshotStore() === before, 'page closed: the store is unchanged');
};

try {
  browser = await puppeteer.launch({
    executablePath: process.env.BKV_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    // Root in a container: the test alone runs chromium without its sandbox.
    args: ['--no-sandbox', '--disable-gpu'],
  });
  await scenarios[scenario]();
  console.log(`PASS ${scenario}`);
} catch (e) {
  console.error(`FAIL ${scenario}: ${e.stack || e}`);
  process.exitCode = 1;
} finally {
  if (browser) await browser.close().catch(() => {});
  fs.rmSync(tmp, {recursive: true, force: true});
  clearTimeout(deadline);
}
