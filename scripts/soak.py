#!/usr/bin/env python3
"""Soak benchmark: does `casebridge serve` stay fast and small while history piles up?

Starts the release binary's Creatio emulator and the service as separate processes on
loopback, creates an org with a connection, then offers a steady stream of
`message.created` events (default 1,000/s spread over 1,000 open conversations) for
--minutes. After --messages-per-conversation messages a conversation gets a
`conversation.resolved` and a fresh one takes its slot, so conversations, messages, jobs
and timeline lines accumulate the way a real support desk's do. Once a minute it prints:
messages offered / accepted / refused (non-202) / failed (no answer) and how far the
senders fell behind their schedule; ingest: POST /v1/events answer time p50/p99 (in50, in99); CPU as % of one core of the service (and its CPU-ms per
message), the emulator, this generator, all other processes (the machine is shared) and the
hypervisor's steal (steal%: this VM waiting for its host's CPUs, a neighbour's load);
event -> activity latency p50/p99/max of the message jobs finished that minute
(jobs.updated_at - created_at, read from the database); the service's VmRSS and VmHWM;
the database's size (with its WAL) and the WAL's; the emulator's RSS; pending + running jobs (does the service keep up?).
At the end: the table again, verdicts (latency and CPU drift, RSS against the 64 MB target
and whether it plateaued) and the rows as CSV beside the service's log.

    cargo build --release
    python3 scripts/soak.py                        # 20 minutes, SQLite in a temp dir
    python3 scripts/soak.py --minutes 30 --purge   # 5-minute retention, purged every 10 s
    python3 scripts/soak.py --database-url postgres://postgres@127.0.0.1/cb_soak  # empty db; needs psql

Python 3 standard library only; Linux (reads /proc).
"""
import argparse, csv, http.client, json, math, os, random, shutil, socket, sqlite3
import subprocess, sys, tempfile, threading, time, urllib.error, urllib.request

OPERATOR_TOKEN = "operator-token-123456"
CLIENT_ID, CLIENT_SECRET = "cb", "s3cret-s3cret"
TICK = 0.1  # seconds between two POSTs of one sender
CUSTOMER_POOL = 20_000  # distinct customers: later conversations bring returning ones
RETAINED = ("MESSAGES", "EVENTS", "TIMELINE", "DELIVERIES", "JOBS")
# One per-minute column: key (CSV), title, width, format.
COLUMNS = [("minute", "min", 3, "d"), ("offered", "offered", 7, "d"), ("accepted", "accepted", 8, "d"),
           ("refused", "refused", 7, "d"), ("failed", "failed", 6, "d"), ("behind_ms", "behind_ms", 9, ".0f"),
           ("ingest_p50_ms", "in50", 4, ".0f"), ("ingest_p99_ms", "in99", 4, ".0f"),
           ("svc_cpu_pct", "svc%", 5, ".0f"), ("cpu_ms_per_msg", "ms/msg", 6, ".3f"), ("emu_cpu_pct", "emu%", 5, ".0f"),
           ("gen_cpu_pct", "gen%", 5, ".0f"), ("other_cpu_pct", "other%", 6, ".0f"), ("steal_pct", "steal%", 6, ".0f"),
           ("jobs_done", "done", 6, "d"), ("p50_ms", "p50", 5, ".0f"), ("p99_ms", "p99", 5, ".0f"),
           ("max_ms", "max", 6, ".0f"), ("rss_mb", "rss", 5, ".1f"), ("hwm_mb", "hwm", 5, ".1f"),
           ("db_mb", "db_mb", 7, ".1f"), ("wal_mb", "wal_mb", 6, ".1f"), ("emu_mb", "emu_mb", 6, ".0f"),
           ("backlog", "backlog", 7, "d")]
HEADER = " ".join(title.rjust(width) for _, title, width, _ in COLUMNS)

CUSTOMER_LINES = [
    "Hi, my order {order} still hasn't arrived and the tracking page hasn't changed since Monday.",
    "I was charged twice for my subscription this month, can you refund one of the payments?",
    "The app logs me out every time I switch to another tab, which is really annoying.",
    "I can't reset my password, the reset e-mail never reaches my inbox (checked spam too).",
    "Can I change the delivery address for {order}? I'm moving next week.",
    "Thanks, that worked.", "No, that didn't help, the same error comes back.",
    "Could someone from your team call me back? It's urgent, we have a launch tomorrow.",
]
AI_LINES = [
    "I'm sorry to hear that. Let me look into order {order} for you.",
    "Thanks for the details! I can see the payment was captured twice; I've flagged it for a refund.",
    "Please try clearing your browser cache and signing in again, then let me know if it persists.",
    "I've checked your account and everything looks correct on our side.",
    "I'll hand this over to a specialist from our support team who can help further.",
    "Is there anything else I can help you with today?",
]
FIRST = ["Ada", "Grace", "Alan", "Linus", "Margaret", "Dennis", "Barbara", "Ken", "Frances", "Edsger"]
LAST = ["Lovelace", "Hopper", "Turing", "Torvalds", "Hamilton", "Ritchie", "Liskov", "Thompson", "Allen"]


