"""The use cases the commands run: each resolves its job, applies a model rule and saves it, in one transaction."""
