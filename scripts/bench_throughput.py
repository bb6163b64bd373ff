"""The driver of scripts/bench-throughput (run that script, not this file).

Generates the sensor records once, then in one run on the same data:
1. DuckDB's bare NDJSON-to-Parquet conversion of the whole file;
2. tarn's POST-to-queryable time: a fresh `tarn serve` (scan stage on), a load generator in a
   separate process POSTing the records as NDJSON documents, until every document is committed
   (its `document committed` log line: its rows are in the lake and the catalog);
3. tarn's landed-to-committed time: the same documents landed by `tarn serve --no-pipeline`,
   which is then stopped; then a `tarn serve` with its pipeline, timed from its launch until every
   document is committed;
4. the ingress under `wrk`: 1 KiB JSON POSTs at each connection count, pipeline running.
Ratios first (DuckDB's time / tarn's time: 1.0 would be DuckDB's speed), then the absolute
figures with the machine.
"""

import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

TARN = os.environ["BENCH_TARN"]
RECORDS = int(os.environ.get("BENCH_RECORDS", "1000000"))
PER_DOC = int(os.environ.get("BENCH_PER_DOC", "1000"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "1"))
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "4"))
WRK_SECS = int(os.environ.get("BENCH_WRK_SECS", "10"))
WRK_CONNS = [int(c) for c in os.environ.get("BENCH_WRK_CONNS", "16 64").split()]
WRK_THREADS = int(os.environ.get("BENCH_WRK_THREADS", "2"))
STAGES = os.environ.get("BENCH_STAGES", "")  # e.g. validate,strip: without the scan
PERF_DIR = os.environ.get("BENCH_PERF", "")  # record `perf record -g` of tarn serve here
KEEP = os.environ.get("BENCH_KEEP", "") == "1"
TIMEOUT = float(os.environ.get("BENCH_TIMEOUT", "600"))

SCHEMA = {
    "title": "readings",
    "type": "object",
    "required": ["device_id", "reading_id", "taken_at"],
    "properties": {
        "device_id": {"type": "string"},
        "reading_id": {"type": "string"},
        "taken_at": {"type": "string", "format": "date-time"},
        "temperature": {"type": "number"},
        "humidity": {"type": "number", "minimum": 0, "maximum": 100},
        "battery": {"type": "integer", "minimum": 0, "maximum": 100},
        "firmware": {"type": "string"},
    },
    "x-tarn": {"accept": ["application/x-ndjson", "application/json"]},
}
DUCKDB_COLUMNS = (
    "{device_id: 'VARCHAR', reading_id: 'VARCHAR', taken_at: 'TIMESTAMPTZ', "
    "temperature: 'DOUBLE', humidity: 'DOUBLE', battery: 'BIGINT', firmware: 'VARCHAR'}"
)


