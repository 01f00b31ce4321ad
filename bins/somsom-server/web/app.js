// SomSom's web app: hash routes over the server's own API, no build step.
import { StompClient } from '/assets/stomp.js';

// ---------- words ----------
const WORDS = {
  ko: {
    brand: '솜솜', festivals: '축제', my: '마이페이지', notifications: '알림', admin: '관리', login: '로그인',
    logout: '로그아웃', signup: '회원가입', search: '축제 검색', searchHint: '이름이나 설명으로 찾기',
    noResults: '검색 결과가 없습니다.', loading: '불러오는 중…', more: '더 보기', days: '일자별 잔여 티켓',
    left: '남음', of: '/', date: '날짜', quantity: '수량', reserve: '예매하기', chat: '채팅 참여',
    email: '이메일', password: '비밀번호', name: '이름', code: '인증 코드', confirm: '인증하기',
    resend: '코드 다시 받기', codeSent: '이메일로 받은 6자리 코드를 입력하세요.', haveAccount: '이미 계정이 있나요?',
    forgot: '비밀번호를 잊으셨나요?', resetTitle: '비밀번호 재설정', sendResetCode: '재설정 코드 받기',
    resetSent: '가입된 이메일이라면 재설정 코드를 보냈습니다.', newPassword: '새 비밀번호', resetDone: '비밀번호를 바꿨습니다. 다시 로그인하세요.',
    signupPassword: '가입할 때 입력한 비밀번호',
    preQueue: '오픈을 기다리는 중', preQueueNote: '오픈 전에 들어온 분들은 오픈 순간 무작위로 순서가 정해지고, 그 뒤에 오는 분들보다 먼저 입장합니다.',
    opensIn: '오픈까지', saleOpens: '예매 오픈', saleClosed: '예매가 종료되었습니다.', soldOutWait: '매진되었습니다. 취소표가 나오면 순서대로 입장합니다.',
    noQueue: '대기열 없이 판매', preQueueCount: '사전 대기', seed: '추첨 시드', issued: '발급된 입장', used: '사용된 입장', upcoming: '오픈 예정', onSale: '판매 중',
    needAccount: '계정이 없나요?', waiting: '대기 중', yourRank: '내 순번', ahead: '앞 사람', estimate: '예상 대기',
    seconds: '초', admittedGo: '입장했습니다. 예매를 진행합니다…', booked: '예매가 완료되었습니다', reservationNo: '예매 번호',
    toMy: '마이페이지로', upcoming: '다가오는 예매', past: '지난 예매', cancel: '취소', cancelled: '취소되었습니다.',
    confirmCancel: '이 예매를 취소할까요?', rooms: '참여 중인 채팅방', members: '명', unread: '안 읽음',
    send: '보내기', message: '메시지', online: '연결됨', offline: '연결 끊김, 다시 연결하는 중…', older: '이전 메시지',
    enablePush: '하루 전 알림 켜기', pushOn: '알림을 켰습니다.', pushUnsupported: '이 브라우저는 웹 푸시를 지원하지 않습니다.',
    pushDenied: '알림 권한이 거부되었습니다.', pushFailed: '알림을 켜지 못했습니다', recent: '최근 알림', none: '없습니다.',
    create: '축제 만들기', title: '축제 이름', description: '설명', location: '장소', start: '시작일', end: '종료일',
    perDay: '일별 티켓 수', created: '만들었습니다', queueStats: '대기열 현황', festivalId: '축제 번호', watch: '보기',
    waitingCount: '대기', admittedCount: '입장', rate: '초당 입장', paused: '일시 정지', soldOut: '매진되었습니다.',
    limit: '1인 예매 한도를 넘었습니다.', expired: '입장 시간이 지났습니다. 다시 줄을 서 주세요.', loginFirst: '먼저 로그인하세요.',
    status: '상태', ACTIVE: '예매됨', CANCELLED: '취소됨', profile: '내 정보', reservations: '예매 내역', requeue: '다시 줄 서기',
    ticket: '티켓', tickets: '모바일 티켓', showTickets: '티켓 보기', offlineTickets: '오프라인입니다. 저장해 둔 티켓을 보여드립니다.',
    scan: '입장 확인', gate: '게이트', ticketCode: '티켓 코드', checkIn: '입장 처리', camera: '카메라로 읽기',
    checkedIn: '입장 완료', cameraUnsupported: '이 브라우저는 QR 인식을 지원하지 않습니다. 코드를 입력하세요.',
    TICKET_ALREADY_CHECKED_IN: '이미 입장한 티켓입니다', TICKET_CODE_INVALID: '올바르지 않은 티켓입니다', TICKET_CANCELLED: '취소된 티켓입니다',
    TICKET_WRONG_DAY: '다른 날짜의 티켓입니다', staff: '입장 확인 스태프', staffFestival: '축제 번호 (비우면 모든 축제)', grant: '권한 주기', granted: '권한을 줬습니다', report: '판매·입장 현황', sold: '판매', capacity: '전체', checkedInCount: '입장', toCome: '입장 전',
  },
  en: {
    brand: 'SomSom', festivals: 'Festivals', my: 'My page', notifications: 'Notifications', admin: 'Admin', login: 'Log in',
    logout: 'Log out', signup: 'Sign up', search: 'Search festivals', searchHint: 'By name or description',
    noResults: 'No festivals found.', loading: 'Loading…', more: 'More', days: 'Tickets left per day',
    left: 'left', of: '/', date: 'Day', quantity: 'Quantity', reserve: 'Reserve', chat: 'Join the chat',
    email: 'E-mail', password: 'Password', name: 'Name', code: 'Confirmation code', confirm: 'Confirm',
    resend: 'Send the code again', codeSent: 'Enter the 6-digit code we e-mailed you.', haveAccount: 'Have an account?',
    forgot: 'Forgot your password?', resetTitle: 'Reset your password', sendResetCode: 'Send a reset code',
    resetSent: 'If this address has an account, a reset code is on its way.', newPassword: 'New password', resetDone: 'Password changed. Please log in again.',
    signupPassword: 'The password you signed up with',
    preQueue: 'Waiting for the opening', preQueueNote: 'Everyone who arrives before the opening is put in a random order when it opens, ahead of everyone who comes later.',
    opensIn: 'Opens in', saleOpens: 'Sale opens', saleClosed: 'The sale is over.', soldOutWait: 'Sold out. If tickets come back, the line moves on in order.',
    noQueue: 'Sold without a queue', preQueueCount: 'Pre-queue', seed: 'Lottery seed', issued: 'Admissions issued', used: 'Admissions used', upcoming: 'Opens soon', onSale: 'On sale',
    needAccount: 'No account yet?', waiting: 'Waiting', yourRank: 'Your place', ahead: 'Ahead of you', estimate: 'Estimated wait',
    seconds: 's', admittedGo: 'You are in. Booking…', booked: 'Your tickets are booked', reservationNo: 'Reservation',
    toMy: 'Go to my page', upcoming: 'Upcoming', past: 'Past', cancel: 'Cancel', cancelled: 'Cancelled.',
    confirmCancel: 'Cancel this reservation?', rooms: 'My chat rooms', members: 'members', unread: 'unread',
    send: 'Send', message: 'Message', online: 'Connected', offline: 'Disconnected, reconnecting…', older: 'Older messages',
    enablePush: 'Turn on day-before reminders', pushOn: 'Reminders are on.', pushUnsupported: 'This browser has no Web Push.',
    pushDenied: 'Notifications are blocked.', pushFailed: 'Could not turn reminders on', recent: 'Recent notifications', none: 'None yet.',
    create: 'Create a festival', title: 'Name', description: 'Description', location: 'Place', start: 'First day', end: 'Last day',
    perDay: 'Tickets per day', created: 'Created', queueStats: 'Waiting room', festivalId: 'Festival id', watch: 'Watch',
    waitingCount: 'Waiting', admittedCount: 'Admitted', rate: 'Admissions/s', paused: 'Paused', soldOut: 'Sold out.',
    limit: 'You have reached the limit per person.', expired: 'Your admission expired. Please queue again.', loginFirst: 'Please log in first.',
    status: 'Status', ACTIVE: 'Booked', CANCELLED: 'Cancelled', profile: 'Profile', reservations: 'Reservations', requeue: 'Queue again',
    ticket: 'Ticket', tickets: 'Mobile tickets', showTickets: 'Show tickets', offlineTickets: 'You are offline: here are the tickets saved on this device.',
    scan: 'Check-in', gate: 'Gate', ticketCode: 'Ticket code', checkIn: 'Check in', camera: 'Scan with the camera',
    checkedIn: 'Checked in', cameraUnsupported: 'This browser cannot read QR codes; type the code instead.',
    TICKET_ALREADY_CHECKED_IN: 'Already checked in', TICKET_CODE_INVALID: 'Not a valid ticket', TICKET_CANCELLED: 'Cancelled ticket',
    TICKET_WRONG_DAY: 'Ticket for another day', staff: 'Check-in staff', staffFestival: 'Festival id (empty: every festival)', grant: 'Grant', granted: 'Granted', report: 'Sales and check-in', sold: 'Sold', capacity: 'Capacity', checkedInCount: 'In', toCome: 'To come',
  },
};
let lang = localStorage.getItem('lang') || 'ko';
const t = (k) => WORDS[lang][k] ?? WORDS.ko[k] ?? k;

