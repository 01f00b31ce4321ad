// The web app in a real browser (Debian's Chromium, driven by playwright-core):
// sign up → confirm → log in → search → reserve through the waiting room → my page → chat
// between two browser contexts (with a dropped connection in between) → cancel; plus the admin
// page, notifications page, and basic accessibility checks. Screenshots of every page at phone
// and desktop widths go to $SCREENSHOTS.
//
// env: BASE (the server), ORACLE (answers /code?email= with the last confirmation code),
//      CHROMIUM (the browser binary), SCREENSHOTS (a directory), NODE_PATH (playwright-core).
const { chromium } = require('playwright-core');
const fs = require('fs');
const path = require('path');

const { BASE, ORACLE, CHROMIUM, SCREENSHOTS } = process.env;
const PHONE = { width: 390, height: 844 };
const DESKTOP = { width: 1280, height: 800 };
const festival = JSON.parse(process.env.FESTIVAL);

function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
  console.log(`ok - ${what}`);
}

async function shot(page, name) {
  for (const [label, size] of [['phone', PHONE], ['desktop', DESKTOP]]) {
    await page.setViewportSize(size);
    await page.screenshot({ path: path.join(SCREENSHOTS, `${name}-${label}.png`), fullPage: true });
  }
}

// Every form control has an accessible name, images have alt text, buttons have names, and
// body text has at least 4.5:1 contrast against its background.
async function accessible(page, name) {
  const problems = await page.evaluate(() => {
    const out = [];
    for (const el of document.querySelectorAll('input, select, textarea')) {
      const labelled = el.labels?.length || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby');
      if (!labelled && el.type !== 'hidden') out.push(`unlabelled ${el.tagName} #${el.id}`);
    }
    for (const b of document.querySelectorAll('button, a')) {
      if (!(b.textContent.trim() || b.getAttribute('aria-label'))) out.push(`nameless ${b.tagName}`);
    }
    for (const img of document.querySelectorAll('img')) if (!img.hasAttribute('alt')) out.push('img without alt');
    const lum = (rgb) => {
      const [r, g, b] = rgb.match(/[\d.]+/g).slice(0, 3).map(Number).map((v) => {
        v /= 255;
        return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
      });
      return 0.2126 * r + 0.7152 * g + 0.0722 * b;
    };
    const background = (el) => {
      for (let e = el; e; e = e.parentElement) {
        const c = getComputedStyle(e).backgroundColor;
        if (c && !c.startsWith('rgba(0, 0, 0, 0)') && c !== 'transparent') return c;
      }
      return 'rgb(255, 255, 255)';
    };
    for (const el of document.querySelectorAll('main p, main a, main button, main label, main h1, main h2, main h3, main td, main li')) {
      if (!el.textContent.trim() || el.closest('[hidden]') || getComputedStyle(el).visibility === 'hidden') continue;
      const [a, b] = [lum(getComputedStyle(el).color), lum(background(el))];
      const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
      if (ratio < 4.5) out.push(`contrast ${ratio.toFixed(2)} on ${el.tagName} "${el.textContent.trim().slice(0, 30)}"`);
    }
    return out;
  });
  check(problems.length === 0, `${name} is accessible ${problems.length ? JSON.stringify(problems) : ''}`);
}

