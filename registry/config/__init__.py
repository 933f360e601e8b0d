"""Configuration, read from files and the environment and validated strictly:

- :mod:`~registry.config.settings`: settings from ``REGISTRY_*`` variables, the council time zone;
- :mod:`~registry.config.regions`: the four regions (``config/regions.yaml``);
- :mod:`~registry.config.contracts`: the input data contracts (``schemas/*.yaml``);
- :mod:`~registry.config.score_model`: the versioned score model (``config/score_model_v*.yaml``);
- :mod:`~registry.config.quality`: the quality gates' settings (``config/quality.yaml``);
- :mod:`~registry.config.pii`: what personal data looks like;
- :mod:`~registry.config.crashpoints`: the named steps a reliability test may kill a process at.
"""
