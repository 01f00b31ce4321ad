//! Booking and cancellation confirmations by e-mail, in Korean and English, with the tickets.
//!
//! Off the request path and crash-safe: the workflow writes one [`outbox`] row per (reservation,
//! kind) right after the booking or cancellation commits, and a sender on every node leases due
//! rows, writes the mail, hands it to the SMTP server sign-up codes use, and marks the row sent.
//! A node that dies before sending leaves the row for the next lease; one that dies between the
//! SMTP server's acceptance and the mark would send that one mail again (the window is one
//! database write). A booking committed just before a crash, whose row was never written, is
//! found by the catch-up at start (bookings of the last hour without a row).

pub mod outbox;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cognito_auth::Clock;
use festival_catalog::Catalog;
use ticket_lock::{Reservation, ReservationId, TicketEngine};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::db::Database;
use crate::tickets::codes::TicketCodes;
use outbox::{Kind, Leased};

/// Hands a written mail to someone who delivers it.
#[async_trait]
pub trait Postman: Send + Sync + 'static {
    /// Sends `subject` and `body` (plain text) to `name <email>`.
    async fn post(&self, name: &str, email: &str, subject: &str, body: &str) -> Result<(), String>;
}

/// Through an SMTP server (`smtp_url`, the one sign-up codes use).
pub struct SmtpPostman {
    transport: lettre::AsyncSmtpTransport<lettre::Tokio1Executor>,
    from: lettre::message::Mailbox,
}

impl SmtpPostman {
    /// For the server at `url`, writing from `from`.
    pub fn new(url: &str, from: &str) -> Result<Self, String> {
        let transport = lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::from_url(url)
            .map_err(|e| e.to_string())?
            .timeout(Some(Duration::from_secs(10)))
            .build();
        let from = from
            .parse()
            .map_err(|_| "not a sender address".to_owned())?;
        Ok(Self { transport, from })
    }
}

#[async_trait]
impl Postman for SmtpPostman {
    async fn post(&self, name: &str, email: &str, subject: &str, body: &str) -> Result<(), String> {
        use lettre::AsyncTransport;
        let to = lettre::message::Mailbox::new(
            Some(name.to_owned()),
            email
                .parse()
                .map_err(|_| "not an e-mail address".to_owned())?,
        );
        let message = lettre::Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .header(lettre::message::header::ContentType::TEXT_PLAIN)
            .body(body.to_owned())
            .map_err(|e| e.to_string())?;
        self.transport
            .send(message)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }
}

/// Queues confirmations (what the booking workflow holds). The rows are written by a task in
/// batches, one statement for all the bookings that came in meanwhile, so a booking rush does not
/// pay one more write per booking; a crash before a batch is written loses only rows the catch-up
/// at start restores (bookings; a cancellation in that millisecond goes unmailed).
#[derive(Clone)]
pub struct Outbox {
    /// `None` without an SMTP server: nobody to mail, nothing kept.
    queue: Option<tokio::sync::mpsc::UnboundedSender<(Kind, i64, i64)>>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Outbox { .. }")
    }
}

impl Outbox {
    /// Queues the confirmation of `kind` for `reservation` (never waits).
    pub fn queue(&self, kind: Kind, reservation: &Reservation) {
        if let Some(queue) = &self.queue {
            // Closed only once the server stops; the catch-up at the next start covers a booking.
            let _ = queue.send((kind, reservation.id.0, reservation.user.0));
        }
    }

    /// An outbox that keeps nothing (no SMTP server is configured).
    pub fn disabled() -> Self {
        Self { queue: None }
    }
}

/// Writes queued rows in batches until `cancel`, then what is left, waking the sender after
/// each batch.
async fn write_queued(
    db: Database,
    clock: Arc<dyn Clock>,
    wake: Arc<Notify>,
    mut queued: tokio::sync::mpsc::UnboundedReceiver<(Kind, i64, i64)>,
    cancel: CancellationToken,
) {
    let mut batch = Vec::with_capacity(256);
    loop {
        let open = tokio::select! {
            n = queued.recv_many(&mut batch, 256) => n > 0,
            () = cancel.cancelled() => {
                queued.close();
                while queued.recv_many(&mut batch, 256).await > 0 {}
                false
            }
        };
        for chunk in batch.chunks(256) {
            let now = clock.now().timestamp_millis();
            if let Err(e) = outbox::enqueue_many(&db, chunk, now).await {
                tracing::warn!(mails = chunk.len(), error = %crate::error::Report(&e),
                    "confirmation e-mails not queued");
            }
        }
        batch.clear();
        wake.notify_one();
        if !open {
            return;
        }
    }
}

