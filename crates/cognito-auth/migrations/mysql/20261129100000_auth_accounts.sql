-- cognito-auth local provider: accounts, refresh tokens (hashes only), sessions, signing key.
CREATE TABLE IF NOT EXISTS auth_accounts (
    username        VARCHAR(64)  NOT NULL PRIMARY KEY,
    email           VARCHAR(254) NOT NULL,
    name            VARCHAR(100) NOT NULL,
    password_hash   VARCHAR(255) NOT NULL,
    role            VARCHAR(16)  NOT NULL DEFAULT 'USER',
    confirmed       BOOLEAN      NOT NULL DEFAULT FALSE,
    code_hash       CHAR(64),
    code_expires_at BIGINT,
    code_attempts   INT          NOT NULL DEFAULT 0,
    created_at      BIGINT       NOT NULL,
    UNIQUE KEY uk_auth_accounts_email (email)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
CREATE TABLE IF NOT EXISTS auth_sessions (
    family   CHAR(36)    NOT NULL PRIMARY KEY,
    username VARCHAR(64) NOT NULL,
    revoked  BOOLEAN     NOT NULL DEFAULT FALSE,
    KEY idx_auth_sessions_username (username)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
CREATE TABLE IF NOT EXISTS auth_refresh_tokens (
    token_hash CHAR(64)    NOT NULL PRIMARY KEY,
    family     CHAR(36)    NOT NULL,
    username   VARCHAR(64) NOT NULL,
    expires_at BIGINT      NOT NULL,
    used       BOOLEAN     NOT NULL DEFAULT FALSE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
CREATE TABLE IF NOT EXISTS auth_signing_keys (
    id  INT         NOT NULL PRIMARY KEY,
    kid VARCHAR(64) NOT NULL,
    pem TEXT        NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