// ---------- helpers ----------
const view = () => document.getElementById('view');
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'text') el.textContent = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) el.append(c.nodeType ? c : String(c));
  return el;
}
function toast(text) {
  const el = document.getElementById('toast');
  el.textContent = text;
  el.classList.add('show');
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => el.classList.remove('show'), 4000);
}
// Pages render after awaiting the API; one whose route was left meanwhile must not draw over the
// page now shown. Each page function takes the generation it started in.
let routeGen = 0;
function page(gen, title, ...content) {
  if (gen !== routeGen) return false;
  document.title = `${title} · ${t('brand')}`;
  const v = view();
  v.replaceChildren(h('h1', { text: title }), ...content);
  v.focus({ preventScroll: true });
  return true;
}
const debounce = (fn, ms) => { let id; return (...a) => { clearTimeout(id); id = setTimeout(() => fn(...a), ms); }; };
const today = () => new Date(Date.now() + 9 * 3600e3).toISOString().slice(0, 10); // KST

// ---------- session ----------
const session = {
  get() { try { return JSON.parse(localStorage.getItem('session')) || null; } catch { return null; } },
  set(s) { s ? localStorage.setItem('session', JSON.stringify(s)) : localStorage.removeItem('session'); nav(); },
};
let refreshing = null;
async function refresh() {
  const s = session.get();
  if (!s?.refreshToken) return false;
  refreshing ??= fetch('/refresh-token', {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ refreshToken: s.refreshToken, username: s.userName }),
  }).then(async (res) => {
    if (!res.ok) { session.set(null); return false; }
    const r = await res.json();
    session.set({ ...s, accessToken: r.accessToken, refreshToken: r.refreshToken ?? s.refreshToken, expiresAt: Date.now() + r.expiresIn * 1000 });
    return true;
  }).finally(() => { refreshing = null; });
  return refreshing;
}
// Refresh a minute before the access token runs out, so long pages (chat, waiting) keep working.
setInterval(() => { const s = session.get(); if (s && s.expiresAt - Date.now() < 60e3) refresh(); }, 15e3);

