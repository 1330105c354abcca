"""Reports: tables, figures, HTML and Markdown from result JSONs of one or several models."""
