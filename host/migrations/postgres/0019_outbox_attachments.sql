-- Files attached to a message (`send_email`'s `attachments` in a playbook): a JSON array of
-- { name, content_type, text }, checked before it is queued (at most 10, 5 MiB together);
-- NULL when there are none, as in every row written before attachments were kept.
ALTER TABLE outbox ADD COLUMN attachments TEXT;
