-- Code guesses per window (not reset by resending), contested sign-ups, and when a session was
-- revoked (nodes poll recent revocations instead of reading a session per request).
ALTER TABLE auth_accounts ADD COLUMN window_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE auth_accounts ADD COLUMN window_started_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE auth_accounts ADD COLUMN sign_ups INTEGER NOT NULL DEFAULT 1;
CREATE INDEX IF NOT EXISTS idx_auth_accounts_pending ON auth_accounts (confirmed, created_at);
ALTER TABLE auth_sessions ADD COLUMN revoked_at INTEGER;
CREATE INDEX IF NOT EXISTS idx_auth_sessions_revoked_at ON auth_sessions (revoked_at);
