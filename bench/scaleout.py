"""Reads through nginx in front of one and of two `wharf serve` processes on PostgreSQL + S3
(moto_server), in one run, and uploads spread over both with no file lost or duplicated.

Usage: WHARF_BIN=.../release/wharf WHARF_PG_URL=postgres://postgres@127.0.0.1:5432 \
       ~/.cache/wharf/venv/bin/python bench/scaleout.py [N_PROJECTS] [SECONDS]   (default 2000, 10)

(the test venv's python: it uses the e2e suite's helpers and moto_server.)

nginx listens twice: one port proxies to process A alone, the other to A and B (round robin,
keep-alive to both). The same 1,000 project pages (spread over the index) are read through
each with `wrk -t2 -c64`; each answer must be a 2xx.
"""
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import boto3

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "e2e"))
sys.path.insert(0, str(HERE))
from conftest import free_port, start_moto, wait_for  # noqa: E402
from test_scaleout import Process  # noqa: E402

import load  # noqa: E402

N = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
SECONDS = int(sys.argv[2]) if len(sys.argv) > 2 else 10
BIN = os.environ["WHARF_BIN"]
PG = os.environ.get("WHARF_PG_URL", "postgres://postgres@127.0.0.1:5432")

NGINX_CONF = """\
daemon off;
worker_processes auto;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/body;
  proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fastcgi;
  uwsgi_temp_path {tmp}/uwsgi;
  scgi_temp_path {tmp}/scgi;
  upstream one {{ server 127.0.0.1:{a}; keepalive 64; }}
  upstream two {{ server 127.0.0.1:{a}; server 127.0.0.1:{b}; keepalive 64; }}
  proxy_http_version 1.1;
  proxy_set_header Connection "";
  proxy_set_header Host $http_host;
  proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
  client_max_body_size 1g;
  server {{ listen 127.0.0.1:{one}; location / {{ proxy_pass http://one; }} }}
  server {{ listen 127.0.0.1:{two}; location / {{ proxy_pass http://two; }} }}
}}
"""



def wrk(url, lua, paths):
    out = subprocess.run(["wrk", "-t2", "-c64", f"-d{SECONDS}s", "--latency", "-s", str(lua), url],
                         env={**os.environ, "BENCH_PATHS": str(paths)}, capture_output=True,
                         text=True, check=True).stdout
    assert "Non-2xx" not in out, out
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)
    return rps, p99


def psql(database_url, sql):
    return subprocess.run(["psql", database_url, "-AtXqc", sql], capture_output=True, text=True,
                          check=True).stdout.strip()


