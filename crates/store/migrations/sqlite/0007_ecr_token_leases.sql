-- Replicas renewing one ECR token: the one that holds the lease mints, the others load what it
-- stored. A lease ends by itself at `until` (a replica killed mid-mint holds it no longer).
CREATE TABLE ecr_token_leases (
    token_key TEXT PRIMARY KEY,
    holder    TEXT NOT NULL,
    until     BIGINT NOT NULL
);
