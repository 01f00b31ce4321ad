-- Devices, the reminder plan, the delivery ledger and the notification list (push-notify).
CREATE TABLE IF NOT EXISTS push_devices (
    token_hash  CHAR(64)    NOT NULL PRIMARY KEY, -- SHA-256 of the token (tokens run to 4 KiB)
    token       TEXT        NOT NULL,
    user_id     BIGINT      NOT NULL,
    device_type VARCHAR(16) NOT NULL,
    active      TINYINT     NOT NULL,
    updated_at  BIGINT      NOT NULL,
    KEY push_devices_by_user (user_id, active)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE TABLE IF NOT EXISTS push_reminders (
    user_id       BIGINT      NOT NULL,
    festival_id   BIGINT      NOT NULL,
    festival_date DATE        NOT NULL,
    due_at        BIGINT      NOT NULL,
    title         TEXT        NOT NULL,
    body          TEXT        NOT NULL,
    state         VARCHAR(16) NOT NULL, -- pending | delivered | dropped | failed
    available_at  BIGINT      NOT NULL, -- due, retry or lease end (ms)
    attempts      INT         NOT NULL,
    lease         VARCHAR(40),
    PRIMARY KEY (user_id, festival_id, festival_date),
    KEY push_reminders_ready (state, available_at),
    KEY push_reminders_by_lease (lease)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE TABLE IF NOT EXISTS push_deliveries (
    user_id       BIGINT   NOT NULL,
    festival_id   BIGINT   NOT NULL,
    festival_date DATE     NOT NULL,
    token_hash    CHAR(64) NOT NULL,
    sent          TINYINT  NOT NULL,
    at            BIGINT   NOT NULL, -- began, or sent (ms)
    PRIMARY KEY (user_id, festival_id, festival_date, token_hash)
) ENGINE = InnoDB;

CREATE TABLE IF NOT EXISTS push_inbox (
    user_id       BIGINT NOT NULL,
    festival_id   BIGINT NOT NULL,
    festival_date DATE   NOT NULL,
    title         TEXT   NOT NULL,
    body          TEXT   NOT NULL,
    delivered_at  BIGINT NOT NULL,
    PRIMARY KEY (user_id, festival_id, festival_date),
    KEY push_inbox_recent (user_id, delivered_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