def main():
    tmp = Path(tempfile.mkdtemp())
    os.chmod(tmp, 0o755)
    cleanups = []
    try:
        database = f"wharf_bench_{uuid.uuid4().hex[:8]}"
        subprocess.run(["psql", f"{PG}/postgres", "-qc", f"CREATE DATABASE {database}"], check=True)
        cleanups.append(lambda: subprocess.run(["psql", f"{PG}/postgres", "-qc", f"DROP DATABASE {database} WITH (FORCE)"]))
        database_url = f"{PG}/{database}"
        moto, endpoint = start_moto(tmp)
        cleanups.append(lambda: (moto.terminate(), moto.wait(timeout=10)))
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                     aws_secret_access_key="testing").create_bucket(Bucket="bench")
        env = {**os.environ, "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
               "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
               "WHARF_SECRET_KEY": secrets.token_hex(32), "WHARF_TRUSTED_PROXIES": "127.0.0.1",
               "RUST_LOG": "info"}

        def args(data):
            return ["--data-dir", str(tmp / data), "--database-url", database_url,
                    "--storage-url", "s3://bench/packages"]

        one, two = free_port(), free_port()
        base = f"http://127.0.0.1:{two}"
        a = Process(tmp, "a", env, args("data-a"), base)
        cleanups.append(a.stop)
        wait_for(f"{a.url}/_ready", a.process)
        b = Process(tmp, "b", env, args("data-b"), base)
        cleanups.append(b.stop)
        wait_for(f"{b.url}/_ready", b.process)
        nginx_dir = tmp / "nginx"
        nginx_dir.mkdir()
        (nginx_dir / "nginx.conf").write_text(NGINX_CONF.format(tmp=nginx_dir, a=a.port, b=b.port, one=one, two=two))
        nginx = subprocess.Popen(["nginx", "-p", str(nginx_dir), "-e", str(nginx_dir / "nginx-error.log"),
                                  "-c", str(nginx_dir / "nginx.conf")])
        cleanups.append(lambda: (nginx.terminate(), nginx.wait(timeout=10)))
        wait_for(f"http://127.0.0.1:{one}/_health", nginx)
        cli = [BIN, *args("data-cli")]
        subprocess.run([*cli, "user", "create", "bench", "--email", "bench@example.org"],
                       input="bench password\n", env=env, text=True, check=True, capture_output=True)
        token = subprocess.run([*cli, "token", "create", "bench"], env=env, text=True, check=True,
                               capture_output=True).stdout.strip()

        # Uploads through nginx to both processes at once: none lost, none twice.
        started = time.perf_counter()
        subprocess.run([sys.executable, str(HERE / "load.py"), base, token, str(N)], check=True)
        load_secs = time.perf_counter() - started
        expected = sum(2 + i % 2 for i in range(N))
        files, distinct = psql(database_url, "SELECT COUNT(*), COUNT(DISTINCT filename) FROM files").split("|")
        blobs = len([o for page in boto3.client(
            "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
            aws_secret_access_key="testing").get_paginator("list_objects_v2").paginate(Bucket="bench")
            for o in page.get("Contents", []) if not o["Key"].endswith(".metadata")])
        # Each process's access log: its answered uploads.
        by_process = [len(re.findall(r'method="POST" path="/legacy/" route="/legacy/" status=200',
                                     (tmp / f"wharf-{p}.log").read_text(errors="replace")))
                      for p in ("a", "b")]

        lua = HERE / "paths.lua"
        rows = []
        for label, path in [("/simple/<p>/", "/simple/bench-project-{:05d}/"),
                            ("/pypi/<p>/json", "/pypi/bench-project-{:05d}/json")]:
            listing = tmp / "paths.txt"
            listing.write_text("".join(path.format(k * N // 1000) + "\n" for k in range(1000)))
            for port in (one, two):  # every page once, as a warm index has them
                subprocess.run([sys.executable, "-c", (
                    "import sys, requests\ns = requests.Session()\n"
                    "for p in open(sys.argv[2]).read().split():\n"
                    "    assert s.get(sys.argv[1] + p).status_code == 200, p\n"),
                    f"http://127.0.0.1:{port}", str(listing)], check=True)
            one_rps, one_p99 = wrk(f"http://127.0.0.1:{one}", lua, listing)
            two_rps, two_p99 = wrk(f"http://127.0.0.1:{two}", lua, listing)
            rows.append((label, one_rps, one_p99, two_rps, two_p99))

        print(f"# Scale-out: nginx in front of one and of two processes ({N} projects, PostgreSQL + moto S3, "
              f"wrk -t2 -c64 -d{SECONDS}s, {os.cpu_count()} cores)\n")
        print("| path | one process req/s | p99 | two processes req/s | p99 | two ÷ one |")
        print("|---|---|---|---|---|---|")
        for label, one_rps, one_p99, two_rps, two_p99 in rows:
            print(f"| {label} | {one_rps:,.0f} | {one_p99} | {two_rps:,.0f} | {two_p99} | {two_rps / one_rps:.2f}x |")
        print(f"\nUploads through nginx (8 parallel uploaders, {load_secs:.1f} s): {expected} sent, "
              f"{files} file rows, {distinct} distinct filenames, {blobs} blobs in the bucket; "
              f"POST /legacy/ answered by A: {by_process[0]}, by B: {by_process[1]}.")
        assert int(files) == expected == int(distinct) == blobs, (files, distinct, blobs, expected)
        assert min(by_process) > 0, by_process
    finally:
        for cleanup in reversed(cleanups):
            try:
                cleanup()
            except Exception as error:
                print(f"cleanup failed: {error!r}")
        subprocess.run(["rm", "-rf", str(tmp)])


if __name__ == "__main__":
    main()
