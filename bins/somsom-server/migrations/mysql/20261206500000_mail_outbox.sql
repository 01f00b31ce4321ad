-- Confirmation e-mails waiting to be sent: one row per (reservation, kind), written right after
-- the booking or cancellation commits (and by the start-up catch-up for a crash in between),
-- sent by any node that leases it, marked sent once the SMTP server accepted it.
CREATE TABLE IF NOT EXISTS mail_outbox (
    id              BIGINT      NOT NULL AUTO_INCREMENT PRIMARY KEY,
    kind            VARCHAR(16) NOT NULL,
    reservation_id  BIGINT      NOT NULL,
    user_id         BIGINT      NOT NULL,
    created_at      BIGINT      NOT NULL,
    attempts        INT         NOT NULL DEFAULT 0,
    next_attempt_at BIGINT      NOT NULL,
    lease_until     BIGINT      NULL,
    lease_token     VARCHAR(36) NULL,
    sent_at         BIGINT      NULL,
    last_error      VARCHAR(255) NULL,
    UNIQUE KEY mail_outbox_once (reservation_id, kind),
    KEY mail_outbox_due (sent_at, next_attempt_at)
) ENGINE = InnoDB;
