-- regkeep schema, PostgreSQL. Times are Unix seconds; booleans are 0/1 (BIGINT, as in the SQLite
-- schema, so one set of queries serves both backends).
CREATE TABLE meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value BYTEA NOT NULL
);

CREATE TABLE accounts (
    name         TEXT PRIMARY KEY NOT NULL,
    email        TEXT,
    account_type TEXT NOT NULL,
    state        TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    last_updated BIGINT NOT NULL
);

CREATE TABLE users (
    username      TEXT PRIMARY KEY NOT NULL,
    account       TEXT NOT NULL REFERENCES accounts(name) ON DELETE CASCADE,
    user_type     TEXT NOT NULL,
    source        TEXT,
    password_hash TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    last_updated  BIGINT NOT NULL
);
CREATE INDEX users_account ON users(account);

CREATE TABLE registries (
    account         TEXT NOT NULL REFERENCES accounts(name) ON DELETE CASCADE,
    registry        TEXT NOT NULL,
    registry_name   TEXT NOT NULL,
    registry_user   TEXT NOT NULL,
    registry_type   TEXT NOT NULL,
    registry_verify BIGINT NOT NULL,
    -- registry_pass sealed with AES-256-GCM; associated data binds it to (account, registry).
    sealed_pass     BYTEA NOT NULL,
    created_at      BIGINT NOT NULL,
    last_updated    BIGINT NOT NULL,
    last_validated  BIGINT,
    PRIMARY KEY (account, registry)
);