def parse_args():
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--minutes", type=int, default=20)
    p.add_argument("--rate", type=float, default=1000, help="message.created events offered per second")
    p.add_argument("--conversations", type=int, default=1000, help="concurrently open conversations")
    p.add_argument("--messages-per-conversation", type=int, default=40)
    p.add_argument("--senders", type=int, default=2, help="sender threads, each with its own connection")
    p.add_argument("--customers", type=int, default=CUSTOMER_POOL,
                   help="distinct customers (the emulator finds a contact by scanning, so its lookups slow as "
                        "contacts pile up; Creatio uses an index)")
    p.add_argument("--binary", default=os.path.join(repo, "target", "release", "casebridge"))
    p.add_argument("--database-url", help="sqlite://FILE or postgres://... (default: SQLite in the temp dir)")
    p.add_argument("--purge", action="store_true", help="short retention (--retention), purged every 10 s")
    p.add_argument("--retention", default="5m", help="with --purge: how long every kind of data is kept")
    p.add_argument("--port-base", type=int, default=18180, help="emulator port; the service gets the next one")
    p.add_argument("--clean", action="store_true", help="delete the temp dir at the end")
    return p.parse_args()


class Database:
    """Read-only queries on the service's database: sqlite3 for SQLite, psql for PostgreSQL."""

    def __init__(self, url):
        self.url = url
        self.sqlite_path = url[len("sqlite://"):].split("?")[0] if url.startswith("sqlite:") else None

    def column(self, sql):
        if self.sqlite_path:
            db = sqlite3.connect(f"file:{self.sqlite_path}?mode=ro", uri=True, timeout=10)
            try:
                return [r[0] for r in db.execute(sql)]
            finally:
                db.close()
        out = subprocess.run(["psql", self.url, "-At", "-c", sql], capture_output=True, text=True, check=True)
        return [int(line) for line in out.stdout.split()]

    def latencies_ms(self, start_ms, end_ms):
        return sorted(self.column("SELECT updated_at - created_at FROM jobs WHERE kind = 'message' AND state = 'done' "
                                  f"AND updated_at >= {int(start_ms)} AND updated_at < {int(end_ms)}"))

    def backlog(self):
        return self.column("SELECT COUNT(*) FROM jobs WHERE state IN ('pending','running')")[0]

    def size_mb(self):
        if self.sqlite_path:
            files = [self.sqlite_path, self.sqlite_path + "-wal"]
            return sum(os.path.getsize(f) for f in files if os.path.exists(f)) / 2**20
        return self.column("SELECT pg_database_size(current_database())")[0] / 2**20

    def wal_mb(self):
        """SQLite's write-ahead log (included in size_mb): one that keeps growing means readers keep
        the checkpoint from resetting it. NaN on PostgreSQL."""
        wal = (self.sqlite_path or "") + "-wal"
        return os.path.getsize(wal) / 2**20 if self.sqlite_path and os.path.exists(wal) else float("nan")


def cpu_seconds(pid):
    """utime + stime of a process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()  # fields[0] is field 3, state
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_readings(svc, emu):
    """CPU seconds so far of the service, the emulator, this load generator, the whole machine
    (from /proc/stat: everything but idle and iowait, so another build on the box shows) and the
    hypervisor's steal (time this VM's CPUs waited for the host: a noisy neighbour)."""
    with open("/proc/stat") as f:
        user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, f.readline().split()[1:9])
    tick = os.sysconf("SC_CLK_TCK")
    machine = (user + nice + system + irq + softirq + steal) / tick
    return cpu_seconds(svc.pid), cpu_seconds(emu.pid), cpu_seconds(os.getpid()), machine, steal / tick


def memory_mb(pid):
    """(VmRSS, VmHWM) in MB."""
    with open(f"/proc/{pid}/status") as f:
        kb = {line.split(":")[0]: int(line.split()[1]) for line in f if line.startswith(("VmRSS", "VmHWM"))}
    return kb["VmRSS"] / 1024, kb["VmHWM"] / 1024


def percentile(sorted_values, q):
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)] if sorted_values else float("nan")


def log_tail(path, lines=30):
    with open(path, errors="replace") as f:
        return "".join(f.readlines()[-lines:])


def api_call(port, method, path, body, key):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json", "Authorization": "Bearer " + key})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        sys.exit(f"{method} {path}: {e.code} {e.read().decode(errors='replace')[:2000]}")


def wait_until_up(proc, log, name, port, health_path=None, limit=30):
    """Poll until the port accepts connections (and GET health_path answers 200); exit if the process dies."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"The {name} exited with {proc.returncode}; the end of {log}:\n{log_tail(log)}")
        try:
            if health_path is None:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{health_path}", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:  # refused or no answer yet (urllib's errors are OSErrors)
            pass
        time.sleep(0.2)
    sys.exit(f"The {name} did not come up on port {port} within {limit} s; see {log}")


