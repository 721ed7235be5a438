#!/usr/bin/env python3
"""Makes the upgrade fixture: a SQLite database written by a released
casebridge, with real data in every table, for the upgrade test
(crates/casebridge/tests/api/upgrade.rs) to migrate with every later
release's migrations.

Run it with the binary of the version the fixture stands for (a checkout
of that commit, `cargo build --release`), then commit the two files it
writes:

    python3 scripts/make_upgrade_fixture.py crates/casebridge/tests/data/upgrade/v4

- `<out>.db`: the database, its WAL checkpointed into the file;
- `<out>.json`: what the test needs to read it: the secret key the
  secrets were sealed with, the org's API key (stored hashed), and what the
  database holds (conversations synced, jobs still pending).

What it holds: an org with a Creatio connection (sealed client secret), a
webhook token, a delivery endpoint that never answers (deliveries pending),
conversations synced to cases and activities (one handed off, one
resolved), and conversations whose jobs are still pending because Creatio
went away before they ran.
"""
import base64
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
BIN = os.path.join(REPO, "target", "release", "casebridge")
EMULATOR_PORT, SERVICE_PORT = 18288, 18280
OPERATOR = "operator-token-fixture"
CLIENT_ID, CLIENT_SECRET = "cb-fixture", "fixture-s3cret"
# A fixed key, so the test can open what the fixture sealed. Test data only.
SECRET_KEY = base64.b64encode(bytes(range(32))).decode()


def call(method, path, body=None, key=None):
    req = urllib.request.Request(
        f"http://127.0.0.1:{SERVICE_PORT}{path}", method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json"})
    if key:
        req.add_header("Authorization", "Bearer " + key)
    try:
        with urllib.request.urlopen(req) as r:
            return json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        raise SystemExit(f"{method} {path} answered {e.code}: {e.read().decode()}")


def wait_until(what, check, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if check():
                return
        except (urllib.error.URLError, ConnectionError, SystemExit):
            pass
        time.sleep(0.2)
    raise SystemExit(f"timed out waiting for {what}")


def event(eid, conv, kind="message.created", **extra):
    e = {"id": eid, "type": kind,
         "conversation": {"id": conv, "channel": "email" if conv.endswith("mail") else "web",
                          "contact": {"name": f"Fixture {conv}", "email": f"{conv}@fixture.example.com",
                                      "phone": "+1 617 555 0100"}}}
    e.update(extra)
    return e


def message(eid, conv, mid, role, text):
    return event(eid, conv, message={"id": mid, "role": role, "text": text})


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    out = sys.argv[1]
    work = tempfile.mkdtemp(prefix="casebridge-fixture-")
    db = os.path.join(work, "casebridge.db")
    emulator = subprocess.Popen(
        [BIN, "emulator", "--listen", f"127.0.0.1:{EMULATOR_PORT}",
         "--client-id", CLIENT_ID, "--client-secret", CLIENT_SECRET],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = dict(os.environ, CASEBRIDGE_LISTEN=f"127.0.0.1:{SERVICE_PORT}",
               CASEBRIDGE_DATABASE_URL="sqlite://" + db, CASEBRIDGE_ADMIN_TOKEN=OPERATOR,
               CASEBRIDGE_SECRET_KEY=SECRET_KEY, CASEBRIDGE_ALLOW_PRIVATE_TARGETS="127.0.0.0/8",
               CASEBRIDGE_LOG="warn")
    service = subprocess.Popen([BIN, "serve"], env=env, stdout=subprocess.DEVNULL,
                               stderr=open(os.path.join(work, "service.log"), "w"))
    try:
        wait_until("the service", lambda: call("GET", "/healthz") is not None)
        org = call("POST", "/v1/orgs", {"name": "Fixture Org"}, OPERATOR)
        key = org["api_key"]["key"]
        call("POST", "/v1/creatio/connection",
             {"instance_url": f"http://127.0.0.1:{EMULATOR_PORT}", "client_id": CLIENT_ID,
              "client_secret": CLIENT_SECRET}, key)
        # Port 9 (discard) on loopback: nothing listens, deliveries stay pending.
        call("PUT", "/v1/delivery", {"url": "http://127.0.0.1:9/casebridge"}, key)
        synced = ["synced-1", "synced-2", "synced-mail"]
        events = []
        for conv in synced:
            events.append(message(f"{conv}-e1", conv, "m1", "customer", f"Hello from {conv}, my order is late"))
            events.append(message(f"{conv}-e2", conv, "m2", "ai", "Sorry to hear that, let me look."))
        events.append(event("synced-1-e3", "synced-1", "conversation.handoff",
                            handoff={"summary": "Order late, customer wants a refund", "reason": "refund"}))
        events.append(event("synced-2-e3", "synced-2", "conversation.resolved"))
        call("POST", "/v1/events", events, key)

        def all_synced():
            for conv in synced:
                c = call("GET", f"/v1/conversations/{conv}", None, key)
                if not c["case"]["created"] or c["jobs"].get("pending") or c["jobs"].get("running"):
                    return False
            return True
        wait_until("the first conversations to sync", all_synced)
        # Creatio goes away: what comes next stays queued.
        emulator.terminate()
        emulator.wait()
        pending = ["pending-1", "pending-2"]
        call("POST", "/v1/events",
             [message(f"{c}-e1", c, "m1", "customer", f"Hello from {c}, is anyone there?") for c in pending], key)
        wait_until("the pending jobs to be tried", lambda: any(
            j["attempts"] > 0 for j in call("GET", "/v1/conversations/pending-1", None, key)["open_jobs"]))
        conversations = {c: call("GET", f"/v1/conversations/{c}", None, key) for c in synced + pending}
    finally:
        service.terminate()
        service.wait()
        if emulator.poll() is None:
            emulator.terminate()
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        version = conn.execute("SELECT MAX(version) FROM _sqlx_migrations").fetchone()[0]
        counts = {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                  for t in ("conversations", "events", "messages", "jobs", "timeline",
                            "written_records", "deliveries", "delivery_attempts")}
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    shutil.copyfile(db, out + ".db")
    meta = {
        "schema_version": version,
        "secret_key": SECRET_KEY,
        "org_id": org["org"]["id"],
        "api_key": key,
        "operator_token": OPERATOR,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "rows": counts,
        "conversations": {c: {"case_id": v["case"]["id"], "case_created": v["case"]["created"],
                              "case_number": v["case"]["number"], "contact_id": v["contact_id"],
                              "state": v["state"], "messages": v["messages"],
                              "open_jobs": len(v["open_jobs"])}
                          for c, v in conversations.items()},
    }
    with open(out + ".json", "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    print(f"wrote {out}.db (schema version {version}) and {out}.json; rows: {counts}")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
