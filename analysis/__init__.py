"""Sequential statistics, the decision engine and promotion reports (see docs/statistics.md).

Statistics (pure numpy/scipy, immutable state in, new state out): `mixtures` (closed forms), `counts` +
`error_rate` (event attribution), `means` (ψ increments, normal mixture), `quantiles` (quantile CS),
`paired` (shadow pairs), `srm`, `rewards`. Engine: `columns` (records → arrays, the error definition),
`tally` (all sequential state), `metrics_eval` (metric meanings, one rule classified), `policy` (defaults),
`engine` (`Judge`, `decide`). `simulate` and `stats_bench` reproduce the figures.
"""
