-- With traces on (CASEBRIDGE_OTLP_ENDPOINT), the span that queued a job or
-- a delivery, as a W3C traceparent: the job's or delivery's span becomes
-- its child although it runs later, and a delivery sends its own on.
-- NULL with traces off. Portable SQL, as 0001.
ALTER TABLE jobs ADD COLUMN traceparent TEXT;
ALTER TABLE deliveries ADD COLUMN traceparent TEXT;