async function api(method, path, { body, headers = {}, raw = false, retried = false } = {}) {
  const s = session.get();
  const hs = { 'accept-language': lang, ...headers };
  if (body !== undefined) hs['content-type'] = 'application/json';
  if (s?.accessToken) hs.authorization = `Bearer ${s.accessToken}`;
  const res = await fetch(path, { method, headers: hs, body: body === undefined ? undefined : JSON.stringify(body) });
  if (res.status === 401 && s && !retried && (await refresh())) return api(method, path, { body, headers, raw, retried: true });
  const text = await res.text();
  const data = text ? JSON.parse(text) : null;
  if (!res.ok) {
    const err = new Error(data?.message || res.statusText);
    Object.assign(err, { status: res.status, code: data?.code, body: data });
    throw err;
  }
  return raw ? { data, res } : data;
}
function failure(e) {
  const known = { TICKET_SOLD_OUT: 'soldOut', TICKET_LIMIT_EXCEEDED: 'limit', QUEUE_ADMISSION_INVALID: 'expired', QUEUE_ADMISSION_REQUIRED: 'expired' };
  const fields = e.body?.errors ? ' ' + Object.entries(e.body.errors).map(([k, v]) => `${k}: ${v}`).join(', ') : '';
  return (known[e.code] ? t(known[e.code]) : e.message) + fields;
}
function requireLogin() {
  if (session.get()) return true;
  toast(t('loginFirst'));
  location.hash = `#/login?next=${encodeURIComponent(location.hash)}`;
  return false;
}

// ---------- navigation ----------
function nav() {
  const s = session.get();
  const links = [['#/', 'festivals']];
  if (s) links.push(['#/me', 'my'], ['#/notifications', 'notifications']);
  if (s?.role === 'ADMIN') links.push(['#/admin', 'admin'], ['#/scan', 'scan']);
  const n = document.getElementById('nav');
  n.replaceChildren(...links.map(([href, k]) => h('a', { href, 'aria-current': location.hash.split('?')[0] === href ? 'page' : null, text: t(k) })));
  if (s) n.append(h('a', { href: '#/logout', text: t('logout') }));
  else n.append(h('a', { href: '#/login', text: t('login') }), h('a', { href: '#/signup', text: t('signup') }));
  document.getElementById('lang').textContent = lang === 'ko' ? 'EN' : '한국어';
  document.documentElement.lang = lang;
}

let cleanup = [];
function onLeave(fn) { cleanup.push(fn); }
async function route() {
  routeGen++;
  cleanup.forEach((fn) => fn());
  cleanup = [];
  nav();
  const [path, query] = location.hash.slice(1).split('?');
  const params = new URLSearchParams(query || '');
  const parts = (path || '/').split('/').filter(Boolean);
  try {
    switch (parts[0]) {
      case undefined: return await listPage();
      case 'festival': return await detailPage(Number(parts[1]));
      case 'queue': return await queuePage(Number(parts[1]), params);
      case 'booked': return bookedPage(params);
      case 'login': return loginPage(params);
      case 'signup': return signupPage();
      case 'confirm': return confirmPage(params);
      case 'forgot': return forgotPage(params);
      case 'logout': return await logout();
      case 'me': return await myPage();
      case 'chat': return await chatPage(Number(parts[1]));
      case 'notifications': return await notificationsPage();
      case 'admin': return await adminPage();
      case 'scan': return scanPage();
      default: location.hash = '#/';
    }
  } catch (e) {
    page(routeGen, '!', h('p', { class: 'error', text: failure(e) }));
  }
}

// ---------- festivals ----------
function festivalCard(f) {
  const state = { UPCOMING: t('upcoming'), ON_SALE: t('onSale'), CLOSED: t('saleClosed') }[f.saleState];
  return h('article', { class: 'card' },
    h('h2', {}, h('a', { href: `#/festival/${f.id}`, text: f.name })),
    h('p', { class: 'muted', text: `${f.startDate} – ${f.endDate}` }),
    state ? h('p', { class: `sale ${String(f.saleState).toLowerCase()}`, text: state }) : null,
    h('p', { text: f.description || '' }));
}
async function listPage() {
  const gen = routeGen;
  const input = h('input', { id: 'search', type: 'search', placeholder: t('searchHint'), autocomplete: 'off' });
  const list = h('div', { class: 'grid', id: 'festivals', 'aria-live': 'polite' });
  const sentinel = h('div', { class: 'sentinel' });
  const empty = h('p', { class: 'muted', hidden: true, text: t('noResults') });
  page(gen, t('festivals'), h('form', { role: 'search', onsubmit: (e) => e.preventDefault() },
    h('label', { for: 'search', text: t('search') }), input), list, empty, sentinel);
  let cursor = 0, done = false, busy = false, keyword = '', generation = 0;
  async function more() {
    if (busy || done) return;
    busy = true;
    const mine = generation;
    const q = new URLSearchParams({ limit: '12' });
    if (cursor) q.set('lastId', cursor);
    if (keyword) q.set('keyword', keyword);
    const data = await api('GET', `${keyword ? '/festivals/search' : '/festivals'}?${q}`);
    busy = false;
    if (mine !== generation) return;
    list.append(...data.festivals.map(festivalCard));
    cursor = data.lastId ?? 0;
    done = !data.hasNext;
    empty.hidden = list.children.length > 0;
    if (!done && sentinel.getBoundingClientRect().top < innerHeight) more();
  }
  input.addEventListener('input', debounce(() => {
    keyword = input.value.trim();
    generation++; cursor = 0; done = false; busy = false;
    list.replaceChildren();
    more();
  }, 250));
  const observer = new IntersectionObserver((entries) => entries.some((e) => e.isIntersecting) && more());
  observer.observe(sentinel);
  onLeave(() => observer.disconnect());
  await more();
}

