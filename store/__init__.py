"""The database layer of Grid One-Map: settings, the embedded PostGIS, the schema and its
migrations, bulk writes and every SQL query. ``loaders``, ``geo`` and ``dashboard`` import
from here; nothing here imports from them."""
