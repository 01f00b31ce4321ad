-- What a user holds for a day is read inside every booking's transaction: an index that also
-- carries status and quantity answers that read without visiting the table. It replaces the
-- narrower (user_id, festival_id, festival_date) index, its prefix.
ALTER TABLE reservations
    DROP INDEX reservations_by_day,
    ADD INDEX reservations_held (user_id, festival_id, festival_date, status, quantity);
