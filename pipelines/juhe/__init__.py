"""juhe.cn ConLicByName: client, error taxonomy, shared rate limit, due policy, ledger, fetcher.

No Dagster here: the resource and asset layer builds on `fetch_companies` and `select_due`.
"""
