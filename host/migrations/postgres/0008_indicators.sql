-- Indicators (IPs, CIDRs, domains, URLs, hashes, e-mail addresses) with a verdict and where it
-- came from, and the cache of enrichment results playbooks share. Times are Unix ms.

CREATE TABLE indicators (
    -- ip, cidr, domain, url, hash, email
    kind        TEXT NOT NULL,
    -- The canonical form (see store/indicators.rs): '192.0.2.1', '10.0.0.0/8', 'evil.example'.
    value       TEXT NOT NULL,
    -- unknown, benign, suspicious, malicious
    verdict     TEXT NOT NULL,
    -- 0 to 100, if a source gave one.
    score       BIGINT,
    -- JSON array of the latest verdicts, oldest first: [{source, verdict, score, at}].
    sources     TEXT NOT NULL,
    -- Sightings in alerts (0 for an indicator only ever given a verdict).
    first_seen  BIGINT NOT NULL,
    last_seen   BIGINT NOT NULL,
    sightings   BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (kind, value)
);
CREATE INDEX indicators_by_verdict ON indicators (verdict, last_seen);
CREATE INDEX indicators_by_last_seen ON indicators (last_seen);

-- Outputs of plugin calls made with invoke_cached, by plugin, action and input.
CREATE TABLE enrichment_cache (
    -- plugin/action/SHA-256 of the canonical JSON of the input.
    key         TEXT PRIMARY KEY,
    plugin      TEXT NOT NULL,
    action      TEXT NOT NULL,
    -- The plugin's output, JSON.
    output      TEXT NOT NULL,
    stored_at   BIGINT NOT NULL,
    -- A miss from this time on; removed a few at a time by later writes.
    expires_at  BIGINT NOT NULL
);
CREATE INDEX enrichment_cache_by_expiry ON enrichment_cache (expires_at);
