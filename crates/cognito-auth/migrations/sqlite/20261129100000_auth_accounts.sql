-- cognito-auth local provider: accounts, refresh tokens (hashes only), sessions, signing key.
CREATE TABLE IF NOT EXISTS auth_accounts (
    username        TEXT    NOT NULL PRIMARY KEY,
    email           TEXT    NOT NULL UNIQUE,
    name            TEXT    NOT NULL,
    password_hash   TEXT    NOT NULL,
    role            TEXT    NOT NULL DEFAULT 'USER',
    confirmed       INTEGER NOT NULL DEFAULT 0,
    code_hash       TEXT,
    code_expires_at INTEGER,
    code_attempts   INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS auth_sessions (
    family   TEXT    NOT NULL PRIMARY KEY,
    username TEXT    NOT NULL,
    revoked  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS idx_auth_sessions_username ON auth_sessions (username);
CREATE TABLE IF NOT EXISTS auth_refresh_tokens (
    token_hash TEXT    NOT NULL PRIMARY KEY,
    family     TEXT    NOT NULL,
    username   TEXT    NOT NULL,
    expires_at INTEGER NOT NULL,
    used       INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS auth_signing_keys (
    id  INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    kid TEXT    NOT NULL,
    pem TEXT    NOT NULL
);
