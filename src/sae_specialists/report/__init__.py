"""The browsable report across stages: summary.md (headline findings) and index.html (links to
every table, chart and page). May import any stage."""
