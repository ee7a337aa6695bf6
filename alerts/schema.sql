-- Alert state, in the ops database (SHOPSTREAM_OPS_PG_DATABASE, never the shop's).
--
-- Kappa: everything except `acks`, `deliveries` and `delivery_cursor` is a projection of
-- the Kafka log (cdc.shop.inventory, cdc.shop.products, cdc.shop.warehouses,
-- cdc.shop.debezium_heartbeat) and `shopstream alerts rebuild` recreates it from the
-- earliest offsets. The engine writes a batch's rows and its consumer offsets in one
-- transaction, so a crash at any point neither loses nor repeats a change.
-- Alert ids are "<product_id>-<warehouse_id>-<lsn of the opening change>": the same ids as
-- gold.low_stock_alerts, and stable across rebuilds, so acks survive a rebuild.
-- Idempotent: applied on every start.

CREATE SCHEMA IF NOT EXISTS alerting;

-- Next offset to read per topic partition, committed with what it produced.
CREATE TABLE IF NOT EXISTS alerting.consumer_offsets (
    topic        text    NOT NULL,
    partition    integer NOT NULL,
    next_offset  bigint  NOT NULL,
    PRIMARY KEY (topic, partition)
);

-- Product and warehouse attributes for filters and messages (latest image per key).
CREATE TABLE IF NOT EXISTS alerting.products (
    product_id   bigint PRIMARY KEY,
    sku          text,
    product_name text,
    category     text,
    cdc_lsn      bigint NOT NULL,
    is_deleted   boolean NOT NULL DEFAULT false
);
CREATE TABLE IF NOT EXISTS alerting.warehouses (
    warehouse_id bigint PRIMARY KEY,
    warehouse_code text,
    warehouse_name text,
    region       text,
    cdc_lsn      bigint NOT NULL,
    is_deleted   boolean NOT NULL DEFAULT false
);

-- One row per product x warehouse: the engine's evaluation state (the gold watch's twin).
-- recent_moves: the stock that left per hour in the last 7 days (+ a day of slack), as
-- [[hour since the epoch, units_out], ...] by hour, for point-in-time velocity: at most about
-- 190 pairs whatever the rate (older states' [lsn, moved_at_us, units] triples still read).
CREATE TABLE IF NOT EXISTS alerting.stock (
    product_id     bigint  NOT NULL,
    warehouse_id   bigint  NOT NULL,
    on_hand        integer,
    reorder_point  integer,
    reorder_qty    integer,
    units_out_7d   bigint  NOT NULL DEFAULT 0,
    days_of_cover  numeric(12, 2),
    severity       text CHECK (severity IN ('warning', 'high', 'critical')),
    alert_id       text,
    cdc_lsn        bigint  NOT NULL,
    moved_at       timestamptz NOT NULL,
    is_deleted     boolean NOT NULL DEFAULT false,
    recent_moves   jsonb   NOT NULL DEFAULT '[]',
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (product_id, warehouse_id)
);

-- One row per alert; recomputed from its transitions on every new transition.
CREATE TABLE IF NOT EXISTS alerting.alerts (
    alert_id            text PRIMARY KEY,
    product_id          bigint  NOT NULL,
    warehouse_id        bigint  NOT NULL,
    status              text    NOT NULL CHECK (status IN ('open', 'resolved')),
    severity            text    NOT NULL CHECK (severity IN ('warning', 'high', 'critical')),
    peak_severity       text    NOT NULL CHECK (peak_severity IN ('warning', 'high', 'critical')),
    opened_lsn          bigint  NOT NULL,
    last_lsn            bigint  NOT NULL,
    transition_count    integer NOT NULL,
    on_hand             integer,
    reorder_point       integer,
    units_out_7d        bigint,
    days_of_cover       numeric(12, 2),
    opened_at           timestamptz NOT NULL,
    last_transition_at  timestamptz NOT NULL,
    resolved_at         timestamptz,
    -- The last transition's seq: a stable, unique sort and cursor key.
    last_seq            bigint  NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_status_seq ON alerting.alerts (status, last_seq);
CREATE INDEX IF NOT EXISTS alerts_product ON alerting.alerts (product_id, warehouse_id);
CREATE INDEX IF NOT EXISTS alerts_opened_at ON alerting.alerts (opened_at);
-- The API lists alerts newest first with a stable cursor: (opened_lsn DESC, alert_id).
CREATE INDEX IF NOT EXISTS alerts_opened_lsn
    ON alerting.alerts (opened_lsn DESC, alert_id COLLATE "C");

-- One row per transition (opened / escalated / deescalated / resolved). `seq` is the SSE
-- event id and the delivery cursor: it only grows, in commit order.
CREATE TABLE IF NOT EXISTS alerting.transitions (
    seq                bigserial PRIMARY KEY,
    alert_id           text    NOT NULL,
    product_id         bigint  NOT NULL,
    warehouse_id       bigint  NOT NULL,
    transition         text    NOT NULL
        CHECK (transition IN ('opened', 'escalated', 'deescalated', 'resolved')),
    severity           text CHECK (severity IN ('warning', 'high', 'critical')),
    previous_severity  text CHECK (previous_severity IN ('warning', 'high', 'critical')),
    cdc_lsn            bigint  NOT NULL,
    on_hand            integer,
    reorder_point      integer,
    units_out_7d       bigint  NOT NULL,
    days_of_cover      numeric(12, 2),
    transitioned_at    timestamptz NOT NULL,  -- when stock changed (the row's updated_at)
    committed_at       timestamptz,           -- PostgreSQL commit (Debezium source.ts_ms)
    recorded_at        timestamptz NOT NULL DEFAULT clock_timestamp(),  -- engine wrote it
    UNIQUE (alert_id, cdc_lsn)
);
CREATE INDEX IF NOT EXISTS transitions_alert ON alerting.transitions (alert_id, seq);

-- Acknowledgements: operator state, not a projection. Keyed by the stable alert id.
CREATE TABLE IF NOT EXISTS alerting.acks (
    alert_id         text PRIMARY KEY,
    acknowledged_by  text NOT NULL,
    note             text,
    acknowledged_at  timestamptz NOT NULL DEFAULT now()
);

-- Engine liveness: one row, updated with every batch and every heartbeat applied.
CREATE TABLE IF NOT EXISTS alerting.engine_status (
    id                   integer PRIMARY KEY CHECK (id = 1),
    last_heartbeat_at    timestamptz,   -- beat_at of the newest Debezium heartbeat applied
    last_change_at       timestamptz,   -- commit time of the newest inventory change applied
    last_batch_at        timestamptz NOT NULL,
    records_applied      bigint NOT NULL DEFAULT 0
);

-- Delivery: one row per (transition or pipeline event) x channel attempt outcome.
CREATE TABLE IF NOT EXISTS alerting.deliveries (
    delivery_id     bigserial PRIMARY KEY,
    -- transition seq, or NULL for pipeline-health notifications
    transition_seq  bigint,
    alert_id        text,
    kind            text NOT NULL,      -- opened / escalated / resolved / pipeline_down / pipeline_recovered / ...
    channel         text NOT NULL CHECK (channel IN ('slack', 'email', 'pagerduty')),
    -- one notification per (dedupe_key, channel): a replay or a rebuild sends nothing twice
    dedupe_key      text NOT NULL,
    status          text NOT NULL
        CHECK (status IN ('sent', 'failed', 'dry_run', 'suppressed_cooldown', 'pending')),
    attempts        integer NOT NULL DEFAULT 0,
    last_error      text,
    response_code   integer,
    payload         jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    UNIQUE (dedupe_key, channel)
);
CREATE INDEX IF NOT EXISTS deliveries_created ON alerting.deliveries (created_at);
CREATE INDEX IF NOT EXISTS deliveries_alert ON alerting.deliveries (alert_id);
-- The deliverer looks for unfinished deliveries on every pass; keep that off a full scan.
CREATE INDEX IF NOT EXISTS deliveries_pending ON alerting.deliveries (delivery_id)
    WHERE status = 'pending';
-- Pipeline-health incidents are found by dedupe key among the few rows without a transition.
CREATE INDEX IF NOT EXISTS deliveries_pipeline ON alerting.deliveries (dedupe_key)
    WHERE transition_seq IS NULL;

-- The deliverer's position in alerting.transitions.
CREATE TABLE IF NOT EXISTS alerting.delivery_cursor (
    id        integer PRIMARY KEY CHECK (id = 1),
    last_seq  bigint NOT NULL
);

-- Records the engine could not use (not JSON, no key, unknown op, negative stock, ...), kept
-- with their bytes so nothing vanishes; the engine moves past them. A projection like the
-- rest: a rebuild finds them again.
CREATE TABLE IF NOT EXISTS alerting.rejected_records (
    topic         text    NOT NULL,
    partition     integer NOT NULL,
    kafka_offset  bigint  NOT NULL,   -- not "offset": a reserved word in SQL
    reason        text    NOT NULL,   -- "<rule>: <detail>", rules named as in silver.quarantine
    raw_key       bytea,
    raw_value     bytea,
    rejected_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (topic, partition, kafka_offset)
);

-- Monitoring alerts: what Alertmanager's webhook posted (POST /alertmanager on the delivery
-- worker), one row per alert x start x status. The worker routes each row once into
-- alerting.deliveries (routed_at), like a low-stock transition: same channels, same dedupe,
-- same cooldown. Alertmanager repeats a firing alert every repeat_interval; the unique key
-- makes the repeat a no-op.
CREATE TABLE IF NOT EXISTS alerting.monitoring_alerts (
    id           bigserial PRIMARY KEY,
    fingerprint  text        NOT NULL,  -- Alertmanager's hash of the alert's labels
    status       text        NOT NULL CHECK (status IN ('firing', 'resolved')),
    alertname    text        NOT NULL,
    severity     text        NOT NULL,  -- the rule's severity label (warning | critical)
    starts_at    timestamptz NOT NULL,
    ends_at      timestamptz,
    labels       jsonb       NOT NULL,
    annotations  jsonb       NOT NULL,
    generator_url text,
    received_at  timestamptz NOT NULL DEFAULT now(),
    routed_at    timestamptz,
    UNIQUE (fingerprint, starts_at, status)
);
CREATE INDEX IF NOT EXISTS monitoring_alerts_unrouted ON alerting.monitoring_alerts (id)
    WHERE routed_at IS NULL;