async function detailPage(id) {
  const gen = routeGen;
  const f = await api('GET', `/festivals/${id}`);
  const days = f.days.filter((d) => d.date >= today());
  const daySelect = h('select', { id: 'day', name: 'day' },
    days.map((d) => h('option', { value: d.date, disabled: d.leftTickets === 0, text: `${d.date} (${d.leftTickets} ${t('left')})` })));
  const qty = h('select', { id: 'quantity', name: 'quantity' },
    Array.from({ length: f.maxPerReservation || 4 }, (_, i) => h('option', { value: i + 1, text: i + 1 })));
  const form = h('form', {
    onsubmit: (e) => {
      e.preventDefault();
      if (!requireLogin()) return;
      location.hash = `#/queue/${id}?date=${daySelect.value}&quantity=${qty.value}`;
    },
  }, h('label', { for: 'day', text: t('date') }), daySelect, h('label', { for: 'quantity', text: t('quantity') }), qty,
  h('button', { type: 'submit', disabled: days.length === 0 || f.saleState === 'CLOSED', text: t('reserve') }));
  const join = h('button', {
    type: 'button', class: 'ghost', text: t('chat'),
    onclick: async () => {
      if (!requireLogin()) return;
      try { await api('POST', `/festivals/chatting/${id}/join`); location.hash = `#/chat/${id}`; } catch (e) { toast(failure(e)); }
    },
  });
  page(gen, f.name,
    h('p', { class: 'muted', text: `${f.startDate} – ${f.endDate}${f.location ? ' · ' + f.location : ''}` }),
    h('p', { text: f.description || '' }),
    h('h2', { text: t('days') }),
    h('table', {}, h('thead', {}, h('tr', {}, h('th', { scope: 'col', text: t('date') }), h('th', { scope: 'col', text: t('left') }))),
      h('tbody', {}, f.days.map((d) => h('tr', {}, h('td', { text: d.date }), h('td', { text: `${d.leftTickets} ${t('of')} ${d.totalTickets}` }))))),
    h('h2', { text: t('reserve') }), saleNote(f), form, h('p', {}, join));
}

// ---------- waiting room and booking ----------
// "1:02:03" until `iso`, ticking once a second while the page shows it.
function countdown(iso) {
  const el = h('strong', { class: 'countdown', 'aria-live': 'off' });
  const tick = () => {
    const left = Math.max(0, Math.round((Date.parse(iso) - Date.now()) / 1000));
    const [hh, mm, ss] = [Math.floor(left / 3600), Math.floor(left / 60) % 60, left % 60];
    el.textContent = `${hh}:${String(mm).padStart(2, '0')}:${String(ss).padStart(2, '0')}`;
  };
  tick();
  const timer = setInterval(tick, 1000);
  onLeave(() => clearInterval(timer));
  return el;
}
function saleNote(f) {
  if (f.saleState === 'CLOSED') return h('p', { class: 'error', text: t('saleClosed') });
  if (f.saleState === 'UPCOMING') {
    return h('p', { class: 'card' }, `${t('saleOpens')}: ${new Date(f.saleOpensAt).toLocaleString(lang)} · ${t('opensIn')} `, countdown(f.saleOpensAt));
  }
  return null;
}
async function queuePage(id, params) {
  const gen = routeGen;
  if (!requireLogin()) return;
  const s = session.get();
  const queue = `festival${id}`;
  const rank = h('p', { class: 'rank', 'aria-live': 'polite', text: '…' });
  const ahead = h('span', { text: '–' });
  const estimate = h('span', { text: '–' });
  const note = h('p', { class: 'muted' });
  page(gen, t('waiting'), h('section', { class: 'card queue' }, h('p', { text: t('yourRank') }), rank,
    h('p', {}, `${t('ahead')}: `, ahead, ' · ', `${t('estimate')}: `, estimate), note));
  const book = async (token) => {
    note.textContent = t('admittedGo');
    try {
      const r = await api('POST', '/reservations', {
        headers: { 'Idempotency-Key': crypto.randomUUID(), ...(token ? { 'Admission-Token': token } : {}) },
        body: { festivalId: id, festivalDate: params.get('date'), quantity: Number(params.get('quantity') || 1) },
      });
      api('DELETE', `/queues/${queue}/users/${encodeURIComponent(s.email)}/leave-proceed`).catch(() => {});
      location.hash = `#/booked?id=${r.reservationId}&festival=${id}&date=${r.festivalDate}&quantity=${r.quantity}`;
    } catch (e) {
      note.textContent = '';
      note.append(h('span', { class: 'error', text: failure(e) }), ' ',
        h('a', { href: `#/festival/${id}`, text: t('requeue') }));
    }
  };
  let joined;
  try {
    joined = await api('GET', `/queues/${queue}/waiting-room/users/${encodeURIComponent(s.email)}`, { raw: true });
  } catch (e) {
    rank.textContent = '–';
    note.replaceChildren(h('span', { class: 'error', text: failure(e) }));
    return;
  }
  const { data, res } = joined;
  if (data.allowed) return book(res.headers.get('admission-token'));
  const show = (q) => {
    note.replaceChildren();
    if (q.waitingForOpening) {
      rank.textContent = t('preQueue');
      note.append(`${t('opensIn')} `, countdown(q.opensAt), h('br'), t('preQueueNote'));
    } else {
      rank.textContent = q.rank;
      if (q.ahead !== undefined) ahead.textContent = q.ahead;
    }
    if (q.soldOut) note.append(h('span', { class: 'error', text: t('soldOutWait') }));
    estimate.textContent = q.estimatedWaitSecs == null ? '–' : `${Math.ceil(q.estimatedWaitSecs)}${t('seconds')}`;
  };
  show(data);
  // Pushed by the server (Server-Sent Events): no polling.
  let events;
  const open = () => {
    events = new EventSource(`/queues/${queue}/events?access_token=${encodeURIComponent(session.get().accessToken)}`);
    for (const name of ['rank', 'prequeue', 'soldOut']) events.addEventListener(name, (e) => show(JSON.parse(e.data)));
    events.addEventListener('admitted', (e) => { events.close(); book(JSON.parse(e.data).admissionToken); });
    events.addEventListener('left', () => { events.close(); note.textContent = t('expired'); });
    // The node is shutting down: another one answers the next request (the place is in Redis).
    events.addEventListener('reconnect', () => { events.close(); setTimeout(open, 100); });
  };
  open();
  onLeave(() => events.close());
}

