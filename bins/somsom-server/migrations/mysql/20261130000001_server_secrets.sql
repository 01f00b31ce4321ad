-- Secrets every node of a deployment must share (e.g. the key of admission tokens), made once by
-- whichever node starts first.
CREATE TABLE IF NOT EXISTS server_secrets (
    name VARCHAR(64) NOT NULL PRIMARY KEY,
    value VARCHAR(255) NOT NULL
) CHARACTER SET ascii;
