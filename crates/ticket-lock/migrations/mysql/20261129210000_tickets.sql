-- Ticket stock per festival day, each festival's booking rules, and reservations.
CREATE TABLE IF NOT EXISTS ticket_rules (
    festival_id          BIGINT NOT NULL PRIMARY KEY,
    max_per_reservation  INT    NOT NULL,
    max_per_user_per_day INT    NOT NULL
) ENGINE = InnoDB;

CREATE TABLE IF NOT EXISTS ticket_days (
    festival_id   BIGINT NOT NULL,
    festival_date DATE   NOT NULL,
    total         INT    NOT NULL,
    remaining     INT    NOT NULL CHECK (remaining >= 0),
    PRIMARY KEY (festival_id, festival_date)
) ENGINE = InnoDB;

CREATE TABLE IF NOT EXISTS reservations (
    id              BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    user_id         BIGINT       NOT NULL,
    festival_id     BIGINT       NOT NULL,
    festival_date   DATE         NOT NULL,
    quantity        INT          NOT NULL,
    status          VARCHAR(16)  NOT NULL,
    idempotency_key VARBINARY(100),
    created_at      BIGINT       NOT NULL,
    cancelled_at    BIGINT,
    UNIQUE KEY reservations_by_key (user_id, idempotency_key),
    KEY reservations_by_user (user_id, id),
    KEY reservations_by_day (user_id, festival_id, festival_date)
) ENGINE = InnoDB;
