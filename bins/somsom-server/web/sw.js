// SomSom's service worker: shows the day-before reminder that arrives by Web Push, and opens
// the notification list when it is clicked.
self.addEventListener('push', (event) => {
  let data = { title: 'SomSom', body: '' };
  try { data = event.data ? event.data.json() : data; } catch (_) { data.body = event.data?.text() ?? ''; }
  event.waitUntil(self.registration.showNotification(data.title, { body: data.body, tag: data.tag, lang: 'ko' }));
});
self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  event.waitUntil(self.clients.openWindow('/#/notifications'));
});