function bookedPage(params) {
  const gen = routeGen;
  page(gen, t('booked'), h('section', { class: 'card' },
    h('p', {}, `${t('reservationNo')}: `, h('strong', { id: 'reservation-id', text: params.get('id') })),
    h('p', { text: `${t('date')}: ${params.get('date')} · ${t('quantity')}: ${params.get('quantity')}` }),
    h('a', { class: 'button', href: '#/me', text: t('toMy') })));
}

// ---------- accounts ----------
function field(id, label, attrs = {}) {
  return [h('label', { for: id, text: label }), h('input', { id, name: id, required: true, ...attrs })];
}
function loginPage(params) {
  const gen = routeGen;
  const error = h('p', { class: 'error', role: 'alert' });
  page(gen, t('login'), h('form', {
    onsubmit: async (e) => {
      e.preventDefault();
      const f = new FormData(e.target);
      try {
        const r = await api('POST', '/login', { body: { email: f.get('email'), password: f.get('password') } });
        session.set({ ...r, email: f.get('email'), expiresAt: Date.now() + r.expiresIn * 1000 });
        const me = await api('GET', '/me');
        session.set({ ...session.get(), role: me.profile.role, name: me.profile.name });
        location.hash = params.get('next') || '#/me';
      } catch (err) { error.textContent = failure(err); }
    },
  }, field('email', t('email'), { type: 'email', autocomplete: 'username' }),
  field('password', t('password'), { type: 'password', autocomplete: 'current-password' }),
  h('button', { type: 'submit', text: t('login') }), error),
  h('p', {}, h('a', { href: '#/forgot', text: t('forgot') })),
  h('p', {}, `${t('needAccount')} `, h('a', { href: '#/signup', text: t('signup') })));
}
// The password of a sign-up in progress, in memory only: confirming an address that was signed
// up more than once needs it (the code proves the mailbox, the password whose sign-up it is).
let pendingSignup = null;
function forgotPage(params) {
  const gen = routeGen;
  const error = h('p', { class: 'error', role: 'alert' });
  const email = params.get('email');
  if (!email) {
    page(gen, t('resetTitle'), h('form', {
      onsubmit: async (e) => {
        e.preventDefault();
        const address = new FormData(e.target).get('email');
        try {
          await api('POST', '/forgot-password', { body: { email: address } });
          toast(t('resetSent'));
          location.hash = `#/forgot?email=${encodeURIComponent(address)}`;
        } catch (err) { error.textContent = failure(err); }
      },
    }, field('email', t('email'), { type: 'email', autocomplete: 'username' }),
    h('button', { type: 'submit', text: t('sendResetCode') }), error));
    return;
  }
  page(gen, t('resetTitle'), h('p', { text: t('resetSent') }), h('form', {
    onsubmit: async (e) => {
      e.preventDefault();
      const f = new FormData(e.target);
      try {
        await api('POST', '/reset-password', { body: { email, code: f.get('code'), newPassword: f.get('newPassword') } });
        session.set(null);
        toast(t('resetDone'));
        location.hash = '#/login';
      } catch (err) { error.textContent = failure(err); }
    },
  }, field('code', t('code'), { inputmode: 'numeric', autocomplete: 'one-time-code', pattern: '[0-9]{6}' }),
  field('newPassword', t('newPassword'), { type: 'password', autocomplete: 'new-password', minlength: 8 }),
  h('button', { type: 'submit', text: t('confirm') }), error));
}
function signupPage() {
  const gen = routeGen;
  const error = h('p', { class: 'error', role: 'alert' });
  page(gen, t('signup'), h('form', {
    onsubmit: async (e) => {
      e.preventDefault();
      const f = Object.fromEntries(new FormData(e.target));
      try {
        await api('POST', '/signup', { body: f });
        pendingSignup = { email: f.email, password: f.password };
        location.hash = `#/confirm?email=${encodeURIComponent(f.email)}&name=${encodeURIComponent(f.name)}`;
      } catch (err) { error.textContent = failure(err); }
    },
  }, field('email', t('email'), { type: 'email', autocomplete: 'username' }),
  field('name', t('name'), { autocomplete: 'nickname' }),
  field('password', t('password'), { type: 'password', autocomplete: 'new-password', minlength: 8 }),
  h('button', { type: 'submit', text: t('signup') }), error),
  h('p', {}, `${t('haveAccount')} `, h('a', { href: '#/login', text: t('login') })));
}
function confirmPage(params) {
  const gen = routeGen;
  const email = params.get('email');
  const error = h('p', { class: 'error', role: 'alert' });
  // After a reload the password is gone from memory: ask for it again.
  const known = pendingSignup && pendingSignup.email === email ? pendingSignup.password : null;
  page(gen, t('confirm'), h('p', { text: t('codeSent') }), h('form', {
    onsubmit: async (e) => {
      e.preventDefault();
      const f = new FormData(e.target);
      try {
        await api('POST', '/confirm-signup', { body: { email, name: params.get('name'), code: f.get('code'), password: known || f.get('password') } });
        pendingSignup = null;
        location.hash = '#/login';
      } catch (err) { error.textContent = failure(err); }
    },
  }, field('code', t('code'), { inputmode: 'numeric', autocomplete: 'one-time-code', pattern: '[0-9]{6}' }),
  known ? [] : field('password', t('signupPassword'), { type: 'password', autocomplete: 'current-password' }),
  h('button', { type: 'submit', text: t('confirm') }), error),
  h('button', { type: 'button', class: 'ghost', text: t('resend'), onclick: () => api('POST', '/resend-confirmation-code', { body: { email } }).then(() => toast(t('codeSent')), (e) => toast(failure(e))) }));
}
async function logout() {
  try { await api('POST', '/signout'); } catch (_) { /* the session ends locally anyway */ }
  session.set(null);
  location.hash = '#/';
}

