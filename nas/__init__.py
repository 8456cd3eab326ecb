"""The adaptnas search engine: studies, the staged trial, results. Entry points live beside it."""
