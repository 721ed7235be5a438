#!/usr/bin/env python3
"""Peak RSS of `casebridge serve` alone (DESIGN.md §8: <= 64 MB with 10,000 open
conversations): starts the release binary's emulator and service as separate
processes on loopback (SQLite in a temporary directory), opens 10,000
conversations through POST /v1/events, waits until they are synced and prints
the service's VmRSS and VmHWM from /proc. Needs `cargo build --release` first.

    python3 scripts/service_rss.py
"""
import json, os, subprocess, tempfile, time, urllib.request
BIN=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "target", "release", "casebridge")
DIR=tempfile.mkdtemp(prefix="casebridge-rss-")
emu=subprocess.Popen([BIN,"emulator","--listen","127.0.0.1:18088","--client-id","cb","--client-secret","s3cret-s3cret"],stdout=subprocess.DEVNULL,stderr=subprocess.DEVNULL)
env=dict(os.environ, CASEBRIDGE_LISTEN="127.0.0.1:18080", CASEBRIDGE_DATABASE_URL="sqlite://"+os.path.join(DIR, "cb.db"),
         CASEBRIDGE_ADMIN_TOKEN="operator-token-123456", CASEBRIDGE_ALLOW_PRIVATE_TARGETS="127.0.0.0/8", CASEBRIDGE_LOG="warn")
svc=subprocess.Popen([BIN,"serve"],env=env,stdout=subprocess.DEVNULL,stderr=subprocess.DEVNULL)
time.sleep(1.5)
def call(method,path,body=None,key=None):
    req=urllib.request.Request("http://127.0.0.1:18080"+path,method=method,data=json.dumps(body).encode() if body is not None else None,headers={"Content-Type":"application/json"})
    if key: req.add_header("Authorization","Bearer "+key)
    with urllib.request.urlopen(req) as r: return json.loads(r.read() or b"null")
def rss():
    s=open(f"/proc/{svc.pid}/status").read()
    g=lambda k:[l for l in s.splitlines() if l.startswith(k)][0].split()[1]
    return int(g("VmRSS:"))/1024, int(g("VmHWM:"))/1024
try:
    print("idle: RSS %.1f MB, peak %.1f MB"%rss())
    org=call("POST","/v1/orgs",{"name":"rss"},"operator-token-123456"); key=org["api_key"]["key"]
    call("POST","/v1/creatio/connection",{"instance_url":"http://127.0.0.1:18088","client_id":"cb","client_secret":"s3cret-s3cret"},key)
    print("connected: RSS %.1f MB, peak %.1f MB"%rss())
    n=10000
    for start in range(0,n,500):
        evs=[{"id":f"e{c}","type":"message.created","conversation":{"id":f"c{c}","channel":"web","contact":{"name":f"C {c}","email":f"c{c}@x.example.com"}},
              "message":{"id":"m1","role":"customer","text":"hello, my order is late"}} for c in range(start,start+500)]
        call("POST","/v1/events",evs,key)
    t=time.time()
    while True:
        # wait until the last conversation has a case
        last=call("GET",f"/v1/conversations/c{n-1}",None,key)
        if last["case"]["created"] and not last["jobs"].get("pending") and not last["jobs"].get("running"): break
        time.sleep(1)
    time.sleep(3)
    print("10,000 open conversations synced in %.0f s after ingest: RSS %.1f MB, peak %.1f MB"%((time.time()-t,)+rss()))
finally:
    svc.terminate(); emu.terminate()