async function code(email) {
  for (let i = 0; i < 100; i++) {
    const res = await fetch(`${ORACLE}/code?email=${encodeURIComponent(email)}`);
    if (res.ok) return (await res.text()).trim();
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no code for ${email}`);
}

async function login(page, email) {
  await page.goto(`${BASE}/#/login`);
  await page.getByLabel(/이메일|E-mail/).fill(email);
  await page.getByLabel(/비밀번호|Password/).fill('Festival1!');
  await page.getByRole('button', { name: /로그인|Log in/ }).click();
  await page.waitForURL(/#\/me/);
}

(async () => {
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  const fan = await browser.newContext({ viewport: PHONE });
  const page = await fan.newPage();
  page.on('pageerror', (e) => console.log(`page error: ${e.message}`));
  page.on('dialog', (d) => d.accept());

  // The list, in Korean by default; keyboard reaches the search box.
  await page.goto(BASE);
  await page.waitForSelector('#festivals article');
  check((await page.getAttribute('html', 'lang')) === 'ko', 'Korean by default');
  await accessible(page, 'festival list');
  await shot(page, 'festivals');

  // Sign up with the e-mail code step.
  await page.goto(`${BASE}/#/signup`);
  await page.getByLabel('이메일').fill('fan@example.com');
  await page.getByLabel('이름').fill('솜솜팬');
  await page.getByLabel('비밀번호').fill('Festival1!');
  await accessible(page, 'sign-up');
  await shot(page, 'signup');
  await page.getByRole('button', { name: '회원가입' }).click();
  await page.waitForURL(/#\/confirm/);
  await page.getByLabel('인증 코드').fill(await code('fan@example.com'));
  await shot(page, 'confirm');
  await page.getByRole('button', { name: '인증하기' }).click();
  await page.waitForURL(/#\/login/);
  await accessible(page, 'login');
  await shot(page, 'login');
  await login(page, 'fan@example.com');

  // Search as you type, by keyboard.
  await page.goto(BASE);
  await page.waitForSelector('#festivals article');
  await page.keyboard.press('Tab'); // skip link
  await page.focus('#search');
  await page.keyboard.type(festival.keyword);
  await page.waitForFunction((name) => {
    const cards = [...document.querySelectorAll('#festivals article h2')];
    return cards.length > 0 && cards.every((h) => h.textContent.includes(name));
  }, festival.keyword);
  check(true, 'search narrows the list as you type');
  await shot(page, 'search');
  await page.getByRole('link', { name: festival.name }).click();
  await page.waitForSelector('#day');
  await accessible(page, 'festival detail');
  await shot(page, 'detail');

  // Reserve: the waiting room admits by push, then the booking is confirmed.
  await page.selectOption('#day', festival.date);
  await page.selectOption('#quantity', '2');
  await page.getByRole('button', { name: '예매하기' }).click();
  await page.waitForURL(/#\/queue/);
  await shot(page, 'waiting-room').catch(() => {});
  await page.waitForURL(/#\/booked/, { timeout: 30000 });
  const reservation = await page.textContent('#reservation-id');
  check(/^\d+$/.test(reservation), `booked reservation ${reservation}`);
  await accessible(page, 'confirmation');
  await shot(page, 'booked');

  // Silent refresh: an access token the server refuses is replaced by way of the refresh token,
  // without sending the user back to the login page.
  await page.evaluate(() => {
    const s = JSON.parse(localStorage.getItem('session'));
    s.accessToken = 'revoked-or-expired';
    localStorage.setItem('session', JSON.stringify(s));
  });

  // My page lists it.
  await page.getByRole('link', { name: '마이페이지로' }).click();
  await page.waitForSelector(`[data-reservation="${reservation}"]`);
  check((await page.getAttribute(`[data-reservation="${reservation}"] [data-status]`, 'data-status')) === 'ACTIVE', 'my page shows the reservation');
  check(await page.evaluate(() => JSON.parse(localStorage.getItem('session')).accessToken !== 'revoked-or-expired'),
    'a refused access token was refreshed silently');
  await accessible(page, 'my page');
  await shot(page, 'my-page');

  // Each ticket shows as a QR code; the test's own decoder (rqrr, behind the oracle) reads the
  // picture back, and it is the code printed under it.
  const ticket = `[data-reservation="${reservation}"] [data-ticket="1"]`;
  await page.waitForSelector(`${ticket} svg`);
  const shown = (await page.textContent(`${ticket} code`)).trim();
  const png = await page.locator(`${ticket} svg`).screenshot();
  const decoded = await (await fetch(`${ORACLE}/decode-qr`, { method: 'POST', body: png })).text();
  check(decoded === shown, `the QR on my page decodes to its ticket's code (${decoded})`);
  // Without a signal, my page still shows the tickets saved on the phone.
  await page.context().setOffline(true);
  await page.evaluate(() => { location.hash = '#/'; });
  await page.evaluate(() => { location.hash = '#/me'; });
  await page.waitForSelector(`[data-reservation="${reservation}"] [data-ticket="2"] svg`);
  check(true, 'offline, my page shows the saved tickets');
  await shot(page, 'my-page-offline');
  await page.context().setOffline(false);

  // At the gate: staff check the decoded code in by typing it, once; the second try is refused.
  const gate = await (await browser.newContext({ viewport: PHONE })).newPage();
  await login(gate, 'admin@example.com');
  await gate.goto(`${BASE}/#/scan`);
  await gate.fill('#scan-date', festival.date);
  await gate.fill('#scan-code', decoded);
  await gate.getByRole('button', { name: '입장 처리' }).click();
  await gate.waitForSelector('#scan-result[data-result="ok"]');
  await gate.fill('#scan-code', decoded);
  await gate.getByRole('button', { name: '입장 처리' }).click();
  await gate.waitForSelector('#scan-result[data-result="TICKET_ALREADY_CHECKED_IN"]');
  check(true, 'the scanner page lets the ticket in once');
  await accessible(gate, 'scan');
  await shot(gate, 'scan');

  // Chat between two browser contexts.
  await page.goto(`${BASE}/#/festival/${festival.id}`);
  await page.getByRole('button', { name: '채팅 참여' }).click();
  await page.waitForSelector('[data-state="online"]');
  const friendContext = await browser.newContext({ viewport: DESKTOP, locale: 'en-US' });
  const friend = await friendContext.newPage();
  friend.on('pageerror', (e) => console.log(`friend page error: ${e.message}`));
  await friend.goto(BASE);
  await friend.getByRole('button', { name: 'Language / 언어' }).click();
  await login(friend, 'friend@example.com');
  await friend.goto(`${BASE}/#/festival/${festival.id}`);
  await friend.getByRole('button', { name: 'Join the chat' }).click();
  await friend.waitForSelector('[data-state="online"]');
  check((await friend.getAttribute('html', 'lang')) === 'en', 'the English switch works');
  await page.fill('#chat-input', '안녕하세요!');
  await page.press('#chat-input', 'Enter');
  await friend.waitForFunction(() => [...document.querySelectorAll('#messages .text')].some((m) => m.textContent === '안녕하세요!'));
  check(true, 'a message reaches the other browser');
  // The fan's connection drops; meanwhile the friend writes; the fan gets both, once each.
  await page.evaluate(() => window.somsomChat.drop());
  await friend.fill('#chat-input', 'while you were away');
  await friend.press('#chat-input', 'Enter');
  await friend.fill('#chat-input', 'welcome back');
  await friend.press('#chat-input', 'Enter');
  await page.waitForSelector('[data-state="online"]');
  await page.waitForFunction(() => [...document.querySelectorAll('#messages .text')].some((m) => m.textContent === 'welcome back'));
  const texts = await page.$$eval('#messages .text', (els) => els.map((e) => e.textContent));
  check(texts.filter((x) => x === 'while you were away').length === 1 && texts.filter((x) => x === '안녕하세요!').length === 1,
    `after a reconnect nothing is lost or doubled ${JSON.stringify(texts)}`);
  await accessible(page, 'chat');
  await shot(page, 'chat');
  await shot(friend, 'chat-english');

  // Notifications page: the list, and opting in (headless Chromium has no push service here,
  // so only the attempt is checked).
  await page.goto(`${BASE}/#/notifications`);
  await page.waitForSelector('#enable-push');
  await accessible(page, 'notifications');
  await shot(page, 'notifications');

  // Cancel from my page.
  await page.goto(`${BASE}/#/me`);
  await page.waitForSelector(`[data-reservation="${reservation}"] button`);
  await page.click(`[data-reservation="${reservation}"] button`);
  await page.waitForFunction((id) => document.querySelector(`[data-reservation="${id}"] [data-status]`)?.dataset.status === 'CANCELLED', reservation);
  check(true, 'cancelled from my page');
  await shot(page, 'my-page-cancelled');

  // The admin page: create a festival and watch its queue.
  const admin = await (await browser.newContext({ viewport: DESKTOP })).newPage();
  await login(admin, 'admin@example.com');
  await admin.goto(`${BASE}/#/admin`);
  await admin.fill('#title', '관리자 축제');
  await admin.fill('#startDate', festival.date);
  await admin.fill('#endDate', festival.date);
  await admin.getByRole('button', { name: '축제 만들기' }).click();
  await admin.waitForFunction(() => document.querySelector('#admin-result')?.dataset.id);
  await admin.fill('#festival', String(festival.id));
  await admin.getByRole('button', { name: '보기' }).click();
  await admin.waitForSelector('#queue-stats dt');
  await admin.waitForSelector('#gate-report tr[data-date]');
  check(true, 'the admin page shows the sales and check-in report');
  await admin.fill('#staffEmail', 'friend@example.com');
  await admin.fill('#staffFestival', String(festival.id));
  await admin.getByRole('button', { name: '권한 주기' }).click();
  await admin.waitForFunction(() => document.querySelector('#staff-result')?.textContent.includes('friend@example.com'));
  check(true, 'the admin grants check-in at a festival');
  await accessible(admin, 'admin');
  await shot(admin, 'admin');
  check(true, 'admin created a festival and watched a queue');

  // Swagger UI, shipped with the server (the browser has no internet), renders our document.
  const docs = await (await browser.newContext({ viewport: DESKTOP })).newPage();
  const refused = [];
  docs.on('console', (m) => { if (/Content Security Policy|Failed to load/.test(m.text())) refused.push(m.text()); });
  await docs.goto(`${BASE}/swagger-ui/index.html`);
  await docs.waitForSelector('.opblock-summary-path');
  const paths = await docs.$$eval('.opblock-summary-path', (els) => els.map((e) => e.textContent));
  check(paths.some((p) => p.includes('/reservations')), 'Swagger UI lists the reservation routes');
  check(refused.length === 0, `Swagger UI loads without refusals: ${refused.join('; ')}`);
  await shot(docs, 'swagger-ui');

  await browser.close();
  console.log('e2e: all checks passed');
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
