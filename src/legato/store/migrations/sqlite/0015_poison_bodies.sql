-- Poison message bodies are kept as bytes (see the Postgres migration): the
-- body moves out of the ``message`` JSON into a BLOB column.
ALTER TABLE dead_letters ADD COLUMN body BLOB;

UPDATE dead_letters
SET body = CAST(json_extract(message, '$.body') AS BLOB),
    message = json_remove(message, '$.body')
WHERE json_type(message, '$.body') = 'text';
