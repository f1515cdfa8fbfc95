"""The dashboard's server-side rendered pages (Jinja2, no JavaScript needed)."""
