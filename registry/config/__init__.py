"""Configuration: settings, regions, data contracts, personal-data patterns."""
