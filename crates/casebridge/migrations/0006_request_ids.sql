-- Request ids follow the work a request caused: the jobs it queued, and
-- the deliveries those jobs (or the request itself) queued, which send it
-- on as x-request-id. NULL for rows queued before this version and for work
-- no request caused. Portable SQL, as 0001.
ALTER TABLE jobs ADD COLUMN request_id TEXT;
ALTER TABLE deliveries ADD COLUMN request_id TEXT;