/// The writer task's future.
pub type BoxFuture = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// Sends what the outbox holds.
pub struct Mailer {
    db: Database,
    tickets: Arc<dyn TicketEngine>,
    catalog: Arc<dyn Catalog>,
    codes: TicketCodes,
    postman: Arc<dyn Postman>,
    clock: Arc<dyn Clock>,
    wake: Arc<Notify>,
}

/// How long a lease on a row lasts: longer than a round's two waves of SMTP transactions (10 s
/// timeout each), and the longest a crashed node's rows wait for another.
const LEASE_MS: i64 = 30_000;
/// How often the sender looks without being woken.
const POLL: Duration = Duration::from_secs(1);
/// Rows leased at once.
const BATCH: i64 = 16;
/// SMTP transactions under way at once (each its own connection).
const SENDS_AT_ONCE: usize = 8;

impl Mailer {
    /// A sender and the outbox that feeds it. Spawn [`run`](Self::run) and the returned
    /// writer (it writes queued rows).
    pub fn new(
        db: Database,
        tickets: Arc<dyn TicketEngine>,
        catalog: Arc<dyn Catalog>,
        codes: TicketCodes,
        postman: Arc<dyn Postman>,
        clock: Arc<dyn Clock>,
    ) -> (Self, Outbox, impl FnOnce(CancellationToken) -> BoxFuture) {
        let wake = Arc::new(Notify::new());
        let (queue, queued) = tokio::sync::mpsc::unbounded_channel();
        let writer = {
            let (db, clock, wake) = (db.clone(), clock.clone(), wake.clone());
            move |cancel: CancellationToken| -> BoxFuture {
                Box::pin(write_queued(db, clock, wake, queued, cancel))
            }
        };
        let mailer = Self {
            db,
            tickets,
            catalog,
            codes,
            postman,
            clock,
            wake,
        };
        (mailer, Outbox { queue: Some(queue) }, writer)
    }

