"""A local stand-in for juhe.cn ConLicByName: real HTTP, deterministic data, limits and faults.

- `juhe_sandbox.dataset.Dataset(seed, size)`: the companies and, for any day, the licences the API
  returns (`licenses`), the exact JSON body (`response`) and what changed (`events`).
- `juhe_sandbox.server.SandboxServer(SandboxConfig(...))`: that dataset served over HTTP with the
  documented error codes, a per-key QPS window, a daily quota, maintenance, latency and faults.
- `python -m juhe_sandbox`: run a server, or write a roster CSV (`--write-roster`).

Production code never imports this package; the demo, the tests and the benchmarks do.
"""
