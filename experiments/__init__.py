"""The benchmark's runs: problems, the SGD loop and its diagnostics, configs and tracking."""