// ---------- my page ----------
// The SVG documents of the server's QR codes, as nodes (parsed, never injected as HTML).
function svgNode(svg) {
  const doc = new DOMParser().parseFromString(svg, 'image/svg+xml');
  const node = document.importNode(doc.documentElement, true);
  node.setAttribute('role', 'img');
  return node;
}
function ticketList(r) {
  return h('div', { class: 'tickets', 'aria-label': t('tickets') }, (r.tickets ?? []).map((tk) => h('figure', { class: 'ticket', 'data-ticket': tk.number },
    tk.qrSvg ? svgNode(tk.qrSvg) : null,
    h('figcaption', {}, `${t('ticket')} ${tk.number}/${r.quantity} `, h('code', { text: tk.code })))));
}
// Upcoming tickets stay on this device, so they show at the gate without a signal.
function offlineTicketsPage(gen) {
  const saved = JSON.parse(localStorage.getItem('tickets') || '[]');
  page(gen, t('my'), h('p', { class: 'muted', role: 'status', text: t('offlineTickets') }),
    saved.length ? h('ul', { class: 'plain', id: 'upcoming' }, saved.map((r) => h('li', { class: 'card', 'data-reservation': r.id },
      h('h3', { text: r.festivalInfo?.name ?? `#${r.id}` }), h('p', { text: `${r.festivalDate} · ${t('quantity')} ${r.quantity}` }), ticketList(r))))
      : h('p', { class: 'muted', text: t('none') }));
}
async function myPage() {
  const gen = routeGen;
  if (!requireLogin()) return;
  let me; let all;
  try {
    [me, all] = await Promise.all([api('GET', '/me'), api('GET', '/reservations?limit=50')]);
  } catch (e) {
    if (!e.status) return offlineTicketsPage(gen);
    throw e;
  }
  localStorage.setItem('tickets', JSON.stringify(me.upcomingReservations));
  const withQr = new Map(me.upcomingReservations.map((r) => [r.id, r]));
  const row = (r) => {
    const li = h('li', { class: 'card', 'data-reservation': r.id },
      h('h3', { text: r.festivalInfo?.name ?? `#${r.id}` }),
      h('p', {}, `${r.festivalDate} · ${t('quantity')} ${r.quantity} · `, h('span', { class: `status-${r.status}`, 'data-status': r.status, text: t(r.status) })));
    if (withQr.has(r.id)) li.append(ticketList(withQr.get(r.id)));
    if (r.status === 'ACTIVE' && r.festivalDate >= today()) {
      li.append(h('button', {
        type: 'button', class: 'danger', text: t('cancel'), 'aria-label': `${t('cancel')} ${r.festivalInfo?.name ?? ''} ${r.festivalDate}`,
        onclick: async () => {
          if (!confirm(t('confirmCancel'))) return;
          try { await api('DELETE', `/reservations/${r.id}`); toast(t('cancelled')); route(); } catch (e) { toast(failure(e)); }
        },
      }));
    }
    return li;
  };
  const upcoming = all.reservations.filter((r) => r.festivalDate >= today());
  const past = all.reservations.filter((r) => r.festivalDate < today());
  page(gen, t('my'),
    h('section', { class: 'card' }, h('h2', { text: t('profile') }), h('p', { text: `${me.profile.name} · ${me.profile.email}` })),
    h('h2', { text: t('upcoming') }), upcoming.length ? h('ul', { class: 'plain', id: 'upcoming' }, upcoming.map(row)) : h('p', { class: 'muted', text: t('none') }),
    h('h2', { text: t('past') }), past.length ? h('ul', { class: 'plain', id: 'past' }, past.map(row)) : h('p', { class: 'muted', text: t('none') }),
    h('h2', { text: t('rooms') }),
    me.chatRooms.length ? h('ul', { id: 'rooms' }, me.chatRooms.map((c) => h('li', {},
      h('a', { href: `#/chat/${c.id}`, text: c.title }), ` · ${c.userCount} ${t('members')} `,
      c.unReadCount ? h('span', { class: 'badge', 'aria-label': `${c.unReadCount} ${t('unread')}`, text: c.unReadCount }) : null)))
      : h('p', { class: 'muted', text: t('none') }));
}

