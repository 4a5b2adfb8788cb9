"""The Streamlit dashboard: map layer builders, offline assets, and thin pages."""
