-- Tickets at the gate. A ticket (reservation, number) checks in once: the primary key decides
-- between gates and nodes. `staff` grants check-in per festival (festival_id 0: every festival).
CREATE TABLE IF NOT EXISTS checkins (
    reservation_id BIGINT      NOT NULL,
    ticket_no      INT         NOT NULL,
    festival_id    BIGINT      NOT NULL,
    festival_date  DATE        NOT NULL,
    staff_user_id  BIGINT      NOT NULL,
    gate           VARCHAR(64) NOT NULL,
    scanned_at     BIGINT      NOT NULL,
    recorded_at    BIGINT      NOT NULL,
    PRIMARY KEY (reservation_id, ticket_no),
    KEY checkins_of_day (festival_id, festival_date)
) ENGINE = InnoDB;

CREATE TABLE IF NOT EXISTS staff (
    user_id     BIGINT NOT NULL,
    festival_id BIGINT NOT NULL,
    granted_at  BIGINT NOT NULL,
    PRIMARY KEY (user_id, festival_id)
) ENGINE = InnoDB;