// ---------- check-in (staff) ----------
function scanPage() {
  const gen = routeGen;
  if (!requireLogin()) return;
  const result = h('p', { id: 'scan-result', role: 'status', 'aria-live': 'assertive' });
  const code = h('input', { id: 'scan-code', name: 'code', autocomplete: 'off', required: true });
  const video = h('video', { id: 'scan-video', muted: true, playsinline: true, hidden: true });
  let stream; let busy = false;
  onLeave(() => stream?.getTracks().forEach((tr) => tr.stop()));
  async function submit(value) {
    if (busy || !value) return;
    busy = true;
    const day = document.getElementById('scan-date').value;
    const gate = document.getElementById('scan-gate').value || 'main';
    try {
      const r = await api('POST', '/checkins', { body: { code: value.trim(), gate, festivalDate: day } });
      result.className = 'ok';
      result.dataset.result = 'ok';
      result.textContent = `${t('checkedIn')} · #${r.reservationId} ${t('ticket')} ${r.ticket}`;
    } catch (e) {
      result.className = 'error';
      result.dataset.result = e.body?.code ?? 'error';
      const first = e.body?.details;
      result.textContent = e.body?.code && WORDS[lang][e.body.code]
        ? `${t(e.body.code)}${first?.gate ? ` · ${t('gate')} ${first.gate} · ${new Date(first.checkedInAt).toLocaleTimeString(lang)}` : ''}`
        : failure(e);
    } finally {
      busy = false;
      code.value = '';
      code.focus();
    }
  }
  async function camera() {
    if (!('BarcodeDetector' in window) || !navigator.mediaDevices?.getUserMedia) { toast(t('cameraUnsupported')); return; }
    const detector = new BarcodeDetector({ formats: ['qr_code'] });
    stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: 'environment' } });
    video.srcObject = stream; video.hidden = false; await video.play();
    let last = '';
    const look = async () => {
      if (gen !== routeGen) return;
      const [found] = await detector.detect(video).catch(() => []);
      if (found && found.rawValue !== last) { last = found.rawValue; await submit(found.rawValue); }
      setTimeout(look, 250);
    };
    look();
  }
  page(gen, t('scan'),
    h('form', { id: 'scan-form', onsubmit: (e) => { e.preventDefault(); submit(code.value); } },
      field('scan-date', t('date'), { type: 'date', value: today() }),
      field('scan-gate', t('gate'), { value: 'main', maxlength: 64 }),
      h('label', { for: 'scan-code', text: t('ticketCode') }), code,
      h('button', { type: 'submit', text: t('checkIn') }),
      h('button', { type: 'button', class: 'secondary', text: t('camera'), onclick: () => camera().catch((e) => toast(e.message)) })),
    result, video);
}

