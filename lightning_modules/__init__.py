"""Models, heads, Lightning modules and tasks of adaptnas; usable without the search engine."""