    /// Sends until `cancel`, after catching up on bookings whose row a crash lost.
    pub async fn run(self, cancel: CancellationToken) {
        match self.catch_up().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                queued = n,
                "confirmation e-mails of recent bookings queued at start"
            ),
            Err(e) => tracing::warn!(error = %e, "the confirmation catch-up failed"),
        }
        while !cancel.is_cancelled() {
            let busy = match self.round().await {
                Ok(n) => n as i64 == BATCH,
                Err(e) => {
                    tracing::warn!(error = %crate::error::Report(&e), "confirmation e-mail round failed");
                    false
                }
            };
            if !busy {
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = self.wake.notified() => {}
                    () = tokio::time::sleep(POLL) => {}
                }
            }
        }
    }

    /// Queues the booking mail of every active booking made in the last hour that has none.
    pub async fn catch_up(&self) -> Result<usize, String> {
        let now = self.clock.now();
        let since = now - chrono::Duration::hours(1);
        let today = now.with_timezone(&ticket_lock::kst()).date_naive();
        let mut after = ReservationId(0);
        let mut queued = 0;
        loop {
            let page = self
                .tickets
                .active_from(today, after, 1_000)
                .await
                .map_err(|e| e.to_string())?;
            let Some(last) = page.last() else { break };
            after = last.id;
            for r in page.iter().filter(|r| r.created_at >= since) {
                if outbox::enqueue(
                    &self.db,
                    Kind::Booked,
                    r.id.0,
                    r.user.0,
                    now.timestamp_millis(),
                )
                .await
                .map_err(|e| e.to_string())?
                {
                    queued += 1;
                }
            }
        }
        Ok(queued)
    }

    /// Leases due rows and sends them, a few at once; returns how many it leased.
    pub async fn round(&self) -> Result<usize, sqlx::Error> {
        use futures::StreamExt;
        let now = self.clock.now().timestamp_millis();
        let rows = outbox::lease(&self.db, now, LEASE_MS, BATCH).await?;
        let leased = rows.len();
        let mut outcomes = futures::stream::iter(rows)
            .map(|row| async move {
                let outcome = self.send(&row).await;
                (row, outcome)
            })
            .buffer_unordered(SENDS_AT_ONCE);
        while let Some((row, outcome)) = outcomes.next().await {
            let row = &row;
            match outcome {
                Ok(()) => outbox::sent(&self.db, row, self.clock.now().timestamp_millis()).await?,
                Err(e) => {
                    // 1 s, 2 s, 4 s … at most a minute between attempts.
                    let wait = 1_000i64 << (row.attempts.clamp(1, 7) - 1);
                    let retry_at = self.clock.now().timestamp_millis() + wait.min(60_000);
                    tracing::warn!(reservation = row.reservation_id, attempts = row.attempts, error = %e,
                        "confirmation e-mail not sent; trying again");
                    outbox::failed(&self.db, row, retry_at, &e).await?;
                }
            }
        }
        Ok(leased)
    }

    async fn send(&self, row: &Leased) -> Result<(), String> {
        let reservation = self
            .tickets
            .reservation_by_id(ReservationId(row.reservation_id))
            .await
            .map_err(|e| e.to_string())?;
        let user = crate::auth::users::by_id(&self.db, row.user_id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the user is gone")?;
        let festival = match self.catalog.get(reservation.festival.0).await {
            Ok(f) => f.name,
            Err(festival_catalog::CatalogError::NotFound(_)) => {
                format!("#{}", reservation.festival.0)
            }
            Err(e) => return Err(e.to_string()),
        };
        let (subject, body) = compose(row.kind, &reservation, &user.name, &festival, &self.codes);
        self.postman
            .post(&user.name, &user.email, &subject, &body)
            .await
    }
}

/// The mail for `kind` about `r`: a subject, and a body in Korean then English.
pub fn compose(
    kind: Kind,
    r: &Reservation,
    name: &str,
    festival: &str,
    codes: &TicketCodes,
) -> (String, String) {
    let date = r.date;
    let id = r.id.0;
    let quantity = r.quantity;
    match kind {
        Kind::Booked => {
            let tickets = codes.tickets(id, r.festival.0, date, quantity);
            let list = |word: &str| {
                tickets
                    .iter()
                    .map(|(n, code)| format!("  {word} {n}: {code}\n"))
                    .collect::<String>()
            };
            let subject = format!("[솜솜] 예매 완료 / Booking confirmed: {festival} {date}");
            let body = format!(
                "{name}님, 예매가 완료되었습니다.\n\n축제: {festival}\n날짜: {date}\n매수: {quantity}\n\
                 예매 번호: {id}\n\n모바일 티켓 (입장할 때 마이페이지의 QR 코드나 아래 코드를 보여주세요):\n{}\n\
                 ---\n\nHello {name}, your tickets are booked.\n\nFestival: {festival}\nDate: {date}\n\
                 Tickets: {quantity}\nReservation: {id}\n\nMobile tickets (show the QR code on your page, \
                 or the code below, at the gate):\n{}",
                list("티켓"),
                list("Ticket")
            );
            (subject, body)
        }
        Kind::Cancelled => {
            let subject = format!("[솜솜] 예매 취소 / Booking cancelled: {festival} {date}");
            let body = format!(
                "{name}님, 예매가 취소되었습니다.\n\n축제: {festival}\n날짜: {date}\n매수: {quantity}\n\
                 예매 번호: {id}\n\n이 예매의 티켓으로는 더 이상 입장할 수 없습니다.\n\n---\n\n\
                 Hello {name}, your booking is cancelled.\n\nFestival: {festival}\nDate: {date}\n\
                 Tickets: {quantity}\nReservation: {id}\n\nIts tickets no longer let anyone in.\n"
            );
            (subject, body)
        }
    }
}
