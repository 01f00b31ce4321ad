-- What a user holds for a day is read inside every booking's transaction: an index that also
-- carries status and quantity answers that read without visiting the table. It replaces the
-- narrower (user_id, festival_id, festival_date) index, its prefix.
DROP INDEX IF EXISTS reservations_by_day;
CREATE INDEX IF NOT EXISTS reservations_held
    ON reservations (user_id, festival_id, festival_date, status, quantity);
