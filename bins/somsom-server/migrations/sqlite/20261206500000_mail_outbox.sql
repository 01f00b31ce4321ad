-- Confirmation e-mails waiting to be sent: one row per (reservation, kind), written right after
-- the booking or cancellation commits (and by the start-up catch-up for a crash in between),
-- sent by any node that leases it, marked sent once the SMTP server accepted it.
CREATE TABLE IF NOT EXISTS mail_outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    kind            TEXT    NOT NULL,
    reservation_id  BIGINT  NOT NULL,
    user_id         BIGINT  NOT NULL,
    created_at      BIGINT  NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT  NOT NULL,
    lease_until     BIGINT  NULL,
    lease_token     TEXT    NULL,
    sent_at         BIGINT  NULL,
    last_error      TEXT    NULL,
    UNIQUE (reservation_id, kind)
);
CREATE INDEX IF NOT EXISTS mail_outbox_due ON mail_outbox (sent_at, next_attempt_at);
