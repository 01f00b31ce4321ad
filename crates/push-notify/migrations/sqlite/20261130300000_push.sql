-- Devices, the reminder plan, the delivery ledger and the notification list (push-notify).
CREATE TABLE IF NOT EXISTS push_devices (
    token_hash  TEXT    NOT NULL PRIMARY KEY, -- SHA-256 of the token (tokens run to 4 KiB)
    token       TEXT    NOT NULL,
    user_id     INTEGER NOT NULL,
    device_type TEXT    NOT NULL,
    active      INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS push_devices_by_user ON push_devices (user_id, active);

CREATE TABLE IF NOT EXISTS push_reminders (
    user_id       INTEGER NOT NULL,
    festival_id   INTEGER NOT NULL,
    festival_date TEXT    NOT NULL,
    due_at        INTEGER NOT NULL,
    title         TEXT    NOT NULL,
    body          TEXT    NOT NULL,
    state         TEXT    NOT NULL, -- pending | delivered | dropped | failed
    available_at  INTEGER NOT NULL, -- due, retry or lease end (ms)
    attempts      INTEGER NOT NULL,
    lease         TEXT,
    PRIMARY KEY (user_id, festival_id, festival_date)
);
CREATE INDEX IF NOT EXISTS push_reminders_ready ON push_reminders (state, available_at);

CREATE TABLE IF NOT EXISTS push_deliveries (
    user_id       INTEGER NOT NULL,
    festival_id   INTEGER NOT NULL,
    festival_date TEXT    NOT NULL,
    token_hash    TEXT    NOT NULL,
    sent          INTEGER NOT NULL,
    at            INTEGER NOT NULL, -- began, or sent (ms)
    PRIMARY KEY (user_id, festival_id, festival_date, token_hash)
);

CREATE TABLE IF NOT EXISTS push_inbox (
    user_id       INTEGER NOT NULL,
    festival_id   INTEGER NOT NULL,
    festival_date TEXT    NOT NULL,
    title         TEXT    NOT NULL,
    body          TEXT    NOT NULL,
    delivered_at  INTEGER NOT NULL,
    PRIMARY KEY (user_id, festival_id, festival_date)
);
CREATE INDEX IF NOT EXISTS push_inbox_recent ON push_inbox (user_id, delivered_at);