// ---------- chat ----------
async function chatPage(id) {
  const gen = routeGen;
  if (!requireLogin()) return;
  const me = session.get();
  const list = h('ol', { class: 'messages', id: 'messages', 'aria-live': 'polite', 'aria-label': t('message') });
  const state = h('p', { class: 'muted', role: 'status' });
  const input = h('input', { id: 'chat-input', name: 'content', autocomplete: 'off', maxlength: 1000, required: true });
  const seen = new Set();
  let newest = 0, oldest = null, more = true;
  const item = (m) => h('li', { class: m.senderId === me.userId ? 'me' : '', 'data-send-time': m.sendTime },
    h('div', { class: 'who', text: `${m.senderName} · ${new Date(m.sendTime).toLocaleTimeString(lang)}` }), h('div', { class: 'text', text: m.content }));
  const history = await api('GET', `/festivals/chatting/${id}?limit=30`);
  for (const m of [...history.messages].reverse()) { seen.add(m.sendTime); list.append(item(m)); newest = Math.max(newest, m.sendTime); }
  oldest = history.lastEvaluatedSendTime; more = oldest != null;
  const older = h('button', {
    type: 'button', class: 'ghost', text: t('older'), hidden: !more,
    onclick: () => loadOlder(),
  });
  async function loadOlder() {
    if (!more) return;
    more = false;
    const page = await api('GET', `/festivals/chatting/${id}?limit=30&lastEvaluatedSendTime=${oldest}`);
    const before = list.scrollHeight;
    for (const m of page.messages) if (!seen.has(m.sendTime)) { seen.add(m.sendTime); list.prepend(item(m)); }
    list.scrollTop += list.scrollHeight - before; // keep the reader's place
    oldest = page.lastEvaluatedSendTime; more = oldest != null; older.hidden = !more;
  }
  list.addEventListener('scroll', () => { if (list.scrollTop < 40 && more) loadOlder(); });
  const client = new StompClient(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws-chat`, () => session.get()?.accessToken, {
    onState: (s) => { state.textContent = t(s); state.dataset.state = s; },
    onError: (m) => toast(m),
    onConnect: () => client.subscribe(`/topic/chat/chatRoomId${id}`, (m) => {
      if (seen.has(m.sendTime)) return; // a repeat after a reconnect
      seen.add(m.sendTime);
      newest = Math.max(newest, m.sendTime);
      const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 60;
      list.append(item(m));
      if (atBottom || m.senderId === me.userId) list.scrollTop = list.scrollHeight;
    }, newest ? { 'resume-after': String(newest) } : {}),
  });
  if (gen !== routeGen) return; // left while the history loaded
  client.connect();
  window.somsomChat = client; // lets the end-to-end test cut the connection as a network drop would
  onLeave(() => { client.close(); delete window.somsomChat; });
  page(gen, history.title,
    h('section', { class: 'chat' }, older, list,
      h('form', {
        onsubmit: (e) => {
          e.preventDefault();
          if (client.send('/publish/chat.send', { chatRoomId: id, content: input.value })) input.value = '';
          else toast(t('offline'));
        },
      }, h('label', { for: 'chat-input', class: 'skip', text: t('message') }), input, h('button', { type: 'submit', text: t('send') })),
      state));
  list.scrollTop = list.scrollHeight;
}

// ---------- notifications ----------
function urlBase64ToBytes(s) {
  const raw = atob((s + '='.repeat((4 - (s.length % 4)) % 4)).replace(/-/g, '+').replace(/_/g, '/'));
  return Uint8Array.from(raw, (c) => c.charCodeAt(0));
}
async function enablePush(status) {
  if (!('serviceWorker' in navigator) || !('PushManager' in window)) { status.textContent = t('pushUnsupported'); return; }
  try {
    if ((await Notification.requestPermission()) !== 'granted') { status.textContent = t('pushDenied'); return; }
    const registration = await navigator.serviceWorker.register('/sw.js');
    const { publicKey } = await api('GET', '/notification/vapid-public-key');
    const subscription = await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: urlBase64ToBytes(publicKey) });
    await api('POST', '/notification/activate', { body: { token: JSON.stringify(subscription), deviceType: 'WEB' } });
    status.textContent = t('pushOn');
  } catch (e) {
    status.textContent = `${t('pushFailed')}: ${e.message}`;
  }
}
async function notificationsPage() {
  const gen = routeGen;
  if (!requireLogin()) return;
  const items = await api('GET', '/notifications');
  const status = h('p', { role: 'status', id: 'push-status' });
  page(gen, t('notifications'),
    h('p', {}, h('button', { type: 'button', id: 'enable-push', text: t('enablePush'), onclick: () => enablePush(status) })), status,
    h('h2', { text: t('recent') }),
    items.length ? h('ul', { id: 'notification-list' }, items.map((n) => h('li', { class: 'card' },
      h('h3', { text: n.title }), h('p', { text: n.body }), h('p', { class: 'muted', text: new Date(n.deliveredAt).toLocaleString(lang) }))))
      : h('p', { class: 'muted', text: t('none') }));
}

// ---------- admin ----------
async function adminPage() {
  const gen = routeGen;
  if (!requireLogin()) return;
  const result = h('p', { role: 'status', id: 'admin-result' });
  const stats = h('dl', { id: 'queue-stats', class: 'card' });
  const report = h('table', { id: 'gate-report', class: 'card' });
  const staffResult = h('p', { role: 'status', id: 'staff-result' });
  let timer;
  onLeave(() => clearInterval(timer));
  async function watch(id) {
    clearInterval(timer);
    const show = async () => {
      try {
        const s = await api('GET', `/admin/queues/festival${id}`);
        stats.replaceChildren(...[[t('waitingCount'), s.waiting], [t('preQueueCount'), s.preQueue], [t('admittedCount'), s.admitted],
          [t('issued'), s.admittedTotal], [t('used'), s.admissionsConsumed], [t('rate'), (s.admissionRate ?? 0).toFixed(1)],
          [t('saleOpens'), s.opensAt ? new Date(s.opensAt).toLocaleString(lang) : '–'], [t('seed'), s.shuffleSeed ?? '–'],
          [t('soldOut'), String(s.soldOut)], [t('paused'), String(s.paused)]]
          .flatMap(([k, v]) => [h('dt', { text: k }), h('dd', { text: v })]));
      } catch (e) { stats.replaceChildren(h('p', { class: 'error', text: failure(e) })); }
      try {
        const r = await api('GET', `/admin/festivals/${id}/report`);
        report.replaceChildren(h('caption', { text: t('report') }),
          h('tr', {}, [t('date'), t('capacity'), t('sold'), t('CANCELLED'), t('checkedInCount'), t('toCome')].map((c) => h('th', { scope: 'col', text: c }))),
          ...r.days.map((d) => h('tr', { 'data-date': d.date }, [d.date, d.capacity, d.sold, d.cancelled, d.checkedIn, d.toCome].map((c) => h('td', { text: String(c) })))));
      } catch (e) { report.replaceChildren(h('caption', { class: 'error', text: failure(e) })); }
    };
    await show();
    timer = setInterval(show, 2000);
  }
  page(gen, t('admin'),
    h('h2', { text: t('create') }),
    h('form', {
      id: 'create-festival',
      onsubmit: async (e) => {
        e.preventDefault();
        const f = Object.fromEntries(new FormData(e.target));
        const sale = {
          saleOpensAt: f.saleOpensAt ? new Date(f.saleOpensAt).toISOString() : undefined,
          saleQueued: f.noQueue !== 'on',
        };
        delete f.saleOpensAt; delete f.noQueue;
        try {
          const r = await api('POST', '/festivals/create', { body: { ...f, ...sale, ticketsPerDay: Number(f.ticketsPerDay) } });
          result.textContent = `${t('created')}: #${r.id} ${r.name}`;
          result.dataset.id = r.id;
        } catch (err) { result.textContent = failure(err); }
      },
    }, field('title', t('title')), h('label', { for: 'description', text: t('description') }), h('textarea', { id: 'description', name: 'description' }),
    field('location', t('location'), { required: false }), field('startDate', t('start'), { type: 'date' }), field('endDate', t('end'), { type: 'date' }),
    field('ticketsPerDay', t('perDay'), { type: 'number', min: 1, value: 100 }),
    field('saleOpensAt', t('saleOpens'), { type: 'datetime-local', required: false }),
    h('label', {}, h('input', { type: 'checkbox', name: 'noQueue', id: 'noQueue' }), ` ${t('noQueue')}`),
    h('button', { type: 'submit', text: t('create') })),
    result,
    h('h2', { text: t('queueStats') }),
    h('form', { onsubmit: (e) => { e.preventDefault(); watch(new FormData(e.target).get('festival')); } },
      field('festival', t('festivalId'), { type: 'number', min: 1 }), h('button', { type: 'submit', text: t('watch') })),
    stats, report,
    h('h2', { text: t('staff') }),
    h('form', {
      id: 'grant-staff',
      onsubmit: async (e) => {
        e.preventDefault();
        const f = Object.fromEntries(new FormData(e.target));
        const query = f.staffFestival ? `?festivalId=${encodeURIComponent(f.staffFestival)}` : '';
        try {
          await api('PUT', `/admin/staff/${encodeURIComponent(f.staffEmail)}${query}`);
          staffResult.textContent = `${t('granted')}: ${f.staffEmail}`;
        } catch (err) { staffResult.textContent = failure(err); }
      },
    }, field('staffEmail', t('email'), { type: 'email' }), field('staffFestival', t('staffFestival'), { type: 'number', min: 1, required: false }),
    h('button', { type: 'submit', text: t('grant') })),
    staffResult);
}

// ---------- start ----------
document.getElementById('lang').addEventListener('click', () => {
  lang = lang === 'ko' ? 'en' : 'ko';
  localStorage.setItem('lang', lang);
  route();
});
addEventListener('hashchange', route);
// The service worker keeps the app for offline use (tickets at a gate without signal).
if ('serviceWorker' in navigator) navigator.serviceWorker.register('/sw.js').catch(() => {});
route();
