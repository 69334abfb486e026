"""What a study found: each run's result and the study's table (``results``), the replicates'
summaries with 95 % confidence intervals (``stats``), and the figures (``plots``)."""