def make_texts(lines, rng, count=300):
    """Chat messages of 80-200 characters stitched from support-chat sentences."""
    texts = []
    for _ in range(count):
        text = ""
        while len(text) < 80:
            text += (" " if text else "") + rng.choice(lines).format(order=f"ORD-{rng.randrange(10**6):06d}")
        texts.append(text[:200])
    return texts


class Sender(threading.Thread):
    """Owns one HTTP connection and a share of the conversation slots; POSTs a batch every TICK."""

    def __init__(self, index, port, key, slots, rate, per_conversation, deadline, customers):
        super().__init__(daemon=True)
        self.customers = customers
        self.index, self.port, self.key, self.rate = index, port, key, rate
        self.per_conversation, self.deadline = per_conversation, deadline
        self.rng = random.Random(index)
        self.texts = {"customer": make_texts(CUSTOMER_LINES, self.rng), "ai": make_texts(AI_LINES, self.rng)}
        self.serial = self.cursor = self.event_id = 0
        # The first conversations get staggered lifetimes, so resolutions don't come in waves.
        self.slots = [self.new_conversation(1 + i * per_conversation // slots) for i in range(slots)]
        self.lock, self.counts = threading.Lock(), self.zero_counts()

    @staticmethod
    def zero_counts():
        return {"offered": 0, "accepted": 0, "refused": 0, "failed": 0, "behind_ms": 0.0, "error": "", "post_ms": []}

    def take_counts(self):
        """This minute's counts, starting the next minute's from zero."""
        with self.lock:
            counts, self.counts = self.counts, self.zero_counts()
        return counts

    def new_conversation(self, lifetime):
        self.serial += 1
        c = self.rng.randrange(self.customers)
        first, last = FIRST[c % len(FIRST)], LAST[c // len(FIRST) % len(LAST)]
        contact = {"name": f"{first} {last}", "email": f"{first}.{last}.{c}@example.com".lower(), "phone": f"+1555{c:07d}"}
        return {"id": f"soak-{self.index}-{self.serial}", "sent": 0, "lifetime": lifetime, "contact": contact}

    def next_event_id(self):
        self.event_id += 1
        return f"e-{self.index}-{self.event_id}"

    def next_events(self, messages):
        """`messages` message.created events, round robin over the slots, plus the resolutions they finish."""
        events = []
        for _ in range(messages):
            slot = self.slots[self.cursor]
            role = "customer" if slot["sent"] % 2 == 0 else "ai"
            slot["sent"] += 1
            events.append({"id": self.next_event_id(), "type": "message.created",
                           "conversation": {"id": slot["id"], "channel": "web", "contact": slot["contact"]},
                           "message": {"id": f"m{slot['sent']}", "role": role, "text": self.rng.choice(self.texts[role])}})
            if slot["sent"] >= slot["lifetime"]:
                events.append({"id": self.next_event_id(), "type": "conversation.resolved",
                               "conversation": {"id": slot["id"], "channel": "web"}})
                self.slots[self.cursor] = self.new_conversation(self.per_conversation)
            self.cursor = (self.cursor + 1) % len(self.slots)
        return events

    def run(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        headers = {"Content-Type": "application/json", "Authorization": "Bearer " + self.key}
        start = next_tick = time.monotonic()
        offered_total = 0
        while next_tick < self.deadline:
            behind = time.monotonic() - next_tick
            if behind < 0:
                time.sleep(-behind)
            # Absolute schedule: what is due by the end of this tick less what was sent, at most 500 per
            # POST (with their resolutions that stays within the service's 1,000 events per request).
            messages = min(500, round(self.rate * (next_tick - start + TICK)) - offered_total)
            next_tick += TICK
            offered_total += messages
            outcome, error = "failed", ""
            posted = time.monotonic()
            try:
                conn.request("POST", "/v1/events", json.dumps(self.next_events(messages)), headers)
                resp = conn.getresponse()
                body = resp.read()
                outcome = "accepted" if resp.status == 202 else "refused"
                if resp.status != 202:
                    error = f"{resp.status} {body[:300].decode(errors='replace')}"
            except (OSError, http.client.HTTPException) as e:
                error = f"{type(e).__name__}: {e}"
                conn.close()  # the next request reconnects
            with self.lock:
                self.counts["offered"] += messages
                self.counts[outcome] += messages
                self.counts["behind_ms"] = max(self.counts["behind_ms"], behind * 1000)
                self.counts["error"] = error or self.counts["error"]
                if outcome == "accepted":
                    self.counts["post_ms"].append((time.monotonic() - posted) * 1000)
        conn.close()


def measure_minute(minute, senders, svc, emu, db, cpu_before, bounds_ms):
    """One per-minute row; also returns the CPU readings for the next minute and the senders' last errors."""
    counts = [s.take_counts() for s in senders]
    cpu_now = cpu_readings(svc, emu)
    svc_cpu, emu_cpu, gen_cpu, machine_cpu, steal = (now - before for now, before in zip(cpu_now, cpu_before))
    row = {"minute": minute, **{k: sum(c[k] for c in counts) for k in ("offered", "accepted", "refused", "failed")}}
    latencies = db.latencies_ms(*bounds_ms)
    posts = sorted(ms for c in counts for ms in c["post_ms"])
    seconds = (bounds_ms[1] - bounds_ms[0]) / 1000
    row.update(behind_ms=max(c["behind_ms"] for c in counts),
               svc_cpu_pct=100 * svc_cpu / seconds, cpu_ms_per_msg=1000 * svc_cpu / max(row["accepted"], 1),
               emu_cpu_pct=100 * emu_cpu / seconds, gen_cpu_pct=100 * gen_cpu / seconds,
               other_cpu_pct=100 * max(0.0, machine_cpu - steal - svc_cpu - emu_cpu - gen_cpu) / seconds,
               steal_pct=100 * steal / seconds, wal_mb=db.wal_mb(), emu_mb=memory_mb(emu.pid)[0],
               ingest_p50_ms=percentile(posts, 0.5), ingest_p99_ms=percentile(posts, 0.99),
               jobs_done=len(latencies), p50_ms=percentile(latencies, 0.5), p99_ms=percentile(latencies, 0.99),
               max_ms=latencies[-1] if latencies else float("nan"), db_mb=db.size_mb(), backlog=db.backlog())
    row["rss_mb"], row["hwm_mb"] = memory_mb(svc.pid)
    return row, cpu_now, [c["error"] for c in counts if c["error"]]


def format_row(row):
    return " ".join(format(row[key], fmt).rjust(width) for key, _, width, fmt in COLUMNS)


def ratio(a, b):
    return a / b if b and not math.isnan(a) and not math.isnan(b) else float("nan")


def print_summary(rows, csv_path):
    print("\nSummary\n" + HEADER + "\n" + "\n".join(format_row(r) for r in rows))
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, [key for key, *_ in COLUMNS])
        writer.writeheader()
        writer.writerows(rows)
    print(f"CSV: {csv_path}\n")
    first, last = rows[0], rows[-1]
    p50 = ratio(last["p50_ms"], first["p50_ms"])
    print(f"p50 last/first minute: {last['p50_ms']:.0f}/{first['p50_ms']:.0f} ms = {p50:.2f} "
          f"({'PASS' if p50 <= 1.5 else 'FAIL'}: target <= 1.5)")
    print(f"p99 last/first minute: {last['p99_ms']:.0f}/{first['p99_ms']:.0f} ms = "
          f"{ratio(last['p99_ms'], first['p99_ms']):.2f}")
    print(f"CPU-ms per message first -> last minute: {first['cpu_ms_per_msg']:.3f} -> {last['cpu_ms_per_msg']:.3f} "
          f"(x{ratio(last['cpu_ms_per_msg'], first['cpu_ms_per_msg']):.2f})")
    last5 = max(r["rss_mb"] for r in rows[-5:])
    print(f"RSS max over the last {min(5, len(rows))} minutes: {last5:.1f} MB ({'PASS' if last5 <= 64 else 'FAIL'}: "
          f"target <= 64 MB); VmHWM {last['hwm_mb']:.1f} MB")
    if len(rows) >= 15:
        mid = max(r["rss_mb"] for r in rows[4:10])
        print(f"RSS max minutes 5-10 {mid:.1f} MB, last 5 {last5:.1f} MB: "
              + ("plateaued" if last5 <= mid * 1.05 else "STILL GROWING (> 5 % above)"))
    else:
        print("RSS plateau: not judged, needs at least 15 minutes (minutes 5-10 against the last 5)")


def start_processes(args, workdir, db_url):
    """The emulator and `casebridge serve`, each logging to a file in workdir; returns once both answer."""
    emu_port, svc_port = args.port_base, args.port_base + 1
    env = dict(os.environ, CASEBRIDGE_LISTEN=f"127.0.0.1:{svc_port}", CASEBRIDGE_DATABASE_URL=db_url,
               CASEBRIDGE_ADMIN_TOKEN=OPERATOR_TOKEN, CASEBRIDGE_ALLOW_PRIVATE_TARGETS="127.0.0.0/8",
               CASEBRIDGE_LOG="warn,casebridge::retention=info", CASEBRIDGE_SECRET_KEY_FILE=os.path.join(workdir, "cb.key"),
               CASEBRIDGE_PURGE_INTERVAL="10s" if args.purge else "0", **({f"CASEBRIDGE_RETAIN_{k}": args.retention for k in RETAINED} if args.purge else {}))
    emulator = [args.binary, "emulator", "--listen", f"127.0.0.1:{emu_port}",
                "--client-id", CLIENT_ID, "--client-secret", CLIENT_SECRET]
    procs = {}
    for name, cmd, port, health in (("emulator", emulator, emu_port, None),
                                    ("service", [args.binary, "serve"], svc_port, "/healthz")):
        log = os.path.join(workdir, name + ".log")
        with open(log, "wb") as f:
            procs[name] = (subprocess.Popen(cmd, env=env, stdout=f, stderr=subprocess.STDOUT), log)
        print(f"{name} log: {log}")
        wait_until_up(*procs[name], name, port, health)
    return procs


def report_if_dead(procs, minute):
    """True, after printing its exit code and the end of its log, when a process has died."""
    for name, (proc, log) in procs.items():
        if proc.poll() is not None:
            print(f"\nThe {name} died (exit code {proc.returncode}) in minute {minute}; the end of {log}:\n"
                  + log_tail(log))
            return True
    return False


def stop_processes(procs):
    for proc, _ in procs.values():
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def main():
    args = parse_args()
    workdir = tempfile.mkdtemp(prefix="casebridge-soak-")
    db_url = args.database_url or "sqlite://" + os.path.join(workdir, "cb.db")
    db, svc_port = Database(db_url), args.port_base + 1
    print(f"temp dir: {workdir}")
    procs, rows = {}, []
    try:
        procs.update(start_processes(args, workdir, db_url))
        svc, emu = procs["service"][0], procs["emulator"][0]
        key = api_call(svc_port, "POST", "/v1/orgs", {"name": "soak"}, OPERATOR_TOKEN)["api_key"]["key"]
        api_call(svc_port, "POST", "/v1/creatio/connection", {"instance_url": f"http://127.0.0.1:{args.port_base}",
                 "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}, key)
        print(f"connected; offering {args.rate:g} messages/s over {args.conversations} conversations for "
              f"{args.minutes} min from {args.senders} senders" + (", purge on" if args.purge else ""))

        start_mono, start_wall = time.monotonic(), time.time()
        n, k = args.conversations, args.senders
        shares = [n // k + (i < n % k) for i in range(k)]  # conversations per sender
        senders = [Sender(i, svc_port, key, share, args.rate * share / n, args.messages_per_conversation,
                          start_mono + 60 * args.minutes, args.customers) for i, share in enumerate(shares)]
        cpu_before = cpu_readings(svc, emu)
        for s in senders:
            s.start()
        print(HEADER)
        for minute in range(1, args.minutes + 1):
            while time.monotonic() < start_mono + 60 * minute:
                if report_if_dead(procs, minute):
                    return 1
                time.sleep(min(1.0, max(0.0, start_mono + 60 * minute - time.monotonic())))
            if minute == args.minutes:  # let the last POSTs finish, so they are counted
                for s in senders:
                    s.join(timeout=35)
            bounds_ms = (1000 * (start_wall + 60 * (minute - 1)), 1000 * (start_wall + 60 * minute))
            row, cpu_before, errors = measure_minute(minute, senders, svc, emu, db, cpu_before, bounds_ms)
            rows.append(row)
            print(format_row(row), flush=True)
            for error in errors:
                print(f"    last error: {error}")
        return 0
    finally:
        stop_processes(procs)
        if rows:
            print_summary(rows, os.path.join(workdir, "soak.csv"))
        if args.clean:
            shutil.rmtree(workdir)
        else:
            print(f"left: {workdir}")


if __name__ == "__main__":
    sys.exit(main())
