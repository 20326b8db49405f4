-- Image records: what a tag resolved to, when, per account (regkeep does not scan; it records what
-- it resolved). One row per (account, image digest); the latest tag that resolved to it is kept.
CREATE TABLE images (
    account        TEXT NOT NULL REFERENCES accounts(name) ON DELETE CASCADE,
    image_digest   TEXT NOT NULL,
    registry       TEXT NOT NULL,
    repository     TEXT NOT NULL,
    tag            TEXT,
    media_type     TEXT NOT NULL,
    manifest_digest TEXT NOT NULL,
    platform       TEXT NOT NULL,
    config_digest  TEXT NOT NULL,
    image_created  TEXT,
    layer_count    BIGINT NOT NULL,
    total_size     BIGINT NOT NULL,
    resolved_at    BIGINT NOT NULL,
    created_at     BIGINT NOT NULL,
    last_updated   BIGINT NOT NULL,
    PRIMARY KEY (account, image_digest)
);
