-- Secrets every node of a deployment must share (e.g. the key of admission tokens), made once by
-- whichever node starts first.
CREATE TABLE IF NOT EXISTS server_secrets (
    name TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);
