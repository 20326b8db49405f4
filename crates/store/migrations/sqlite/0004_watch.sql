-- Tag watching: subscriptions (Anchore's shape: type + key, e.g. tag_update + host/repo:tag) with
-- the poller's state, and the event log the poller (and only the poller, so far) writes.
CREATE TABLE subscriptions (
    account           TEXT NOT NULL REFERENCES accounts(name) ON DELETE CASCADE,
    subscription_id   TEXT NOT NULL,
    subscription_type TEXT NOT NULL,
    subscription_key  TEXT NOT NULL,
    subscription_value TEXT,
    active            BIGINT NOT NULL,
    -- What the watched tag pointed at when last polled, when, and why the last poll failed.
    last_digest       TEXT,
    last_polled_at    BIGINT,
    last_error        TEXT,
    failures          BIGINT NOT NULL,
    -- When the poller takes it next; replicas claim a poll by moving this forward.
    next_poll_at      BIGINT NOT NULL,
    created_at        BIGINT NOT NULL,
    last_updated      BIGINT NOT NULL,
    PRIMARY KEY (account, subscription_id),
    UNIQUE (account, subscription_type, subscription_key)
);
CREATE INDEX subscriptions_due ON subscriptions (active, next_poll_at);

CREATE TABLE events (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    account        TEXT NOT NULL REFERENCES accounts(name) ON DELETE CASCADE,
    generated_uuid TEXT NOT NULL UNIQUE,
    created_at     BIGINT NOT NULL,
    event_type     TEXT NOT NULL,
    level          TEXT NOT NULL,
    message        TEXT NOT NULL,
    resource_type  TEXT NOT NULL,
    resource_id    TEXT NOT NULL,
    details        TEXT NOT NULL
);
CREATE INDEX events_by_account ON events (account, seq);
