-- Ticket stock per festival day, each festival's booking rules, and reservations.
CREATE TABLE IF NOT EXISTS ticket_rules (
    festival_id          INTEGER NOT NULL PRIMARY KEY,
    max_per_reservation  INTEGER NOT NULL,
    max_per_user_per_day INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS ticket_days (
    festival_id   INTEGER NOT NULL,
    festival_date TEXT    NOT NULL,
    total         INTEGER NOT NULL,
    remaining     INTEGER NOT NULL CHECK (remaining >= 0),
    PRIMARY KEY (festival_id, festival_date)
);

CREATE TABLE IF NOT EXISTS reservations (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id         INTEGER NOT NULL,
    festival_id     INTEGER NOT NULL,
    festival_date   TEXT    NOT NULL,
    quantity        INTEGER NOT NULL,
    status          TEXT    NOT NULL,
    idempotency_key TEXT,
    created_at      INTEGER NOT NULL,
    cancelled_at    INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS reservations_by_key ON reservations (user_id, idempotency_key);
CREATE INDEX IF NOT EXISTS reservations_by_user ON reservations (user_id, id);
CREATE INDEX IF NOT EXISTS reservations_by_day ON reservations (user_id, festival_id, festival_date);
