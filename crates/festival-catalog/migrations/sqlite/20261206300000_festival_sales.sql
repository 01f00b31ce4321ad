-- A festival's sale: when bookings open and close (epoch ms; NULL: from creation, until the
-- festival's days are over), and whether they go through its waiting room.
ALTER TABLE festivals ADD COLUMN sale_opens_at INTEGER;
ALTER TABLE festivals ADD COLUMN sale_closes_at INTEGER;
ALTER TABLE festivals ADD COLUMN sale_queued INTEGER NOT NULL DEFAULT 1;
