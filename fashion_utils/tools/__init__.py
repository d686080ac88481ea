"""The tooling that runs, times and reports the study: the runner, the time budget, the
README's generated results, the benchmarks and the distributed search. No notebook imports it."""
