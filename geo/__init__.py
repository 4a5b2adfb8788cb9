"""Spatial analytics over the store (hotspots, coverage, KPIs): no Streamlit here."""
