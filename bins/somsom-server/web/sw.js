// SomSom's service worker: shows the day-before reminder that arrives by Web Push, opens the
// notification list when it is clicked, and keeps the app itself for when there is no signal
// (my page then shows the tickets saved on the device).
const SHELL = 'somsom-shell-v1';
self.addEventListener('fetch', (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== 'GET' || url.origin !== self.location.origin) return;
  if (url.pathname !== '/' && !url.pathname.startsWith('/assets/')) return;
  // Network first (a new release shows at once), the saved copy when offline.
  event.respondWith(fetch(event.request).then((response) => {
    const copy = response.clone();
    caches.open(SHELL).then((cache) => cache.put(event.request, copy));
    return response;
  }).catch(() => caches.match(event.request)));
});
self.addEventListener('push', (event) => {
  let data = { title: 'SomSom', body: '' };
  try { data = event.data ? event.data.json() : data; } catch (_) { data.body = event.data?.text() ?? ''; }
  event.waitUntil(self.registration.showNotification(data.title, { body: data.body, tag: data.tag, lang: 'ko' }));
});
self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  event.waitUntil(self.clients.openWindow('/#/notifications'));
});
