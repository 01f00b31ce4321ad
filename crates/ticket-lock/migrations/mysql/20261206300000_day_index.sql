-- A festival day's reservations, in id order: the gate's ticket list and the organiser's report.
CREATE INDEX reservations_of_day ON reservations (festival_id, festival_date, id);
