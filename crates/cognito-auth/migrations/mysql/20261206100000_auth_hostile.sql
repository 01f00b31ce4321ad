-- Code guesses per window (not reset by resending), contested sign-ups, and when a session was
-- revoked (nodes poll recent revocations instead of reading a session per request).
ALTER TABLE auth_accounts
    ADD COLUMN window_attempts INT NOT NULL DEFAULT 0,
    ADD COLUMN window_started_at BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN sign_ups INT NOT NULL DEFAULT 1,
    ADD KEY idx_auth_accounts_pending (confirmed, created_at);
ALTER TABLE auth_sessions
    ADD COLUMN revoked_at BIGINT NULL,
    ADD KEY idx_auth_sessions_revoked_at (revoked_at);
