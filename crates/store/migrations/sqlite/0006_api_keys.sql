-- API keys: credentials for machines. Only a keyed hash of the secret is kept; a revoked key stays
-- listed (with when it was revoked) until its account is deleted.
CREATE TABLE api_keys (
    key_id       TEXT PRIMARY KEY,
    account      TEXT NOT NULL REFERENCES accounts(name) ON DELETE CASCADE,
    created_by   TEXT NOT NULL,
    description  TEXT NOT NULL,
    scopes       TEXT NOT NULL,
    key_hash     TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT,
    last_used_at BIGINT,
    revoked_at   BIGINT
);
CREATE INDEX api_keys_account ON api_keys (account);
