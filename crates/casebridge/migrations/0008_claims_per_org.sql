-- Claims per org (issue "Fast against a Creatio that is slow"): each org
-- with room toward its Creatio claims its own due jobs, oldest first, so a
-- backlog in one org is never walked by another's claim. Portable SQL, as
-- 0001.
CREATE INDEX jobs_org_ready ON jobs (org_id, state, run_after, seq);
