-- Poison message bodies are kept as bytes: a message that cannot be processed
-- may hold anything (a raw NUL byte, bytes that are not UTF-8), and its dead
-- letter must be recorded whatever they are, and replayed byte for byte. The
-- body used to be a string in ``message`` (decoded with replacement characters),
-- which jsonb refuses when it holds a NUL; it moves to its own column.
ALTER TABLE dead_letters ADD COLUMN body bytea;

UPDATE dead_letters
SET body = convert_to(message->>'body', 'UTF8'),
    message = message - 'body'
WHERE message ? 'body';
