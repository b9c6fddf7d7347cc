"""How fast the local org serves, and how much memory it takes, so it is never the bottleneck of a sync
benchmark. Prints, per org size: generation time, Bulk 2.0 result serving rate (records/s) for the
widest objects with every readable field, REST query paging rate, API calls, and peak RSS.

    .venv/bin/python benchmarks/localorg_serving.py            # 100k and 1M records
    .venv/bin/python benchmarks/localorg_serving.py 300000     # other sizes

The org runs in its own process (`sonora-pipeline localorg`), as a sync meets it; peak RSS is the org's.
Rates include the client's download and decompression, so they are lower bounds for the server.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import requests


def server_peak_rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(records: int) -> dict:
    """Start `sonora-pipeline localorg` in its own process (as a sync would meet it) and download from it."""
    started = time.perf_counter()
    server = subprocess.Popen([sys.executable, "-m", "sonora_pipeline.cli", "localorg", "--records", str(records)],
                              stdout=subprocess.PIPE, text=True)
    creds = json.loads(server.stdout.readline())
    generated_s = time.perf_counter() - started
    rss_after_generate = server_peak_rss_mb(server.pid)
    admin = {"X-LocalOrg-Admin": creds["admin_token"]}
    session = requests.Session()
    session.verify, session.trust_env = creds["ca_bundle"], False
    instance_url = creds["instance_url"]
    token = session.post(f"{instance_url}/services/oauth2/token", data={"grant_type": "client_credentials"},
                         auth=(creds["consumer_key"], creds["consumer_secret"])).json()
    session.headers["Authorization"] = f"Bearer {token['access_token']}"
    base = f"{instance_url}/services/data/v62.0"
    out = {"records": records, "generate_s": round(generated_s, 2), "rss_after_generate_mb": round(rss_after_generate)}
    state = lambda: session.post(f"{instance_url}/__localorg/state", headers=admin).json()  # noqa: E731
    used_before = state()["api_usage"]["used"]
    for obj in ("Account", "Contact", "Task"):
        fields = [f["name"] for f in session.get(f"{base}/sobjects/{obj}/describe").json()["fields"]
                  if f["type"] not in ("address", "location")]
        t0 = time.perf_counter()
        job = session.post(f"{base}/jobs/query", json={"operation": "queryAll",
                                                       "query": f"SELECT {', '.join(fields)} FROM {obj}"}).json()
        while session.get(f"{base}/jobs/query/{job['id']}").json()["state"] != "JobComplete":
            time.sleep(0.05)
        prepared = time.perf_counter() - t0
        t1 = time.perf_counter()
        rows, locator, pages = 0, None, 0
        while locator != "null":
            params = {"maxRecords": 50000, **({"locator": locator} if locator else {})}
            reply = session.get(f"{base}/jobs/query/{job['id']}/results", params=params)
            rows += int(reply.headers["Sforce-NumberOfRecords"])
            locator = reply.headers["Sforce-Locator"]
            pages += 1
        serving = time.perf_counter() - t1
        elapsed = time.perf_counter() - t0
        out[f"bulk_{obj}"] = {"rows": rows, "columns": len(fields), "pages": pages, "seconds": round(elapsed, 2),
                              "records_per_s": round(rows / elapsed), "job_s": round(prepared, 2),
                              "pages_records_per_s": round(rows / serving)}
    t0 = time.perf_counter()
    url, rows = f"{base}/queryAll?q=SELECT+Id,Name,Email,AccountId,SystemModstamp+FROM+Contact", 0
    while url:
        page = session.get(url).json()
        rows += len(page["records"])
        url = instance_url + page["nextRecordsUrl"] if not page["done"] else None
    elapsed = time.perf_counter() - t0
    out["rest_query_Contact"] = {"rows": rows, "seconds": round(elapsed, 2), "records_per_s": round(rows / elapsed)}
    out["api_calls"] = state()["api_usage"]["used"] - used_before
    out["peak_rss_mb"] = round(server_peak_rss_mb(server.pid))
    server.terminate()
    server.wait(timeout=30)
    return out


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--one":
        print(json.dumps(measure(int(sys.argv[2]))))
        return
    sizes = [int(a) for a in sys.argv[1:]] or [100_000, 1_000_000]
    for size in sizes:
        result = subprocess.run([sys.executable, __file__, "--one", str(size)], capture_output=True, text=True,
                                check=True)
        figures = json.loads(result.stdout.strip().splitlines()[-1])
        print(f"\n== local org with {size:,} records ==")
        print(f"started (generated + TLS) in {figures['generate_s']} s; org peak RSS {figures['peak_rss_mb']} MB "
              f"(after generation {figures['rss_after_generate_mb']} MB)")
        for key, value in figures.items():
            if key.startswith(("bulk_", "rest_")):
                extra = (f", {value['columns']} columns, {value['pages']} pages; job ready in {value['job_s']} s, "
                         f"pages served at {value['pages_records_per_s']:,} records/s") if "columns" in value else ""
                print(f"{key:<22} {value['rows']:>9,} rows in {value['seconds']:>6} s = "
                      f"{value['records_per_s']:>9,} records/s{extra}")
        print(f"API calls: {figures['api_calls']}")


if __name__ == "__main__":
    main()
