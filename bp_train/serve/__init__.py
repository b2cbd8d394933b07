"""`bp-train serve`: a local page to draw a digit on, read live by a trained network (server.py; the page
itself, which loads nothing from elsewhere, is static/index.html)."""
