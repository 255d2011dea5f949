"""The benches read wrk's report (bench.wrk.parse): units, percentiles and refused answers."""

from __future__ import annotations

import math

from bench.wrk import parse

# wrk 4.1 (Debian), `--latency`, as printed on this project's bench machine.
FAST = """Running 1s test @ http://127.0.0.1:8000/healthz
  1 threads and 2 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   267.08us  123.46us   2.09ms   90.90%
    Req/Sec     7.76k   160.79     7.99k    63.64%
  Latency Distribution
     50%  244.00us
     75%  255.00us
     90%  340.00us
     99%    0.87ms
  8491 requests in 1.10s, 1.13MB read
Requests/sec:   7721.10
Transfer/sec:      1.03MB
"""

SLOW_WITH_ERRORS = """Running 10s test @ http://127.0.0.1:8001
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   612.40ms  301.15ms   1.95s    70.12%
    Req/Sec    66.10     30.02   150.00     68.00%
  Latency Distribution
     50%  480.60ms
     75%  790.00ms
     90%    1.02s
     99%    1.32s
  1287 requests in 10.04s, 1.90MB read
  Non-2xx or 3xx responses: 12
Requests/sec:    128.19
Transfer/sec:    193.95KB
"""


def test_microseconds_and_milliseconds_read_as_milliseconds():
    r = parse(FAST)
    assert r["rate"] == 7721.10 and r["requests"] == 8491 and r["bad"] == 0
    assert math.isclose(r["p50"], 0.244) and math.isclose(r["p99"], 0.87)
    assert math.isclose(r["max"], 2.09)


def test_seconds_and_refused_answers():
    r = parse(SLOW_WITH_ERRORS)
    assert r["rate"] == 128.19 and r["requests"] == 1287 and r["bad"] == 12
    assert math.isclose(r["p50"], 480.6) and math.isclose(r["p99"], 1320.0)
    assert math.isclose(r["max"], 1950.0)
