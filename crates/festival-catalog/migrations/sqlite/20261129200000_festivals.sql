-- Festivals, and an n-gram index for substring search: every distinct character and pair of
-- neighbouring characters of the folded (lowercased) name and description.
CREATE TABLE IF NOT EXISTS festivals (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    name               TEXT    NOT NULL,
    description        TEXT    NOT NULL,
    location           TEXT,
    name_folded        TEXT    NOT NULL,
    description_folded TEXT    NOT NULL,
    start_date         TEXT    NOT NULL,
    end_date           TEXT    NOT NULL,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS festival_grams (
    gram        TEXT    NOT NULL,
    festival_id INTEGER NOT NULL,
    PRIMARY KEY (gram, festival_id)
) WITHOUT ROWID;

-- How many festivals have each gram: search walks the rarest gram of a keyword, and a gram no
-- festival has answers "nothing" without reading a row.
CREATE TABLE IF NOT EXISTS festival_gram_counts (
    gram      TEXT    NOT NULL PRIMARY KEY,
    festivals INTEGER NOT NULL
) WITHOUT ROWID;
