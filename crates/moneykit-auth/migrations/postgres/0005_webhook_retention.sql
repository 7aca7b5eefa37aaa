-- Bounds on the webhook outbox: the test trigger counts an app's pending events against
-- --webhook-max-pending-per-app, and delivered and failed events are deleted once they
-- finished longer than --webhook-retention ago.
CREATE INDEX webhook_events_app_status ON webhook_events (app_id, status);
CREATE INDEX webhook_events_finished ON webhook_events (finished_ms);
