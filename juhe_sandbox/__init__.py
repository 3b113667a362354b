"""A local stand-in for juhe.cn ConLicByName: real HTTP, deterministic data, limits and faults."""
