-- ECR authorization tokens, one row per (AWS identity, partition, region, registry account):
-- the token sealed (AES-256-GCM, associated data = the key), its times, and the last renewal's
-- outcome, so a restart or another replica reuses a valid token and the API can show its state.
CREATE TABLE ecr_tokens (
    token_key       TEXT PRIMARY KEY NOT NULL,
    sealed_token    BYTEA,
    expires_at      BIGINT,
    obtained_at     BIGINT,
    renew_at        BIGINT,
    last_renewed_at BIGINT,
    last_error      TEXT,
    updated_at      BIGINT NOT NULL
);

-- Which token serves an awsecr registry (null for docker_v2).
ALTER TABLE registries ADD COLUMN token_key TEXT;
