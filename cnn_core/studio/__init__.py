"""The studio's views over saved runs: the catalog, comparisons, benchmark figures beside the models, suspicious-label audits."""
