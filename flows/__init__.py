"""Prefect flows. Each task calls one ``registry`` function; a flow only orders tasks."""