def record(n):
    """Sensor reading `n` (deterministic), as one NDJSON line."""
    r = (n * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    r ^= r >> 29
    day = 1 + (n // 100_000) % 28
    secs = (r >> 8) % 86_400
    return (
        f'{{"device_id":"dev-{r % 1000:04d}","reading_id":"{n:08x}-{r & 0xffff:04x}-4{(r >> 16) & 0xfff:03x}-'
        f'8{(r >> 28) & 0xfff:03x}-{(r >> 40) & 0xffffff:06x}{n & 0xffffff:06x}",'
        f'"taken_at":"2026-11-{day:02d}T{secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}Z",'
        f'"temperature":{((r >> 12) % 4000) / 100 - 10:.2f},"humidity":{((r >> 24) % 1000) / 10:.1f},'
        f'"battery":{(r >> 36) % 101},"firmware":"fw-1.{(r >> 48) % 4}.{(r >> 52) % 10}"}}\n'
    )


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fmt_s(xs):
    """A list of seconds as `median s (min-max, n runs)`."""
    if len(xs) == 1:
        return f"{xs[0]:.2f} s"
    return f"{statistics.median(xs):.2f} s ({min(xs):.2f}-{max(xs):.2f}, {len(xs)} runs)"


def loadavg():
    return " ".join(open("/proc/loadavg").read().split()[:3])


class Serve:
    """A `tarn serve` on a data dir, its JSON log lines in a file."""

    def __init__(self, data, schemas, pipeline=True):
        self.data, self.port = data, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = os.path.join(data, f"serve-{time.time_ns()}.log")
        os.makedirs(data, exist_ok=True)
        env = dict(os.environ)
        if STAGES:
            env["TARN_CONFIG"] = os.path.join(data, "bench.toml")
            with open(env["TARN_CONFIG"], "w") as f:
                f.write(f"[pipeline]\nstages = {json.dumps(STAGES.split(','))}\n")
        args = [TARN, "--data-dir", data, "--schemas", schemas, "--log-json", "serve",
                "--listen", f"127.0.0.1:{self.port}"]
        if not pipeline:
            args.append("--no-pipeline")
        self.log = open(self.log_path, "w")
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=self.log, env=env)
        self.perf = None
        self._offset, self.committed = 0, 0

    def wait_healthy(self, timeout=60):
        import urllib.request
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                sys.exit(f"tarn serve exited: see {self.log_path}\n" + open(self.log_path).read()[-2000:])
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.02)
        sys.exit(f"tarn serve did not become healthy; see {self.log_path}")

    def start_perf(self, name):
        if PERF_DIR:
            os.makedirs(PERF_DIR, exist_ok=True)
            out = os.path.join(PERF_DIR, f"{name}.data")
            self.perf = subprocess.Popen(["perf", "record", "-g", "-o", out, "-p", str(self.proc.pid)],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop_perf(self):
        if self.perf:
            self.perf.send_signal(signal.SIGINT)
            self.perf.wait()
            self.perf = None

    def poll_committed(self):
        """Counts the `document committed` log lines of stored documents written so far."""
        with open(self.log_path, "rb") as f:
            f.seek(self._offset)
            chunk = f.read()
        end = chunk.rfind(b"\n") + 1
        self._offset += end
        for line in chunk[:end].splitlines():
            if b'"document committed"' in line:
                fields = json.loads(line).get("fields", {})
                if fields.get("status") != "stored":
                    sys.exit(f"a benchmark document was not stored: {line.decode()}")
                self.committed += 1
        return self.committed

    def wait_committed(self, docs):
        deadline = time.time() + TIMEOUT
        while self.poll_committed() < docs:
            if self.proc.poll() is not None:
                sys.exit(f"tarn serve exited: see {self.log_path}")
            if time.time() > deadline:
                sys.exit(f"only {self.committed} of {docs} documents committed in {TIMEOUT} s")
            time.sleep(0.01)
        return time.perf_counter()

    def stop(self):
        self.stop_perf()
        self.proc.send_signal(signal.SIGTERM)
        if self.proc.wait(timeout=120) != 0:
            sys.exit(f"tarn serve failed: see {self.log_path}")
        self.log.close()

    def token(self):
        return subprocess.check_output(
            [TARN, "--data-dir", self.data, "token", "--user", "bench", "--groups", "tarn-writers",
             "--ttl", "12h"], text=True).strip()


LOADGEN = r"""
import http.client, sys, threading, time
url_port, token, path, per_doc, clients = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
lines = open(path, "rb").read().splitlines(keepends=True)
docs = [b"".join(lines[i:i + per_doc]) for i in range(0, len(lines), per_doc)]
print("ready", flush=True)
sys.stdin.readline()
lock, next_doc, failed = threading.Lock(), [0], []
def worker():
    conn = http.client.HTTPConnection("127.0.0.1", int(url_port), timeout=120)
    while True:
        with lock:
            i = next_doc[0]; next_doc[0] += 1
        if i >= len(docs):
            return
        while True:
            conn.request("POST", "/table/readings/object", body=docs[i], headers={
                "Authorization": "Bearer " + token, "Content-Type": "application/x-ndjson"})
            r = conn.getresponse(); body = r.read()
            if r.status == 200:
                break
            if r.status != 503:
                failed.append((r.status, body[:300])); return
            time.sleep(0.01)
start = time.perf_counter()
ts = [threading.Thread(target=worker) for _ in range(clients)]
[t.start() for t in ts]; [t.join() for t in ts]
if failed:
    sys.exit(f"POST failed: {failed[0]}")
print(f"landed {len(docs)} {time.perf_counter() - start:.3f}", flush=True)
"""


def post_all(serve, ndjson):
    """Starts the load generator (a separate process), waits until it holds the documents, then
    lets it POST them all; returns (start time, process) once it started sending."""
    gen = subprocess.Popen(
        [sys.executable, "-c", LOADGEN, str(serve.port), serve.token(), ndjson, str(PER_DOC), str(CLIENTS)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    if gen.stdout.readline().strip() != "ready":
        sys.exit("the load generator failed")
    start = time.perf_counter()
    gen.stdin.write("go\n")
    gen.stdin.flush()
    return start, gen


def landed_time(gen):
    out = gen.stdout.readline().split()
    if gen.wait() != 0 or not out or out[0] != "landed":
        sys.exit("the load generator failed")
    return float(out[2])


def query_count(data, schemas):
    out = subprocess.check_output(
        [TARN, "--data-dir", data, "--schemas", schemas, "query", "--format", "json",
         "SELECT count(*) AS n FROM readings"], text=True)
    return json.loads(out)[0]["n"]


def duckdb_run(ndjson, work):
    import duckdb
    out = os.path.join(work, "duckdb.parquet")
    con = duckdb.connect()
    start = time.perf_counter()
    con.execute(
        f"COPY (SELECT * FROM read_ndjson('{ndjson}', columns = {DUCKDB_COLUMNS})) "
        f"TO '{out}' (FORMAT parquet, COMPRESSION zstd)")
    took = time.perf_counter() - start
    n = con.execute(f"SELECT count(*) FROM '{out}'").fetchone()[0]
    if n != RECORDS:
        sys.exit(f"duckdb wrote {n} records, not {RECORDS}")
    con.close()
    os.remove(out)
    return took


def wrk_run(serve, work, conns):
    body = "[" + ",".join(record(i).strip() for i in range(6)) + "]"
    lua = os.path.join(work, "post.lua")
    with open(lua, "w") as f:
        f.write('wrk.method = "POST"\n'
                f'wrk.headers["Authorization"] = "Bearer {serve.token()}"\n'
                'wrk.headers["Content-Type"] = "application/json"\n'
                f"wrk.body = [=[{body}]=]\n")
    out = subprocess.check_output(
        ["wrk", "-t", str(min(WRK_THREADS, conns)), "-c", str(conns), "-d", f"{WRK_SECS}s", "--latency",
         "-s", lua, serve.url + "/table/readings/object"], text=True)
    total = int(re.search(r"(\d+) requests in ([\d.]+)(\w+)", out).group(1))
    secs = float(re.search(r"requests in ([\d.]+)s", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    bad = int(bad.group(1)) if bad else 0
    errors = re.search(r"Socket errors: (.*)", out)

    def pct(p):
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        v, unit = float(m.group(1)), m.group(2)
        return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v

    return {"conns": conns, "ok_per_s": (total - bad) / secs, "p50": pct(50), "p99": pct(99), "non2xx": bad,
            "errors": errors.group(1) if errors else "", "body": len(body)}


def main():
    root = tempfile.mkdtemp(prefix="tarn-bench-")
    work = os.path.join(root, "work")
    schemas = os.path.join(root, "schemas")
    os.makedirs(work)
    os.makedirs(schemas)
    with open(os.path.join(schemas, "readings.json"), "w") as f:
        json.dump(SCHEMA, f)
    ndjson = os.path.join(work, "readings.ndjson")
    with open(ndjson, "w") as f:
        for start in range(0, RECORDS, 10_000):
            f.write("".join(record(n) for n in range(start, min(start + 10_000, RECORDS))))
    docs = -(-RECORDS // PER_DOC)
    size = os.path.getsize(ndjson)
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    load_before = loadavg()

    duck, post_q, landed, l2c, startup = [], [], [], [], []
    for rep in range(REPEAT):
        duck.append(duckdb_run(ndjson, work))
        # POST to queryable: the whole platform
        data = os.path.join(root, f"post-{rep}")
        s = Serve(data, schemas)
        s.wait_healthy()
        s.start_perf(f"post-to-queryable-{rep}")
        start, gen = post_all(s, ndjson)
        landed.append(landed_time(gen))
        post_q.append(s.wait_committed(docs) - start)
        s.stop()
        n = query_count(data, schemas)
        if n != RECORDS:
            sys.exit(f"the lake holds {n} readings, not {RECORDS}")
        # landed to committed: land with the pipeline off, then time the pipeline alone
        data = os.path.join(root, f"landed-{rep}")
        s = Serve(data, schemas, pipeline=False)
        s.wait_healthy()
        _, gen = post_all(s, ndjson)
        landed_time(gen)
        s.stop()
        s = Serve(data, schemas)
        s.start_perf(f"landed-to-committed-{rep}")
        s.wait_healthy()
        startup.append(time.perf_counter() - s.started)
        l2c.append(s.wait_committed(docs) - s.started)
        s.stop()
        if not KEEP:
            shutil.rmtree(os.path.join(root, f"post-{rep}"))
            shutil.rmtree(data)

    wrk_results = []
    if WRK_CONNS and WRK_SECS > 0:
        s = Serve(os.path.join(root, "wrk"), schemas)
        s.wait_healthy()
        s.start_perf("wrk")
        for conns in WRK_CONNS:
            wrk_results.append(wrk_run(s, work, conns))
        s.stop()
    load_after = loadavg()

    d, p, l = statistics.median(duck), statistics.median(post_q), statistics.median(l2c)
    stages = STAGES or "validate,scan,strip (the default)"
    print(f"tarn throughput: {RECORDS:,} sensor records, {docs:,} NDJSON documents of {PER_DOC:,} "
          f"({size / 1e6:.1f} MB), {REPEAT} run(s); stages {stages}")
    print("\nratios (DuckDB's time / tarn's time; medians):")
    print(f"  POST-to-queryable      {d / p:5.2f}x DuckDB   (target >= 0.25x)")
    print(f"  landed-to-committed    {d / l:5.2f}x DuckDB   (target >= 0.5x)")
    print(f"\nmachine: {os.cpu_count()} cores, {cpu}; load average {load_before} before, {load_after} after")
    print(f"  DuckDB NDJSON to Parquet (zstd)   {fmt_s(duck):<34} {RECORDS / d:>11,.0f} records/s")
    print(f"  tarn POST to queryable            {fmt_s(post_q):<34} {RECORDS / p:>11,.0f} records/s")
    print(f"    of which all POSTs answered     {fmt_s(landed):<34} ({CLIENTS} clients)")
    print(f"  tarn landed to committed          {fmt_s(l2c):<34} {RECORDS / l:>11,.0f} records/s")
    print(f"    of which start to healthy       {fmt_s(startup):<34} (timed from the launch of tarn serve)")
    if wrk_results:
        print(f"\ningress: wrk, {WRK_THREADS} threads, {WRK_SECS} s, {wrk_results[0]['body']}-byte JSON POSTs "
              "(durable before the 200), pipeline running:")
        print("  connections  durable POSTs/s      p50       p99  non-2xx")
        for r in wrk_results:
            extra = f"  socket errors: {r['errors']}" if r["errors"] else ""
            print(f"  {r['conns']:>11}  {r['ok_per_s']:>15,.0f}  {r['p50']:>6.2f} ms  {r['p99']:>6.2f} ms"
                  f"  {r['non2xx']:>7}{extra}")
        if any(r["non2xx"] for r in wrk_results):
            print("  (non-2xx answers are not counted as durable POSTs: 503 overloaded, or see the serve log)")
    if KEEP or PERF_DIR:
        print(f"\ndata kept in {root}" + (f"; perf data in {PERF_DIR}" if PERF_DIR else ""))
    else:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
