"""Soak test: `reviewlens serve` under steady load for minutes, valid and invalid requests mixed, cache off.

    python benchmarks/soak_serve.py --run /tmp/full-bigram --data ../shared/data/aclImdb-labeled.tar.gz \
        [--minutes 10] [--clients 64] [--invalid-clients 8]

One server (`reviewlens serve RUN --cache-size 0`, its default workers and helpers) on 127.0.0.1. Each minute two
wrk processes run side by side: ``--clients - --invalid-clients`` connections send valid requests, 90% single
reviews and 10% batches of 20, rotating through 500 different test reviews; the other connections send invalid
ones (a blank review, a batch of 1,001, JSON that is not the schema, a body that is not JSON, a wrong content
type). Printed per minute: valid requests/s, p50 and p99 (ms), errors among valid requests (non-2xx and
timeouts: the goal is 0), invalid requests answered 5xx or 2xx (the goal is 0: each must be refused with a 4xx),
and the server's resident memory (server, workers and helpers); at the end, memory growth from the end of the
first minute (the warm-up) to the end (the goal is under 10%).
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serve import BIN, parse_milliseconds, read_reviews, started

#: Each line of the requests file: content type, path and body, tab-separated. Counts the answers by status.
WRK_SCRIPT = """
local requests = {}
local next_request = 0
local threads = {}
server_errors, accepted = 0, 0
function setup(thread) threads[#threads + 1] = thread end
function init(args)
  for line in io.lines(args[1]) do
    local kind, path, body = line:match("([^\t]+)\t([^\t]+)\t(.*)")
    requests[#requests + 1] = wrk.format("POST", path, {["Content-Type"] = kind}, body)
  end
  next_request = math.random(#requests)
end
function request()
  next_request = next_request % #requests + 1
  return requests[next_request]
end
function response(status, headers, body)
  if status >= 500 then server_errors = server_errors + 1 end
  if status < 400 then accepted = accepted + 1 end
end
function done(summary, latency, requests)
  local errors, ok = 0, 0
  for _, thread in ipairs(threads) do
    errors = errors + thread:get("server_errors")
    ok = ok + thread:get("accepted")
  end
  io.write(string.format("answered 5xx: %d, below 400: %d\\n", errors, ok))
end
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def bodies(reviews: list[str], folder: Path) -> tuple[Path, Path]:
    valid, invalid = folder / "valid.tsv", folder / "invalid.tsv"
    lines = []
    for i, text in enumerate(reviews):
        if i % 10 == 9:
            batch = [reviews[(i + k) % len(reviews)] for k in range(20)]
            lines.append("application/json\t/v1/predict/batch\t" + json.dumps({"texts": batch}))
        else:
            lines.append("application/json\t/v1/predict\t" + json.dumps({"text": text}))
    valid.write_text("\n".join(lines) + "\n")
    wrong = [
        ("application/json", "/v1/predict", json.dumps({"text": "   "})),
        ("application/json", "/v1/predict/batch", json.dumps({"texts": ["fine"] * 1001})),
        ("application/json", "/v1/predict", json.dumps({"review": "a field that is not the schema's"})),
        ("application/json", "/v1/predict", '{"text": "not json'),
        ("text/plain", "/v1/predict", json.dumps({"text": "a fine film"})),
    ]
    invalid.write_text("".join(f"{kind}\t{path}\t{body}\n" for kind, path, body in wrong))
    return valid, invalid


def rss_mb(pid: int) -> float:
    """Resident memory now of the process and its descendants."""
    total = int(re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text()).group(1)) / 1024  # type: ignore[union-attr]
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            total += rss_mb(int(child))
    return total


def wrk(url: str, clients: int, seconds: int, script: Path, lines: Path) -> subprocess.Popen[str]:
    command = ["wrk", "-t1", f"-c{clients}", f"-d{seconds}s", "--timeout", "5s", "--latency", "-s", str(script)]
    return subprocess.Popen([*command, url, "--", str(lines)], stdout=subprocess.PIPE, text=True)


def parse(output: str) -> dict[str, float]:
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", output, re.MULTILINE))
    requests = re.search(r"(\d+) requests in", output)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    answered = re.search(r"answered 5xx: (\d+), below 400: (\d+)", output)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),  # type: ignore[union-attr]
        "requests": int(requests.group(1)) if requests else 0,
        "p50": parse_milliseconds(latency["50"]) if "50" in latency else float("nan"),
        "p99": parse_milliseconds(latency["99"]) if "99" in latency else float("nan"),
        "socket_errors": sum(int(n) for n in errors.groups()) if errors else 0,
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "5xx": int(answered.group(1)) if answered else 0,
        "accepted": int(answered.group(2)) if answered else 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="a run directory (a bow-bigram run on the full data)")
    parser.add_argument("--data", type=Path, required=True, help="dataset with a test split")
    parser.add_argument("--minutes", type=int, default=10)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--invalid-clients", type=int, default=8)
    args = parser.parse_args()

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [str(BIN / "reviewlens"), "serve", str(args.run), "--port", str(port), "--cache-size", "0"]
    with tempfile.TemporaryDirectory() as scratch, started(command, f"{base}/health", None, env={}) as server:
        folder = Path(scratch)
        valid, invalid = bodies(read_reviews(args.data, 500), folder)
        script = folder / "mix.lua"
        script.write_text(WRK_SCRIPT)
        print(
            "minute  valid req/s  p50 ms  p99 ms  valid errors  invalid req/s  invalid 5xx  invalid 2xx  RSS MB",
            flush=True,
        )
        memory = []
        for minute in range(1, args.minutes + 1):
            good = wrk(base, args.clients - args.invalid_clients, 60, script, valid)
            bad = wrk(base, args.invalid_clients, 60, script, invalid)
            ok, wrong = parse(good.communicate()[0]), parse(bad.communicate()[0])
            memory.append(rss_mb(server.pid))
            print(
                f"{minute:>6}  {ok['rps']:>11,.0f}  {ok['p50']:>6.1f}  {ok['p99']:>6.1f}  "
                f"{ok['non_2xx'] + ok['socket_errors']:>12}  {wrong['rps']:>13,.0f}  {wrong['5xx']:>11}  "
                f"{wrong['accepted']:>11}  {memory[-1]:>6.1f}",
                flush=True,
            )
        growth = (memory[-1] - memory[0]) / memory[0]
        print(f"memory after the first minute {memory[0]:.1f} MB, at the end {memory[-1]:.1f} MB: {growth:+.1%}")


if __name__ == "__main__":
    main()
