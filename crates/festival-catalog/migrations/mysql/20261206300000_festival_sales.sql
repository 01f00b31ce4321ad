-- A festival's sale: when bookings open and close (epoch ms; NULL: from creation, until the
-- festival's days are over), and whether they go through its waiting room.
ALTER TABLE festivals
    ADD COLUMN sale_opens_at BIGINT NULL,
    ADD COLUMN sale_closes_at BIGINT NULL,
    ADD COLUMN sale_queued BOOLEAN NOT NULL DEFAULT TRUE;
