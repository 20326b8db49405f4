-- Every tag an image digest was added under, per account (Anchore's image_detail entries): adding
-- `a/app:1.2` and then `a/app:latest` at the same digest keeps both; so does the same digest under
-- another registry. `tag` is '' for an image added by digest alone. The images row keeps what it
-- resolved to; its registry/repository/tag columns are the most recent add.
CREATE TABLE image_tags (
    account       TEXT NOT NULL,
    image_digest  TEXT NOT NULL,
    registry      TEXT NOT NULL,
    repository    TEXT NOT NULL,
    tag           TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    last_updated  BIGINT NOT NULL,
    PRIMARY KEY (account, image_digest, registry, repository, tag),
    FOREIGN KEY (account, image_digest) REFERENCES images (account, image_digest) ON DELETE CASCADE
);
CREATE INDEX image_tags_by_tag ON image_tags (account, registry, repository, tag);
-- imageId (the config digest without `sha256:`) is looked up by GET/DELETE /v1/images/by_id/{id}.
CREATE INDEX images_by_config ON images (account, config_digest);

INSERT INTO image_tags (account, image_digest, registry, repository, tag, created_at, last_updated)
SELECT account, image_digest, registry, repository, COALESCE(tag, ''), created_at, last_updated
FROM images;
